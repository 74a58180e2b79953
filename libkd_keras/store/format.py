"""The teacher-store format: folder layout, record features and the manifest schema (version 1).

A store is a folder:

    <store>/
      manifest.json                       the only entry point; written last (temp name + rename)
      examples/examples-00000-of-00010.tfrecord
          one tf.train.Example per example, ascending id order:
            id     int64     the example's id in its split (`Split.ids`)
            label  int64     the true label
            image  bytes     PNG-encoded uint8 image (only when `includes_images` is true)
      teachers/<name>-<token>/logits-00000-of-00010.tfrecord
          one tf.train.Example per example, same order and shard boundaries as `examples/`:
            id     int64
            logits bytes     `num_classes` little-endian float16 or float32 values (the teacher's `dtype`)

      shares/share-00000-of-00002.json    only in a store written by several workers (`shares.py`):
          which shards each worker wrote; provenance, never read once the manifest exists

The folder may live on any `tf.io.gfile` filesystem (local, `gs://`, `ram://`, ...).
Each teacher has its own shard set, so adding a teacher writes only its folder and a new manifest,
never rewriting the others. `<token>` is random: a teacher rewritten with `overwrite=True` gets a
new folder and the old one is deleted only after the new manifest is in place. Files the manifest
does not list (e.g. left by an interrupted run) are not part of the store.

`manifest.json` (every key required unless marked optional):

    {
      "format": "libkd_keras.teacher_store",
      "format_version": 1,
      "dataset": "cifar10",            "split": "train",
      "num_examples": 50000,           "fingerprint": "<Split.fingerprint, sha256 hex>",
      "num_classes": 10,               "class_names": ["airplane", ...],
      "image_shape": [32, 32, 3],      "includes_images": true,
      "shard_size": 5000,
      "examples": [<shard>, ...],
      "teachers": {
        "<name>": {"dtype": "float16", "num_classes": 10, "metadata": {...}, "added": "<iso time>",
                   "shards": [<shard>, ...]}
      },
      "created": "<iso time>",         "libkd_keras_version": "0.1.0"
    }
    <shard> = {"file": "<path relative to the store>", "num_examples": 5000, "num_bytes": 123456, "sha256": "<hex>"}

A reader checks, before any use, the manifest keys, that every listed shard exists with its byte
size (and, by default, its sha256), and, when reading, that every shard yields exactly
`num_examples` records whose ids match the example shards.
"""

import re

import numpy as np
import tensorflow as tf

from libkd_keras.store import files
from libkd_keras.store.errors import StoreError

STORE_FORMAT = "libkd_keras.teacher_store"
STORE_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
EXAMPLES_DIR = "examples"
TEACHERS_DIR = "teachers"
SHARES_DIR = "shares"  # only in stores written by several workers (`shares.py`)
DEFAULT_SHARD_SIZE = 5000
LOGIT_DTYPES = ("float16", "float32")
TEACHER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # no '/', ':' or '*' (used by analyses specs)

# Record features.
ID, LABEL, IMAGE, LOGITS = "id", "label", "image", "logits"
EXAMPLE_FEATURES = {ID: tf.io.FixedLenFeature([], tf.int64), LABEL: tf.io.FixedLenFeature([], tf.int64)}
EXAMPLE_FEATURES_WITH_IMAGE = {**EXAMPLE_FEATURES, IMAGE: tf.io.FixedLenFeature([], tf.string)}
LOGITS_FEATURES = {ID: tf.io.FixedLenFeature([], tf.int64), LOGITS: tf.io.FixedLenFeature([], tf.string)}

