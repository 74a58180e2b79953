"""Multi-view stores: teacher logits on stored flip/crop views, replayed bit-exactly by the reader."""

import json

import keras
import numpy as np
import pytest

from libkd_keras.data import Split
from libkd_keras.distill import SoftDistillation, baseline, student_augmentation
from libkd_keras.store import (
    StoredViews,
    StoreError,
    TeacherStore,
    add_teachers,
    precompute,
    rebuild_store,
    write_share,
    write_store,
)
from libkd_keras.store.read import ViewRecipe, check_replayable, replay, view_images

CLASSES, SIDE = 8, 8
WEIGHTS = np.random.default_rng(5).integers(1, 50, (SIDE * SIDE * 3, CLASSES)).astype(np.float32)


def hash_logits(images):
    """Logits that change with any pixel: integer-weighted pixel sums mod 1000 (exact in float32), / 100."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    return ((flat @ WEIGHTS.astype(np.float64)) % 1000 / 100).astype(np.float32)


class HashTeacher(keras.Model):
    """A teacher whose logits are a hash of its input pixels (see `hash_logits`)."""

    def __init__(self, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, images):
        flat = keras.ops.reshape(keras.ops.cast(images, "float32"), (-1, SIDE * SIDE * 3))
        return keras.ops.mod(keras.ops.matmul(flat, WEIGHTS), 1000.0) / 100.0 + self.offset


def toy(n=24):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8)
    return Split(images, np.arange(n) % CLASSES, np.arange(n) * 2 + 1, tuple("abcdefgh"), "toy", "train")


@pytest.fixture(scope="module")
def split():
    return toy()


@pytest.fixture(scope="module")
def store(tmp_path_factory, split):
    path = tmp_path_factory.mktemp("views") / "store"
    return precompute(
        {"h": HashTeacher()}, split, path, dtype="float32", shard_size=10, views=StoredViews(3, padding=2)
    )


def test_view_recipe_counts_every_flip_and_crop_and_draws_distinct_views():
    recipe = ViewRecipe(padding=4, image_shape=(32, 32, 3))
    assert recipe.num_distinct == 162 and len({tuple(v) for v in recipe.all_views()}) == 162
    drawn = recipe.draw(np.array([5, 9]), count=8, seed=1)
    assert drawn.shape == (2, 8, 3) and all(len({tuple(v) for v in row}) == 8 for row in drawn)
    np.testing.assert_array_equal(drawn, recipe.draw(np.array([5, 9]), count=8, seed=1))  # (seed, id) alone
    assert recipe.count_for("all") == 162 and recipe.draw(np.array([1]), 162, 0).shape == (1, 162, 3)
    for bad in (0, 163, 2.5, "some"):
        with pytest.raises(StoreError, match="views"):
            recipe.count_for(bad)


def test_replay_is_flip_then_reflect_pad_then_crop():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    view = replay(image, np.array([[1, 0, 2]]), padding=1).numpy()
    padded = np.pad(image[:, :, ::-1], ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(view, padded[:, 0:4, 2:6])
    assert view.dtype == np.uint8


def test_store_holds_the_views_and_each_teacher_row_is_the_teacher_on_its_view(store, split):
    params = store.view_params()
    assert store.num_views == 3 and params.shape == (len(split), 3, 3)
    logits = store.view_logits()  # (N, T, V, C)
    assert logits.shape == (len(split), 1, 3, CLASSES)
    for view in range(3):
        pixels = view_images(split.images, params, view, padding=2)
        np.testing.assert_allclose(logits[:, 0, view], hash_logits(pixels), atol=1e-5)
    np.testing.assert_allclose(store.logits()[:, 0], hash_logits(split.images), atol=1e-5)  # clean rows kept
    with open(f"{store.path}/manifest.json") as f:
        manifest = json.load(f)
    assert manifest["views"]["count"] == 3 and manifest["views"]["padding"] == 2
    assert TeacherStore.open(store.path).manifest == manifest  # the manifest round-trips


def _view(split, params, i, v):
    return replay(split.images[None, i], params[i, v][None], 2).numpy()[0].astype(np.float32)


def test_training_batches_replay_the_stored_views_bit_exactly(store, split):
    ds = store.dataset(SoftDistillation(1.0), batch_size=8, split=split, views=True, seed=3)
    params = store.view_params()
    views = {(i, v): _view(split, params, i, v) for i in range(len(split)) for v in range(3)}
    drawn = []
    for _ in range(3):  # epochs
        for images, targets in ds:
            images, teacher = images.numpy(), targets["teacher"].numpy()
            np.testing.assert_allclose(teacher, keras.ops.softmax(hash_logits(images)), atol=1e-5)
            for image, label in zip(images, targets["label"].numpy()):
                match = [key for key, view in views.items() if np.array_equal(view, image)]  # bit-identical
                assert match and split.labels[match[0][0]] == label, "a batch image is none of its stored views"
                drawn.append(match[0])
    assert len(drawn) == 3 * len(split) and len(set(drawn)) > len(split)  # every epoch draws views anew


def test_mixing_after_replay_mixes_the_rows_of_the_replayed_views(store, split):
    # Unshuffled batches of 8 hold the 8 classes once each, so a mixed label row names both examples.
    ds = store.dataset(SoftDistillation(1.0), batch_size=8, split=split, views=True, shuffle=False, seed=0)
    mixed = student_augmentation(ds, baseline(batch_size=8, flip_crop=False, mixup_alpha=0.8), CLASSES, seed=1)
    params = store.view_params()
    for batch, (images, targets) in enumerate(mixed.take(3)):
        images, labels, teacher = images.numpy(), targets["label"].numpy(), targets["teacher"].numpy()
        for k in range(8):
            lam = labels[k, k]
            other = [c for c in np.flatnonzero(labels[k] > 1e-6) if c != k]
            i, j = 8 * batch + k, 8 * batch + (other[0] if other else k)
            pairs = [
                (_view(split, params, i, a), _view(split, params, j, b))
                for a in range(3)
                for b in range(3)
                if np.allclose(images[k], lam * _view(split, params, i, a) + (1 - lam) * _view(split, params, j, b))
            ]
            assert pairs, f"mixed image {k} of batch {batch} is not a mix of the two examples' stored views"
            rows = keras.ops.convert_to_numpy(keras.ops.softmax(hash_logits(np.stack(pairs[0]))))
            np.testing.assert_allclose(teacher[k], lam * rows[0] + (1 - lam) * rows[1], atol=1e-4)


def test_an_added_teacher_labels_the_same_stored_views(tmp_path, split):
    path = tmp_path / "store"
    first = precompute(
        {"h": HashTeacher()}, split, path, dtype="float32", shard_size=10, views=StoredViews(2, padding=1)
    )
    both = add_teachers(first, {"h2": HashTeacher(offset=1.0)}, split, dtype="float32")
    np.testing.assert_array_equal(both.view_params(), first.view_params())
    logits = both.view_logits(["h", "h2"])
    np.testing.assert_allclose(logits[:, 1], logits[:, 0] + 1.0, atol=1e-5)
    with pytest.raises(StoreError, match="holds views"):
        precompute({"h3": HashTeacher()}, split, path, dtype="float32", views=StoredViews(4, padding=1))


def test_a_multi_view_store_is_rebuilt_with_other_views(tmp_path, split):
    path = tmp_path / "store"
    precompute({"h": HashTeacher()}, split, path, dtype="float32", shard_size=10, views=StoredViews(2, padding=1))
    rebuilt = rebuild_store(
        {"h2": HashTeacher(offset=1.0)}, split, path, dtype="float32", views=StoredViews(3, padding=1)
    )
    reopened = TeacherStore.open(path, expect=split)  # verified: every shard whole
    assert rebuilt.num_views == reopened.num_views == 3 and reopened.teacher_names == ["h2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # the old store is gone, nothing left aside


def test_views_are_refused_clearly_where_they_cannot_be_replayed(tmp_path, store, split):
    single = precompute({"h": HashTeacher()}, split, tmp_path / "single", dtype="float32")
    assert single.num_views == 0 and "views" not in single.manifest  # single-view stores are as before
    with pytest.raises(StoreError, match=r"clean images only.*views=N"):
        single.dataset(SoftDistillation(), batch_size=8, split=split, views=True)
    with pytest.raises(StoreError, match=r"crop padding 2 \(store\) vs padding 4"):
        check_replayable(store, baseline(), split.image_shape)
    with pytest.raises(StoreError, match=r"image shape \[8, 8, 3\] \(store\) vs \[16, 16, 3\]"):
        check_replayable(store, baseline(crop_padding=2), (16, 16, 3))
    check_replayable(store, baseline(crop_padding=2), split.image_shape)  # the matching recipe is accepted
    with pytest.raises(StoreError, match="several workers"):
        write_share({"h": HashTeacher()}, split, tmp_path / "w", 0, 2, views=2)


def test_the_views_padding_and_seed_are_one_object_and_the_old_keywords_name_it(tmp_path, split):
    shorthand = write_store({"h": HashTeacher()}, split, tmp_path / "a", dtype="float32", views=3)
    spelled = write_store({"h": HashTeacher()}, split, tmp_path / "b", dtype="float32", views=StoredViews(3, 4, 0))
    assert shorthand.manifest["views"] == {**spelled.manifest["views"], "shards": shorthand.manifest["views"]["shards"]}
    np.testing.assert_array_equal(shorthand.view_params(), spelled.view_params())  # an int is StoredViews(int)
    other_seed = write_store({"h": HashTeacher()}, split, tmp_path / "c", views=StoredViews(3, padding=4, seed=1))
    assert other_seed.manifest["views"]["seed"] == 1
    assert not np.array_equal(other_seed.view_params(), spelled.view_params())
    for write in (write_store, precompute, rebuild_store):
        with pytest.raises(TypeError, match=r"view_padding.*views=StoredViews\(count, padding, seed\)"):
            write({"h": HashTeacher()}, split, tmp_path / "d", views=3, view_padding=2)
    assert not (tmp_path / "d").exists()
