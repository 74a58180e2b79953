import numpy as np
import pytest

from libkd_keras.data import DataError, teacher_augmentation


def test_pad_and_crop_shifts_by_at_most_the_padding_and_flips():
    image = np.zeros((1, 32, 32, 3), "float32")
    image[0, 10, 20] = 255.0  # one bright pixel
    batch = np.repeat(image, 64, axis=0)
    out = teacher_augmentation(32, seed=0)(batch).numpy()
    assert out.shape == (64, 32, 32, 3)
    rows, cols = np.array([np.argwhere(example[..., 0] == 255.0)[0] for example in out]).T
    assert set(rows - 10) <= set(range(-4, 5)) and len(set(rows)) > 3
    flipped = cols < 16  # column 20 moves within 16..24, or within 7..15 once flipped
    assert 0 < flipped.sum() < 64
    assert set(np.where(flipped, 31 - cols, cols) - 20) <= set(range(-4, 5))
    assert set(out.sum(axis=(1, 2, 3))) == {3 * 255.0}  # pixels are moved, never blended


def test_large_images_get_a_random_resized_crop():
    batch = np.random.default_rng(0).uniform(0, 255, (4, 96, 80, 3)).astype("float32")
    out = teacher_augmentation(72, seed=0)(batch).numpy()
    assert out.shape == (4, 72, 72, 3) and out.min() >= 0 and out.max() <= 255


def test_small_size_mismatch_is_refused():
    with pytest.raises(DataError, match="image_size"):
        teacher_augmentation(32)(np.zeros((2, 16, 16, 3), "float32"))


def test_seeded_augmentation_of_a_split_repeats_batch_for_batch():
    from libkd_keras.data import Split

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (96, 8, 8, 3), dtype=np.uint8), np.arange(96) % 2, np.arange(96), ("a", "b"))

    def epoch():
        ds = split.dataset(8, shuffle=True, seed=1, augment=teacher_augmentation(8, padding=2, seed=3))
        return np.concatenate([images.numpy() for images, _ in ds])

    first, second = epoch(), epoch()
    np.testing.assert_array_equal(first, second)


def test_random_erasing_replaces_one_box_per_image_at_its_probability():
    batch = np.full((64, 32, 32, 3), 128.0, "float32")
    erased = teacher_augmentation(32, padding=0, random_erasing=1.0, seed=0)(batch).numpy()
    changed = np.abs(erased - 128.0).max(axis=-1) > 1e-3  # (64, 32, 32): the erased pixels
    assert changed.any(axis=(1, 2)).all(), "an image was not erased at probability 1"
    rows, cols = changed.any(axis=2), changed.any(axis=1)
    # one box: its rows and columns are contiguous, and it covers its whole bounding box
    boxes = rows.sum(1) * cols.sum(1)
    assert (changed.sum(axis=(1, 2)) == boxes).all() and (boxes < 32 * 32).all()
    kept = teacher_augmentation(32, padding=0, random_erasing=0.0, seed=0)(batch).numpy()
    np.testing.assert_array_equal(kept, batch)
    with pytest.raises(DataError, match="random_erasing"):
        teacher_augmentation(32, random_erasing=1.5)
