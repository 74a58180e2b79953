"""Stores on `tf.io.gfile` paths: TensorFlow's in-memory `ram://` filesystem stands in for gs:// and others."""

import uuid

import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.distill import HardDistillation
from libkd_keras.store import (
    StoreError,
    TeacherStore,
    add_teachers,
    finalize_store,
    precompute,
    rebuild_store,
    write_share,
)
from tests.store.helpers import TableTeacher


@pytest.fixture
def ram():
    root = f"ram://stores-{uuid.uuid4().hex[:8]}"
    yield root
    if tf.io.gfile.exists(root):
        tf.io.gfile.rmtree(root)


def alpha(tables, name="alpha"):
    return {name: TableTeacher(tables[name])}


def test_a_store_on_ram_opens_and_feeds_training_like_a_local_one(ram, store, split, tables):
    path = f"{ram}/toy"
    written = precompute(
        {n: TableTeacher(tables[n]) for n in ("alpha", "beta")},
        split,
        path,
        dtype="float32",
        shard_size=16,
        batch_size=16,
    )
    opened = TeacherStore.open(path, expect=split)  # sizes and sha256 read through gfile
    assert opened.path == path and written.manifest == opened.manifest
    assert not tf.io.gfile.glob(f"{ram}/toy.*")  # written in place: no temporary folders beside it
    np.testing.assert_array_equal(opened.logits(), store.logits())  # the local store of the same teachers
    np.testing.assert_array_equal(opened.images(), store.images())
    images, targets = next(iter(opened.dataset(HardDistillation(), batch_size=8, shuffle=False)))
    assert images.shape == (8, 8, 8, 3) and targets["teacher"].shape == (8, 4)
    local_images, local_targets = next(iter(store.dataset(HardDistillation(), batch_size=8, shuffle=False)))
    np.testing.assert_array_equal(images.numpy(), local_images.numpy())
    np.testing.assert_array_equal(targets["teacher"].numpy(), local_targets["teacher"].numpy())
    grown = add_teachers(opened, alpha(tables, "gamma"))
    assert TeacherStore.open(path).teacher_names == grown.teacher_names == ["alpha", "beta", "gamma"]


def test_without_its_manifest_a_ram_store_never_opens(ram, split, tables):
    path = f"{ram}/s"
    precompute(alpha(tables), split, path)
    tf.io.gfile.remove(f"{path}/manifest.json")
    with pytest.raises(StoreError, match="has no manifest.json"):
        TeacherStore.open(path)
    with pytest.raises(StoreError, match="exists and is not a teacher store"):
        precompute(alpha(tables), split, path)


def test_force_rebuilds_a_damaged_ram_store(ram, split, tables):
    path = f"{ram}/s"
    store = precompute(alpha(tables), split, path, shard_size=16)
    shard = f"{path}/{store.manifest['teachers']['alpha']['shards'][1]['file']}"
    data = tf.io.gfile.GFile(shard, "rb").read()
    with tf.io.gfile.GFile(shard, "wb") as f:
        f.write(data[:-5])
    with pytest.raises(StoreError, match="truncated"):
        TeacherStore.open(path)
    rebuilt = rebuild_store(alpha(tables, "beta"), split, path, shard_size=16)
    assert TeacherStore.open(path, expect=split).teacher_names == rebuilt.teacher_names == ["beta"]
    folders = tf.io.gfile.listdir(f"{path}/teachers")
    assert [f.rstrip("/").split("-")[0] for f in folders] == ["beta"]  # the old store's files are gone


def test_workers_share_a_ram_store(ram, split, tables, store):
    path = f"{ram}/shared"
    kwargs = {"dtype": "float32", "shard_size": 16, "batch_size": 16}
    teachers = {n: TableTeacher(tables[n]) for n in ("alpha", "beta")}
    assert write_share(teachers, split, path, 1, 2, **kwargs) is None
    sharded = write_share(teachers, split, path, 0, 2, **kwargs)
    assert finalize_store(path).manifest == sharded.manifest
    np.testing.assert_array_equal(TeacherStore.open(path).logits(), store.logits())
