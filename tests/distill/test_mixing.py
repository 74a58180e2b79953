"""MixUp / CutMix mix the true labels and the teacher rows exactly like the pixels."""

import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.distill import LabelConsistentMix, baseline, student_augmentation, superior

C, B, SIZE = 4, 4, 16
LEVELS = np.array([10.0, 60.0, 120.0, 200.0], "float32")  # image i is constant LEVELS[i], class i
TEACHER_CLASS = np.array([2, 0, 3, 1])  # the teacher says image i is class TEACHER_CLASS[i]


def constant_batch():
    images = np.broadcast_to(LEVELS[:, None, None, None], (B, SIZE, SIZE, 3)).copy()
    return images, {"label": np.arange(B), "teacher": np.eye(C, dtype="float32")[TEACHER_CLASS]}


def mixed_batches(mixer, n=8):
    data = tf.data.Dataset.from_tensors(constant_batch()).repeat(n).map(mixer)
    return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in data]


def check_consistent(images, targets):
    label, teacher = targets["label"], targets["teacher"]
    np.testing.assert_allclose(label.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(teacher.sum(-1), 1.0, atol=1e-6)
    # Each mixed image's mean pixel is the label-weighted mean of the source levels; the same
    # weights, read from the teacher rows, give it too.
    mean_pixel = images.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(mean_pixel, label @ LEVELS, rtol=1e-5)
    np.testing.assert_allclose(mean_pixel, teacher @ LEVELS[np.argsort(TEACHER_CLASS)], rtol=1e-5)


def test_mixup_mixes_labels_and_teacher_with_the_pixel_weights():
    batches = mixed_batches(LabelConsistentMix(C, mixup_alpha=0.8, cutmix_alpha=0.0, seed=3))
    for images, targets in batches:
        check_consistent(images, targets)
        assert np.ptp(images, axis=(1, 2, 3)).max() < 1e-3  # MixUp blends whole images
    assert any((t["label"].max(-1) < 0.99).any() for _, t in batches)  # something was mixed


def test_cutmix_mixes_labels_with_the_exact_pasted_area():
    batches = mixed_batches(LabelConsistentMix(C, mixup_alpha=0.0, cutmix_alpha=1.0, seed=4))
    for images, targets in batches:
        check_consistent(images, targets)
        assert all(len(np.unique(image)) <= 2 for image in images)  # a pasted box, no blending
    assert any(len(np.unique(images[i])) == 2 for images, _ in batches for i in range(B))


def test_switching_uses_both_and_plain_integer_labels_work():
    mixer = LabelConsistentMix(C, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, seed=5)
    kinds = set()
    for images, label in tf.data.Dataset.from_tensors((constant_batch()[0], np.arange(B))).repeat(12).map(mixer):
        images, label = images.numpy(), label.numpy()
        np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), label @ LEVELS, rtol=1e-5)
        kinds.add("cutmix" if any(len(np.unique(im)) == 2 for im in images) else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_superior_pipeline_keeps_label_and_teacher_rows_valid():
    images, targets = constant_batch()
    data = tf.data.Dataset.from_tensor_slices(
        (np.concatenate([images] * 3), {k: np.concatenate([v] * 3) for k, v in targets.items()})
    ).batch(6)
    recipe = superior(batch_size=6)  # RandAugment 2 ops, colour jitter 0.3, erasing 0.25, MixUp/CutMix, 3 repeats
    out = student_augmentation(data, recipe, C, seed=0)
    count = 0
    for x, y in out:
        count += len(x)
        assert x.shape[1:] == (SIZE, SIZE, 3) and y["label"].shape[1:] == y["teacher"].shape[1:] == (C,)
        assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255.0
        np.testing.assert_allclose(tf.reduce_sum(y["label"], -1), 1.0, atol=1e-5)
        np.testing.assert_allclose(tf.reduce_sum(y["teacher"], -1), 1.0, atol=1e-5)
    assert count == 12  # an epoch keeps its length with repeated augmentation


def test_repeated_augmentation_repeats_the_first_third_of_each_batch():
    images = np.arange(6, dtype="float32")[:, None, None, None] * np.ones((6, SIZE, SIZE, 3), "float32")
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(6))).batch(6)
    x, y = next(iter(student_augmentation(data, baseline(batch_size=6, flip_crop=False, repeats=3), C)))
    assert y.numpy().tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0], [0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(mixup_alpha=-1.0), "mixup_alpha"),
        (dict(switch_prob=1.5), "switch_prob"),
        (dict(mixup_alpha=0.0, cutmix_alpha=0.0), "mixup_alpha"),
    ],
)
def test_bad_mixing_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        LabelConsistentMix(C, **kwargs)


def _flip_crop_epochs(seed, epochs=2):
    """Two epochs of flip-and-crop over 64 distinct images, from a fresh pipeline (a fresh run)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (64, SIZE, SIZE, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(64))).batch(16)
    out = student_augmentation(data, baseline(batch_size=16), C, seed=seed)
    return images, [np.concatenate([x.numpy() for x, _ in out]) for _ in range(epochs)]


def test_seeded_flip_and_crop_are_the_same_in_every_run_and_new_each_epoch():
    images, first = _flip_crop_epochs(seed=5)
    _, again = _flip_crop_epochs(seed=5)
    _, other = _flip_crop_epochs(seed=6)
    for epoch in range(2):  # parallel maps, yet bit-identical pixels for the same seed
        np.testing.assert_array_equal(first[epoch], again[epoch])
    assert not np.array_equal(first[0], first[1])  # each epoch draws new flips and crops
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], images)  # something was flipped or shifted
    # Still a flip then a pad-4 crop: each output is a window of its reflect-padded (maybe flipped) image.
    padded = np.pad(images[3], [(4, 4), (4, 4), (0, 0)], mode="reflect")
    windows = [
        source[top : top + SIZE, left : left + SIZE]
        for source in (padded, np.pad(images[3][:, ::-1], [(4, 4), (4, 4), (0, 0)], mode="reflect"))
        for top in range(9)
        for left in range(9)
    ]
    assert any(np.array_equal(first[0][3], w) for w in windows)
