import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.data import DataError, DataNotFoundError, load_split, sources

CIFAR_JPEG_TARBALL = os.path.join(os.path.dirname(__file__), "../../../shared/datasets/cifar10-jpeg.tar.gz")
CIFAR_JPEG_EXTRACTED = "/tmp/cifar10-jpeg"


def pixels(seed, size=(8, 8)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def write_image(path, image):
    encode = tf.io.encode_png if path.endswith(".png") else tf.io.encode_jpeg
    with open(path, "wb") as f:
        f.write(encode(image).numpy())


@pytest.fixture
def tree(tmp_path):
    """<root>/train/{cat,dog}/ with 3 PNGs each (exact pixels) and one JPEG for dog."""
    root = tmp_path / "pets"
    for c, cls in enumerate(["dog", "cat"]):
        folder = root / "train" / cls
        folder.mkdir(parents=True)
        for i in range(3):
            write_image(str(folder / f"{i:02d}.png"), pixels(10 * c + i))
    write_image(str(root / "train" / "dog" / "99.jpg"), pixels(99))
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    return root


def test_folder_tree_gives_sorted_classes_stable_ids_and_exact_pixels(tree):
    split = load_split(str(tree), "train")
    assert split.class_names == ("cat", "dog") and split.name == "pets"
    assert split.labels.tolist() == [0, 0, 0, 1, 1, 1, 1] and split.ids.tolist() == list(range(7))
    np.testing.assert_array_equal(split.images[0], pixels(10))  # cat/00.png
    np.testing.assert_array_equal(split.images[3], pixels(0))  # dog/00.png
    limited = load_split(str(tree), "train", limit=4)
    assert limited.ids.tolist() == [0, 1, 3, 4]  # first two of each class, ids of the full split
    np.testing.assert_array_equal(limited.images, split.images[[0, 1, 3, 4]])
    assert limited.fingerprint == split.subset(ids=[0, 1, 3, 4]).fingerprint


def test_mixed_sizes_are_resized_with_one_warning(tree):
    write_image(str(tree / "train" / "cat" / "big.png"), pixels(5, (16, 12)))
    write_image(str(tree / "train" / "dog" / "big.png"), pixels(6, (12, 16)))
    with pytest.warns(UserWarning, match="2 of 9 images") as record:
        split = load_split(str(tree), "train")
    assert len(record) == 1 and split.image_shape == (8, 8, 3)
    assert load_split(str(tree), "train", image_size=6).image_shape == (6, 6, 3)


def test_folder_errors_say_what_is_wrong(tree, tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_split(str(tmp_path / "nowhere"), "train")
    with pytest.raises(DataNotFoundError, match="Split folder.*test.*found.*train"):
        load_split(str(tree), "test")
    (tree / "train" / "bird").mkdir()
    with pytest.raises(DataError, match="bird.*holds no images"):
        load_split(str(tree), "train")
    flat = tmp_path / "flat" / "train"
    flat.mkdir(parents=True)
    write_image(str(flat / "a.png"), pixels(1))
    with pytest.raises(DataError, match="No class folders"):
        load_split(str(tmp_path / "flat"), "train")
    with pytest.raises(DataError, match="Unknown data source 'cifar100'"):
        load_split("cifar100", "train")


def test_tarball_of_class_folders_is_read_without_extracting(tree, tmp_path):
    tar_path = tmp_path / "pets.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        archive.add(tree / "train", arcname="train")
    from_tar = load_split(str(tar_path), "train")
    from_folder = load_split(str(tree), "train")
    assert from_tar.fingerprint == from_folder.fingerprint


def test_cifar_python_tarball_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    batches = {}
    for name, n in [
        ("data_batch_1", 6),
        ("data_batch_2", 4),
        ("data_batch_3", 2),
        ("data_batch_4", 2),
        ("data_batch_5", 2),
        ("test_batch", 5),
    ]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batches[name] = {b"data": data, b"labels": list(rng.integers(0, 10, n))}
    batches["batches.meta"] = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, content in batches.items():
        (folder / name).write_bytes(pickle.dumps(content))
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    train = load_split(str(tar_path), "train")
    assert len(train) == 16 and train.name == "cifar10" and train.class_names[3] == "c3"
    first = batches["data_batch_1"][b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(train.images[0], first)
    assert train.labels[6] == batches["data_batch_2"][b"labels"][0]
    assert load_split(str(folder), "train").fingerprint == train.fingerprint
    assert load_split(str(tmp_path), "test").images.shape == (5, 32, 32, 3)
    assert load_split(str(tar_path), "test", image_size=16).image_shape == (16, 16, 3)


def test_tfds_sources_through_mock_data(tmp_path, monkeypatch):
    import tempfile

    import tensorflow_datasets as tfds

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tfds' mock leaves empty temp folders

    with tfds.testing.mock_data(num_examples=40):
        train = load_split("cifar10", "train", limit=20)
        assert train.image_shape == (32, 32, 3) and len(train) == 20 and train.num_classes == 10
        assert train.fingerprint == load_split("cifar10", "train", limit=20).fingerprint  # deterministic
        test = load_split("tf_flowers", "test", image_size=16)
        rest = load_split("tf_flowers", "train", image_size=16)
        again = load_split("tf_flowers", "test", image_size=16)
    assert len(test) + len(rest) == 40 and test.image_shape == (16, 16, 3) and test.num_classes == 5
    assert 0 < len(test) < len(rest)
    assert again.fingerprint == test.fingerprint  # the made-up test split is the same every time
    train_images = {image.tobytes() for image in rest.images}
    assert not any(image.tobytes() in train_images for image in test.images)  # and disjoint from train


def test_offline_tfds_fails_fast_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "can_reach", lambda host, **kwargs: False)
    with pytest.raises(DataNotFoundError) as error:
        load_split("cifar10", "train", data_dir=str(tmp_path))
    message = str(error.value)
    assert "'cifar10'" in message and "data_dir" in message and "folder" in message and "tarball" in message


@pytest.mark.realdata
def test_a_few_hundred_real_cifar10_images():
    if os.path.isdir(os.path.join(CIFAR_JPEG_EXTRACTED, "test", "truck")):
        source = CIFAR_JPEG_EXTRACTED
    elif os.path.exists(CIFAR_JPEG_TARBALL):
        source = CIFAR_JPEG_TARBALL  # streamed, not extracted
    else:
        pytest.skip("cifar10-jpeg.tar.gz is not present")
    split = load_split(source, "test", limit=300)
    assert split.images.shape == (300, 32, 32, 3) and split.class_names[0] == "airplane"
    assert np.bincount(split.labels).tolist() == [30] * 10
    assert split.ids.max() < 10000 and 90 < split.images.mean() < 160  # natural images, not blank
