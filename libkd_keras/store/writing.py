"""Writing store pieces: running a teacher once, example shards, teacher shards, the manifest."""

import datetime
import json
import os
import uuid

import numpy as np
import tensorflow as tf

from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import (
    EXAMPLES_DIR, LOGIT_DTYPES, MANIFEST_FILE, TEACHER_NAME, TEACHERS_DIR, example_record, file_sha256,
    logits_record, shard_file,
)

ENCODE_BATCH = 512


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check_teachers(teachers, teacher_metadata, dtype):
    """Validate the `{name: model}` dict, the optional metadata dict and the logits dtype early."""
    if not isinstance(teachers, dict) or not teachers:
        raise StoreError("`teachers` must be a non-empty dict {name: keras.Model}.")
    for name, model in teachers.items():
        if not isinstance(name, str) or not TEACHER_NAME.match(name):
            raise StoreError(
                f"Teacher name {name!r} is not allowed: use letters, digits, '_', '.', '+', '-' "
                "(no '/', ':' or '*'), starting with a letter or digit."
            )
        if not callable(getattr(model, "predict", None)):
            raise StoreError(f"Teacher {name!r} must be a keras.Model (with `predict`); got {type(model).__name__}.")
    metadata = teacher_metadata or {}
    unknown = sorted(set(metadata) - set(teachers))
    if unknown:
        raise StoreError(f"`teacher_metadata` names teachers that are not given: {unknown}.")
    try:
        json.dumps(metadata)
    except TypeError as error:
        raise StoreError(f"`teacher_metadata` must be JSON-serialisable ({error}).") from None
    if dtype not in LOGIT_DTYPES:
        raise StoreError(f"`dtype` must be one of {LOGIT_DTYPES}; got {dtype!r}.")
    return metadata


def teacher_logits(name, model, images, num_classes, batch_size, dtype, verbose=0):
    """Run `model` once over `images` (uint8, store order) with `predict`; refuse non-finite logits.

    Returns float32 `(N, num_classes)` holding exactly the values that `dtype` can store.
    """
    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    ds = ds.map(lambda x: tf.cast(x, tf.float32), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    logits = model.predict(ds, verbose=verbose)  # Keras' compiled predict loop, training=False
    if isinstance(logits, (list, tuple, dict)):
        raise StoreError(
            f"Teacher {name!r} returned {type(logits).__name__}; a teacher must return logits (batch, classes)."
        )
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape != (len(images), num_classes):
        raise StoreError(
            f"Teacher {name!r} returned logits of shape {logits.shape}; expected ({len(images)}, {num_classes}) "
            "(one row per example, one column per class)."
        )
    _refuse_non_finite(name, logits, "")
    with np.errstate(over="ignore"):
        stored = logits.astype(dtype)
    _refuse_non_finite(name, stored, f" once stored as {dtype} (values beyond its range); use dtype='float32'")
    return stored.astype(np.float32)


def _refuse_non_finite(name, logits, how):
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        raise StoreError(
            f"Teacher {name!r} produced NaN or infinite logits{how} for {int(bad.sum())} of {len(logits)} "
            f"examples (first rows: {np.flatnonzero(bad)[:5].tolist()}). Nothing was stored for it; "
            "check the teacher's weights and inputs (raw pixels in [0, 255])."
        )


def _write_shard(store_dir, relative, records):
    path = os.path.join(store_dir, relative)
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
            count += 1
    return {"file": relative, "num_examples": count, "num_bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def write_example_shards(store_dir, ids, labels, images, bounds):
    """Write `examples/` shards (PNG images when `images` is not None); returns the shard entries."""
    os.makedirs(os.path.join(store_dir, EXAMPLES_DIR), exist_ok=True)
    pngs = None
    if images is not None:
        encode = tf.data.Dataset.from_tensor_slices(images).map(
            tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        batches = encode.batch(ENCODE_BATCH).prefetch(tf.data.AUTOTUNE)  # batches: far less per-item overhead
        pngs = (png for batch in batches.as_numpy_iterator() for png in batch)
    shards = []
    for index, (start, stop) in enumerate(bounds):
        records = (
            example_record(ids[row], labels[row], None if pngs is None else next(pngs)) for row in range(start, stop)
        )
        shards.append(_write_shard(store_dir, shard_file(EXAMPLES_DIR, index, len(bounds), "examples"), records))
    return shards


def write_teacher_shards(store_dir, name, ids, logits, bounds, dtype, metadata):
    """Write one teacher's shard set into a fresh `teachers/<name>-<token>/`; returns its manifest entry."""
    folder = f"{TEACHERS_DIR}/{name}-{uuid.uuid4().hex[:8]}"
    os.makedirs(os.path.join(store_dir, folder))
    shards = []
    for index, (start, stop) in enumerate(bounds):
        records = (logits_record(ids[row], logits[row], dtype) for row in range(start, stop))
        shards.append(_write_shard(store_dir, shard_file(folder, index, len(bounds), "logits"), records))
    return {"dtype": dtype, "num_classes": int(logits.shape[1]), "metadata": metadata, "added": now(), "shards": shards}


def write_manifest(store_dir, manifest):
    """Write `manifest.json` under a temporary name and rename it into place (atomic on POSIX)."""
    tmp = os.path.join(store_dir, f".{MANIFEST_FILE}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(store_dir, MANIFEST_FILE))