MANIFEST_KEYS = {
    "format": str,
    "format_version": int,
    "dataset": str,
    "split": str,
    "num_examples": int,
    "fingerprint": str,
    "num_classes": int,
    "class_names": list,
    "image_shape": list,
    "includes_images": bool,
    "shard_size": int,
    "examples": list,
    "teachers": dict,
}
SHARD_KEYS = {"file": str, "num_examples": int, "num_bytes": int, "sha256": str}
TEACHER_KEYS = {"dtype": str, "num_classes": int, "metadata": dict, "shards": list}


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def example_record(example_id, label, png=None):
    """Serialized `tf.train.Example` of one example (id, label, optional PNG bytes)."""
    features = {ID: _int64(example_id), LABEL: _int64(label)}
    if png is not None:
        features[IMAGE] = _bytes(png)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def logits_record(example_id, logits_row, dtype):
    """Serialized `tf.train.Example` of one teacher output row (id, logits as little-endian `dtype`)."""
    raw = np.asarray(logits_row, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    features = {ID: _int64(example_id), LOGITS: _bytes(raw)}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def decode_logits(raw_batch, dtype, num_classes):
    """`(B,)` tf.string of logits bytes -> float32 `(B, num_classes)`."""
    values = tf.io.decode_raw(raw_batch, tf.dtypes.as_dtype(dtype), little_endian=True)
    return tf.cast(tf.reshape(values, [-1, num_classes]), tf.float32)


def shard_file(folder, index, count, prefix):
    return f"{folder}/{prefix}-{index:05d}-of-{count:05d}.tfrecord"


def shard_bounds(num_examples, shard_size):
    """`[(start, stop), ...]` row ranges of consecutive shards of at most `shard_size` rows."""
    starts = range(0, max(num_examples, 1), shard_size)
    return [(start, min(start + shard_size, num_examples)) for start in starts]


def file_sha256(path):
    """sha256 hex of a file on any `tf.io.gfile` path."""
    return files.sha256(path)


def _check_keys(record, keys, where):
    for key, kind in keys.items():
        if key not in record:
            raise StoreError(f"{where} lacks the key {key!r}; the store is damaged or not a teacher store.")
        if not isinstance(record[key], kind) or (kind is int and isinstance(record[key], bool)):
            raise StoreError(f"{where}: {key!r} should be {kind.__name__}, got {type(record[key]).__name__}.")


def validate_manifest(manifest, where):
    """Raise `StoreError` unless `manifest` follows the schema above."""
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{where} is not a teacher-store manifest (its 'format' is not {STORE_FORMAT!r}).")
    _check_keys(manifest, MANIFEST_KEYS, where)
    if manifest["format_version"] > STORE_FORMAT_VERSION:
        raise StoreError(
            f"{where} has store format version {manifest['format_version']}; this libkd_keras reads up to "
            f"{STORE_FORMAT_VERSION}. Upgrade libkd_keras."
        )
    if len(manifest["class_names"]) != manifest["num_classes"]:
        raise StoreError(f"{where}: {len(manifest['class_names'])} class names for {manifest['num_classes']} classes.")
    for shard in manifest["examples"]:
        _check_keys(shard, SHARD_KEYS, f"{where} (example shard)")
    if sum(s["num_examples"] for s in manifest["examples"]) != manifest["num_examples"]:
        raise StoreError(f"{where}: example shard counts do not add up to num_examples={manifest['num_examples']}.")
    for name, teacher in manifest["teachers"].items():
        _check_keys(teacher, TEACHER_KEYS, f"{where} (teacher {name!r})")
        if teacher["dtype"] not in LOGIT_DTYPES or teacher["num_classes"] != manifest["num_classes"]:
            raise StoreError(
                f"{where}: teacher {name!r} has dtype {teacher['dtype']!r} and {teacher['num_classes']} classes."
            )
        counts = [s["num_examples"] for s in teacher["shards"]]
        if counts != [s["num_examples"] for s in manifest["examples"]]:
            raise StoreError(f"{where}: teacher {name!r} shards do not line up with the example shards.")
        for shard in teacher["shards"]:
            _check_keys(shard, SHARD_KEYS, f"{where} (teacher {name!r} shard)")
