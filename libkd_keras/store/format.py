"""The teacher-store format: layout, record features, manifest schema (version 1), views, shares, temporary names.

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

      views/params-00000-of-00010.tfrecord              only in a multi-view store (below):
          id + V x 3 uint8 (flip, top, left) as `logits` bytes, the example shards' bounds
      teachers/<name>-<token>/views-00000-of-00010.tfrecord   id + V x C logits (the teacher's dtype)

      shares/share-00000-of-00002.json    only in a store written by several workers (below):
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
                   "shards": [<shard>, ...],
                   "view_shards": [<shard>, ...]}        (multi-view stores only)
      },
      "views": {"count": V, "padding": 4, "image_shape": [32, 32, 3], "seed": 0,
                "shards": [<shard>, ...]},              (optional: a multi-view store)
      "created": "<iso time>",         "updated": "<iso time>" (optional),
      "libkd_keras_version": "0.1.0"
    }
    <shard> = {"file": "<path relative to the store>", "num_examples": 5000, "num_bytes": 123456, "sha256": "<hex>"}

A reader checks, before any use, the manifest keys, that every listed shard exists with its byte
size (and, by default, its sha256), and, when reading, that every shard yields exactly
`num_examples` records whose ids match the example shards.

Multi-view stores (`read.py` makes and replays the views: `ViewRecipe`, `replay`): V distinct flip-and-crop views per
example, their parameters drawn from `(seed, id)`, and every teacher's logits on each. A store
without "views" is a single-view store.

Shares: several workers write one store. Shard `j` of the id-ordered store belongs to worker
`j % n`, so every worker names its shard files exactly as one process writing all would; the
shards of a teacher share the folder `<name>-<share_token>` (the same on every worker). Worker `i`
writes its shards, then `shares/share-<i>-of-<n>.json`:

    {"format": "libkd_keras.teacher_store_share", "worker_index": i, "num_workers": n,
     "num_shards": 10, "config": {<manifest keys of the split and layout>, "num_workers": n,
                                  "dtype": ..., "teachers": [<name>, ...], "metadata": {...}},
     "examples": [<shard> + {"index": j, "first_id": ..., "last_id": ...}, ...],
     "teachers": {"<name>": <the manifest's teacher entry, its shards with index and id range>},
     "finished": "<iso time>"}

The manifest is written once every share exists, agrees and covers every shard exactly once.

Temporary names, never opened as a store: a new local store is written as
`<store>.incomplete-<token>` and renamed to `<store>` once whole; a store being replaced waits as
`<store>.replaced-<token>` until the new one is in; JSON files are written as `.<name>.<token>.tmp`
beside their final name (`files.write_json`).
"""

import datetime
import hashlib
import re
import uuid

import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras.data import DataError
from libkd_keras.store import files

STORE_FORMAT = "libkd_keras.teacher_store"
STORE_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
EXAMPLES_DIR = "examples"
TEACHERS_DIR = "teachers"
VIEWS_DIR = "views"  # only in multi-view stores
SHARES_DIR = "shares"  # only in stores written by several workers
STORE_PARTS = (MANIFEST_FILE, EXAMPLES_DIR, TEACHERS_DIR, VIEWS_DIR, SHARES_DIR)  # all a store folder holds
INCOMPLETE, REPLACED = "incomplete", "replaced"  # `<store>.<INCOMPLETE>-<token>`, `<store>.<REPLACED>-<token>`
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
VIEW_KEYS = {"count": int, "padding": int, "image_shape": list, "seed": int, "shards": list}
SHARE_FORMAT = "libkd_keras.teacher_store_share"
SHARE_NAME = re.compile(r"^share-(\d{5})-of-(\d{5})\.json$")


