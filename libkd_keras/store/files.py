"""File operations of the store, through `tf.io.gfile` so `gs://`, `ram://` and other registered filesystems work.

Local paths keep their POSIX guarantees (atomic `os.replace` of the manifest, atomic folder
renames for `rebuild_store`); on other filesystems a rename may be a copy, so completeness rests on
the manifest being written last: a folder without `manifest.json` never opens as a store.
"""

import hashlib
import json
import os
import posixpath
import uuid

import tensorflow as tf

gfile = tf.io.gfile


def is_local(path):
    """Whether `path` is a plain local path (no `scheme://`)."""
    return "://" not in os.fspath(path)


def join(*parts):
    parts = [os.fspath(p) for p in parts]
    return os.path.join(*parts) if is_local(parts[0]) else posixpath.join(*parts)


def normalise(path):
    """`path` without a trailing separator (`os.path.normpath` locally; it would break `scheme://`)."""
    path = os.fspath(path)
    return os.path.normpath(path) if is_local(path) else path.rstrip("/")


def split(path):
    """`(parent, name)` of a normalised path."""
    path = normalise(path)
    if is_local(path):
        parent, name = os.path.split(path)
        return parent or os.curdir, name
    return path.rsplit("/", 1)


def exists(path):
    return gfile.exists(path)


def isdir(path):
    return gfile.isdir(path)


def isfile(path):
    return gfile.exists(path) and not gfile.isdir(path)


def listdir(path):
    """Names in the folder `path` (no trailing '/'), or `[]` when it is not a folder."""
    if not gfile.isdir(path):
        return []
    return sorted({name.rstrip("/") for name in gfile.listdir(path)})


def makedirs(path):
    gfile.makedirs(path)


def rmtree(path):
    """Delete a folder (or file) and everything under it; nothing when it is not there."""
    try:
        if gfile.isdir(path):
            gfile.rmtree(path)
        elif gfile.exists(path):
            gfile.remove(path)
    except tf.errors.NotFoundError:
        pass


def size(path):
    return gfile.stat(path).length


def sha256(path, chunk=1 << 22):
    digest = hashlib.sha256()
    with gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path):
    with gfile.GFile(path, "r") as f:
        return json.loads(f.read())


def write_json(path, data):
    """Write JSON whole-or-nothing: a temporary beside `path`, then a rename over it.

    Locally the rename is atomic (`os.replace`, after fsync); elsewhere `gfile.rename` (on object
    stores a copy that creates the target object whole, or not at all).
    """
    folder, name = split(path)
    tmp = join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    text = json.dumps(data, indent=1)
    try:
        if is_local(path):
            with open(tmp, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            with gfile.GFile(tmp, "w") as f:
                f.write(text)
            gfile.rename(tmp, path, overwrite=True)
    finally:
        if gfile.exists(tmp):
            gfile.remove(tmp)
