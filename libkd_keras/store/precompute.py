"""`precompute`: run every teacher once over a split and write a teacher store (see `format.py`)."""

import os
import shutil
import uuid

import numpy as np

import libkd_keras
from libkd_keras.data import Split
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import (
    DEFAULT_SHARD_SIZE, MANIFEST_FILE, STORE_FORMAT, STORE_FORMAT_VERSION, shard_bounds,
)
from libkd_keras.store.teacher_store import TeacherStore
from libkd_keras.store.writing import (
    check_teachers, now, teacher_logits, write_example_shards, write_manifest, write_teacher_shards,
)


def precompute(
    teachers,
    split,
    path,
    *,
    dtype="float16",
    include_images=True,
    batch_size=256,
    shard_size=DEFAULT_SHARD_SIZE,
    teacher_metadata=None,
    overwrite=False,
    verbose=0,
):
    """Run each teacher once (`predict`, `training=False`) over `split`; store logits, labels, ids (+ images).

    Args:
        teachers: `{name: keras.Model}`; each maps raw pixels in [0, 255] to logits `(B, C)`.
        split: the `Split` to label (its fingerprint goes into the manifest).
        path: the store folder. If it already holds a store of the same split, only the teachers not
            in it are run and added (`TeacherStore.add_teachers`); a stored name is an error unless
            `overwrite=True`.
        dtype: `"float16"` (default, half the size) or `"float32"` for the stored logits.
        include_images: store PNG images so the store alone can feed training.
        shard_size: examples per TFRecord shard.
        teacher_metadata: optional `{name: dict}` (e.g. `train_teacher`'s metadata) kept in the manifest.
        verbose: `predict`'s progress bar for each teacher's pass (0: none, "auto"/1: a progbar).

    A new store is written under `<path>.incomplete-<token>` and renamed to `path` at the end, so an
    interrupted run leaves nothing that opens as a store.

    Example:
    >>> store = precompute({"resnet26_seed0": resnet, "rednet26_seed0": rednet}, train, "runs/store")
    >>> store.logits().shape
    (50000, 2, 10)
    """
    if not isinstance(split, Split):
        raise StoreError(f"`split` must be a libkd_keras.data.Split; got {type(split).__name__}.")
    if not len(split):
        raise StoreError("The split is empty; there is nothing to precompute.")
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, MANIFEST_FILE)):
        store = TeacherStore.open(path, expect=split)
        return store.add_teachers(
            teachers, split, dtype=dtype, batch_size=batch_size, teacher_metadata=teacher_metadata, overwrite=overwrite,
            verbose=verbose,
        )
    metadata = check_teachers(teachers, teacher_metadata, dtype)
    if not isinstance(shard_size, int) or shard_size < 1:
        raise StoreError(f"`shard_size` must be a positive integer; got {shard_size!r}.")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise StoreError(f"{path!r} exists and is not a teacher store; choose a new path or remove it.")

    order = np.argsort(split.ids, kind="stable")  # stores keep rows in id order
    ids, labels = split.ids[order], split.labels[order]
    images = split.images if np.array_equal(order, np.arange(len(order))) else split.images[order]
    bounds = shard_bounds(len(ids), shard_size)
    tmp = f"{os.path.normpath(path)}.incomplete-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    try:
        entries = {}
        for name, model in teachers.items():
            logits = teacher_logits(name, model, images, split.num_classes, batch_size, dtype, verbose)
            entries[name] = write_teacher_shards(tmp, name, ids, logits, bounds, dtype, metadata.get(name, {}))
        examples = write_example_shards(tmp, ids, labels, images if include_images else None, bounds)
        write_manifest(tmp, {
            "format": STORE_FORMAT,
            "format_version": STORE_FORMAT_VERSION,
            "dataset": split.name,
            "split": split.split,
            "num_examples": len(ids),
            "fingerprint": split.fingerprint,
            "num_classes": split.num_classes,
            "class_names": list(split.class_names),
            "image_shape": list(split.image_shape),
            "includes_images": bool(include_images),
            "shard_size": shard_size,
            "examples": examples,
            "teachers": entries,
            "created": now(),
            "libkd_keras_version": libkd_keras.__version__,
        })
        if os.path.isdir(path):
            os.rmdir(path)  # an empty folder given as the destination
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TeacherStore.open(path, verify=False)