class StoreError(DataError):
    """Every store problem: missing, damaged, or not fitting what it is used with (the format's checks raise it).

    A `DataError`, so the CLI prints it without a traceback.
    """


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def example_record(example_id, label, png=None):
    """Serialized `tf.train.Example` of one example (id, label, optional PNG bytes)."""
    features = {ID: _int64(example_id), LABEL: _int64(label)}
    if png is not None:
        features[IMAGE] = _bytes(png)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def logits_record(example_id, logits_row, dtype):
    """Serialized `tf.train.Example` of one teacher output row (id, logits as little-endian `dtype`)."""
    raw = np.asarray(logits_row, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    features = {ID: _int64(example_id), LOGITS: _bytes(raw)}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def decode_logits(raw_batch, dtype, num_classes):
    """`(B,)` tf.string of logits bytes -> float32 `(B, num_classes)`."""
    values = tf.io.decode_raw(raw_batch, tf.dtypes.as_dtype(dtype), little_endian=True)
    return tf.cast(tf.reshape(values, [-1, num_classes]), tf.float32)


def shard_file(folder, index, count, prefix):
    return f"{folder}/{prefix}-{index:05d}-of-{count:05d}.tfrecord"


def teacher_folder(name, token):
    """`teachers/<name>-<token>`, the folder of one teacher's shards."""
    return f"{TEACHERS_DIR}/{name}-{token}"


def new_token():
    """A random 8-hex-digit token: a new teacher folder, a temporary store or a store moved aside."""
    return uuid.uuid4().hex[:8]


def share_token(fingerprint, name):
    """The teacher folder's token in a store written by several workers: the same on every worker."""
    return hashlib.sha256(f"{fingerprint}:{name}".encode()).hexdigest()[:8]


def share_file(index, count):
    """`shares/share-<index>-of-<count>.json`, worker `index`'s share of a store written by `count` workers."""
    return f"{SHARES_DIR}/share-{index:05d}-of-{count:05d}.json"


def aside(path, kind, token=None):
    """`<path>.<kind>-<token>` (kind `INCOMPLETE` or `REPLACED`): a local store beside its final name."""
    return f"{path}.{kind}-{token or new_token()}"


def shard_bounds(num_examples, shard_size):
    """`[(start, stop), ...]` row ranges of consecutive shards of at most `shard_size` rows."""
    starts = range(0, max(num_examples, 1), shard_size)
    return [(start, min(start + shard_size, num_examples)) for start in starts]


def now():
    """The manifest's times: UTC, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
    """The whole manifest: `manifest_head`'s keys, the shard lists, the time and the library version."""
    return {
        **head,
        "examples": examples,
        "teachers": teachers,
        "created": created or now(),
        "libkd_keras_version": libkd_keras.__version__,
    }


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


def validate_views(manifest, where):
    """Raise `StoreError` unless the optional "views" parts of `manifest` are consistent."""
    views = manifest.get("views")
    teachers_with = {n for n, t in manifest["teachers"].items() if "view_shards" in t}
    if views is None:
        if teachers_with:
            raise StoreError(f"{where}: teachers {sorted(teachers_with)} have view shards but the store has no views.")
        return
    for key, kind in VIEW_KEYS.items():
        if not isinstance(views.get(key), kind) or isinstance(views.get(key), bool):
            raise StoreError(f"{where}: views[{key!r}] should be {kind.__name__}; the store is damaged.")
    if views["image_shape"] != manifest["image_shape"]:
        raise StoreError(
            f"{where}: views were made for images {views['image_shape']}, the store holds {manifest['image_shape']}."
        )
    counts = [s["num_examples"] for s in manifest["examples"]]
    missing = sorted(set(manifest["teachers"]) - teachers_with)
    if missing:
        raise StoreError(f"{where}: teachers {missing} have no view shards in a multi-view store (damaged).")
    for name in ["views", *sorted(teachers_with)]:
        shards = views["shards"] if name == "views" else manifest["teachers"][name]["view_shards"]
        if [s.get("num_examples") for s in shards] != counts:
            raise StoreError(f"{where}: the view shards of {name!r} do not line up with the example shards.")
