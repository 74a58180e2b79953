"""Bad sources fail with a clear DataError: crafted CIFAR pickles, truncated tarballs, splits with other classes."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.data import DataError, load_split


def cifar_members(protocol=2, meta=None, batch=None):
    rng = np.random.default_rng(0)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        content = (
            batch
            if batch is not None
            else {
                b"batch_label": b"training batch",
                b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
                b"labels": [int(v) for v in rng.integers(0, 10, 3)],
                b"filenames": [b"a.png", b"b.png", b"c.png"],
            }
        )
        members[name] = pickle.dumps(content, protocol=protocol)
    meta = (
        meta
        if meta is not None
        else {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 3, b"num_vis": 3072}
    )
    members["batches.meta"] = pickle.dumps(meta, protocol=protocol)
    return members


def write_tarball(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_cifar_layouts_load_with_the_allow_list(tmp_path, protocol):
    """Protocol 2 is how the original release (Python 2, numpy) was pickled."""
    split = load_split(write_tarball(tmp_path / "cifar-10-python.tar.gz", cifar_members(protocol)), "train")
    assert len(split) == 15 and split.class_names[9] == "c9"


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    members = cifar_members()
    members["data_batch_1"] = pickle.dumps({b"data": RunsCommand(marker), b"labels": [0]}, protocol=2)
    tarball = write_tarball(tmp_path / "cifar-10-python.tar.gz", members)
    with pytest.raises(DataError, match=r"data_batch_1.*(posix|os|nt)\.system.*not loaded"):
        load_split(tarball, "train")
    assert not marker.exists()
    folder = tmp_path / "extracted" / "cifar-10-batches-py"  # the extracted-folder path reads the same way
    folder.mkdir(parents=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    with pytest.raises(DataError, match="system"):
        load_split(str(folder), "train")
    assert not marker.exists()


@pytest.mark.parametrize(
    "meta, match",
    [
        ({b"num_vis": 3072}, "no b'label_names' entry"),
        ({b"label_names": "airplane"}, "list of at least 2 names"),
        ([1, 2, 3], "no b'label_names' entry.*list"),
    ],
)
def test_malformed_meta_is_a_clear_error(tmp_path, meta, match):
    tarball = write_tarball(tmp_path / "cifar-10-python.tar.gz", cifar_members(meta=meta))
    with pytest.raises(DataError, match=match):
        load_split(tarball, "test")


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"labels": [0]}, "no b'data' entry"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}, "labels must lie"),
    ],
)
def test_malformed_batch_is_a_clear_error(tmp_path, batch, match):
    tarball = write_tarball(tmp_path / "cifar-10-python.tar.gz", cifar_members(batch=batch))
    with pytest.raises(DataError, match=match):
        load_split(tarball, "test")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_tarballs_are_a_clear_error(tmp_path, keep):
    whole = write_tarball(tmp_path / "cifar-10-python.tar.gz", cifar_members())
    data = open(whole, "rb").read()
    truncated = tmp_path / "truncated" / "cifar-10-python.tar.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_split(str(truncated), "train")


def test_truncated_class_folder_tarball_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(1)
    tar_path = tmp_path / "pets.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        for i in range(40):
            data = tf.io.encode_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).numpy()
            info = tarfile.TarInfo(f"train/{'cat' if i % 2 else 'dog'}/{i:03d}.png")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = tar_path.read_bytes()
    tar_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_split(str(tar_path), "train")


def make_tree(root, classes_by_split):
    for split, classes in classes_by_split.items():
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            (root / split / name / "0.png").write_bytes(tf.io.encode_png(np.full((4, 4, 3), c, np.uint8)).numpy())


def test_a_test_split_with_other_class_names_is_refused(tmp_path):
    """Issue 16.4: test/kitty instead of test/cat would shift every test label against train."""
    make_tree(tmp_path / "pets", {"train": ["cat", "dog", "fox"], "test": ["dog", "fox", "kitty"]})
    for split in ("train", "test"):
        with pytest.raises(DataError) as error:
            load_split(str(tmp_path / "pets"), split)
        message = str(error.value)
        assert "only in test/: kitty" in message and "only in train/: cat" in message and "rename" in message
    with tarfile.open(tmp_path / "pets.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "pets", arcname="pets")
    with pytest.raises(DataError, match="rename test/kitty to test/cat"):
        load_split(str(tmp_path / "pets.tar.gz"), "test")


def test_a_missing_class_folder_is_refused_and_matching_splits_load(tmp_path):
    make_tree(tmp_path / "a", {"train": ["cat", "dog", "fox"], "test": ["cat", "dog"]})
    with pytest.raises(DataError, match="only in train/: fox"):
        load_split(str(tmp_path / "a"), "test")
    make_tree(tmp_path / "b", {"train": ["cat", "dog"], "test": ["cat", "dog"]})
    (tmp_path / "b" / ".cache" / "x").mkdir(parents=True)  # hidden folders beside the splits are ignored
    (tmp_path / "b" / "notes.txt").write_text("not a split")
    assert load_split(str(tmp_path / "b"), "test").class_names == ("cat", "dog")
