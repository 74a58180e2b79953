"""Replacing a whole store (`precompute(..., force=True)`): write aside, swap in, finish an interrupted swap.

Locally the new store is written under `<path>.incomplete-<token>` (by `writer.py`); `swap_in` moves
the old one to `<path>.replaced-<token>`, renames the new one in and deletes the old, and a kill
between the two renames is finished by `finish_interrupted_replace` on the next write to `path`. On
other `tf.io.gfile` filesystems `delete_store` removes the old manifest first, then the other files.
"""

import os
import shutil
import uuid

from libkd_keras.store import files
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import EXAMPLES_DIR, MANIFEST_FILE, SHARES_DIR, TEACHERS_DIR

STORE_PARTS = (MANIFEST_FILE, EXAMPLES_DIR, TEACHERS_DIR, SHARES_DIR)


def check_replaceable(path):
    """`force=True` replaces a store, damaged or not, but never a folder holding other files."""
    if not files.exists(path):
        return
    if not files.isdir(path):
        raise StoreError(f"{path!r} is a file, not a teacher store; force=True replaces only a store folder.")
    others = sorted(n for n in files.listdir(path) if n not in STORE_PARTS and not n.startswith(f".{MANIFEST_FILE}."))
    if others:
        raise StoreError(
            f"{path!r} holds {others[:5]}, which are not part of a teacher store; force=True replaces only "
            "a store. Move those files away or choose another path."
        )


def delete_store(path):
    """The gfile form of replacing: the manifest first (the store stops opening), then the rest."""
    manifest = files.join(path, MANIFEST_FILE)
    if files.exists(manifest):
        files.rmtree(manifest)
    for name in files.listdir(path):
        files.rmtree(files.join(path, name))


def swap_in(tmp, path):
    """Rename the whole new store `tmp` to `path`, moving an old store aside first and deleting it last."""
    aside = None
    if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
        os.rmdir(path)  # an empty folder given as the destination
    elif os.path.lexists(path):
        aside = f"{os.path.normpath(path)}.replaced-{uuid.uuid4().hex[:8]}"
        os.rename(path, aside)
    try:
        os.rename(tmp, path)
    except BaseException:
        if aside is not None:
            os.rename(aside, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def finish_interrupted_replace(path):
    """Finish a local `force=True` replacement that a kill interrupted; does nothing when none was.

    With `<path>` missing, the whole new store (`<path>.incomplete-*` holding a manifest) is moved
    in, or else the old one (`<path>.replaced-*`) back; then the old ones are deleted.
    """
    if not files.is_local(path):
        return  # no renames are used there
    base = os.path.normpath(path)
    parent, name = os.path.split(base)
    parent = parent or os.curdir
    siblings = os.listdir(parent) if os.path.isdir(parent) else []
    aside = [os.path.join(parent, n) for n in siblings if n.startswith(f"{name}.replaced-")]
    if not aside:
        return
    if not os.path.lexists(base):
        whole = [
            os.path.join(parent, n)
            for n in siblings
            if n.startswith(f"{name}.incomplete-") and os.path.isfile(os.path.join(parent, n, MANIFEST_FILE))
        ]
        newest = max(whole or aside, key=os.path.getmtime)
        os.rename(newest, base)
    for folder in aside:
        shutil.rmtree(folder, ignore_errors=True)
