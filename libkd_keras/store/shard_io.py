"""Writing the pieces of a store (example shards, teacher shards, the manifest), for `writer.py` and `shares.py`.

Every function writes through `tf.io.gfile` (`TFRecordWriter` and `files`), so any registered
filesystem works. Shards are numbered in the whole store (`index` of `count`), so a worker that
writes only some of them names them exactly as one process writing all would.
"""

import datetime

import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras.store import files
from libkd_keras.store.format import (
    EXAMPLES_DIR,
    MANIFEST_FILE,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    TEACHERS_DIR,
    example_record,
    logits_record,
    shard_file,
)

ENCODE_BATCH = 512


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sorted_rows(split):
    """`(ids, labels, images)` of `split` in ascending id order, the row order of every store."""
    order = np.argsort(split.ids, kind="stable")
    images = split.images if np.array_equal(order, np.arange(len(order))) else split.images[order]
    return split.ids[order], split.labels[order], images


def manifest_head(split, include_images, shard_size):
    """The manifest keys that depend only on the split and the layout (no shard lists, no times)."""
    return {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "dataset": split.name,
        "split": split.split,
        "num_examples": len(split),
        "fingerprint": split.fingerprint,
        "num_classes": split.num_classes,
        "class_names": list(split.class_names),
        "image_shape": list(split.image_shape),
        "includes_images": bool(include_images),
        "shard_size": shard_size,
    }


def finish_manifest(head, examples, teachers, created=None):
    created = created or now()
    return {
        **head,
        "examples": examples,
        "teachers": teachers,
        "created": created,
        "libkd_keras_version": libkd_keras.__version__,
    }


def _write_shard(store_dir, relative, records):
    path = files.join(store_dir, relative)
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
            count += 1
    return {"file": relative, "num_examples": count, "num_bytes": files.size(path), "sha256": files.sha256(path)}


def _numbered(bounds, numbering):
    """`[(index, start, stop)]` and the shard count; `numbering=(indices, count)` renumbers local `bounds`."""
    indices, count = numbering if numbering is not None else (range(len(bounds)), len(bounds))
    return [(index, start, stop) for index, (start, stop) in zip(indices, bounds)], count


def write_example_shards(store_dir, ids, labels, images, bounds, numbering=None):
    """Write `examples/` shards (PNG images when `images` is not None); returns the shard entries."""
    files.makedirs(files.join(store_dir, EXAMPLES_DIR))
    pngs = None
    if images is not None:
        encode = tf.data.Dataset.from_tensor_slices(images).map(
            tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        batches = encode.batch(ENCODE_BATCH).prefetch(tf.data.AUTOTUNE)  # batches: far less per-item overhead
        pngs = (png for batch in batches.as_numpy_iterator() for png in batch)
    shards, count = _numbered(bounds, numbering)
    entries = []
    for index, start, stop in shards:
        records = (
            example_record(ids[row], labels[row], None if pngs is None else next(pngs)) for row in range(start, stop)
        )
        entries.append(_write_shard(store_dir, shard_file(EXAMPLES_DIR, index, count, "examples"), records))
    return entries


def teacher_folder(name, token):
    return f"{TEACHERS_DIR}/{name}-{token}"


def write_row_shards(store_dir, folder, prefix, ids, rows, bounds, dtype, numbering=None):
    """Write `(id, row as little-endian dtype bytes)` records as `<folder>/<prefix>-*` shards; returns their entries.

    The rows of teacher logits (`(N, C)`), of view logits (`(N, V, C)`, flattened) and of view parameters.
    """
    files.makedirs(files.join(store_dir, folder))
    shards, count = _numbered(bounds, numbering)
    entries = []
    for index, start, stop in shards:
        records = (logits_record(ids[row], np.ravel(rows[row]), dtype) for row in range(start, stop))
        entries.append(_write_shard(store_dir, shard_file(folder, index, count, prefix), records))
    return entries


def write_teacher_shards(store_dir, folder, ids, logits, bounds, dtype, metadata, numbering=None):
    """Write one teacher's shards into `folder` (e.g. `teacher_folder(...)`); returns its manifest entry."""
    entries = write_row_shards(store_dir, folder, "logits", ids, logits, bounds, dtype, numbering)
    return {
        "dtype": dtype,
        "num_classes": int(logits.shape[1]),
        "metadata": metadata,
        "added": now(),
        "shards": entries,
    }


def write_manifest(store_dir, manifest):
    """Write `manifest.json` whole-or-nothing (a temporary, then a rename; atomic on local POSIX paths)."""
    files.write_json(files.join(store_dir, MANIFEST_FILE), manifest)
