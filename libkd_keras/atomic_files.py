"""Whole-or-nothing file writes, used by every part that saves something.

Each writer works on a temporary name in the target folder and renames it over the target only
when the file is complete, so an interrupted run never leaves a half-written file under the real
name (and a reader never takes one for whole). A kill can still leave the temporary itself
(`.<name>.<random>.tmp[<suffix>]`), or a `tempfile_folder` (`.libkd-tmp-<random>/`);
`remove_stale_temporaries` deletes them when a folder is reopened.
"""

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def temporary_sibling(path, suffix=""):
    """Yields a fresh temporary file name beside `path` (creating its folder); removed unless renamed away.

    `suffix` ends the temporary name, for writers that insist on an extension (`.keras`, `.png`).
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the renamed file gets usual permissions
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


# mkstemp's names: "." + target name + "." + 8 random characters + ".tmp" + optional suffix
# (".keras", ".png", ".weights.h5").
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+){0,2}$")


def is_temporary(name):
    """Whether a file name is one `temporary_sibling` makes."""
    return bool(_TEMPORARY.match(name))


def remove_stale_temporaries(folder):
    """Deletes the temporaries an interrupted writer left under `folder` (files, and `tempfile_folder`s); returns
    how many.

    Call it only while no other process writes there (the run folder's lock guarantees that).
    """
    removed = 0
    for root, folders, files in os.walk(folder):
        for name in [n for n in folders if n.startswith(TEMPFILE_FOLDER_PREFIX)]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            folders.remove(name)
            removed += 1
        for name in files:
            if is_temporary(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(root, name))
                    removed += 1
    return removed


TEMPFILE_FOLDER_PREFIX = ".libkd-tmp-"


@contextlib.contextmanager
def tempfile_folder(folder):
    """Python's `tempfile` works in a new folder under `folder` while the block runs (removed afterwards).

    For libraries that write large temporaries through `tempfile` (Keras' LiteRT export writes a
    SavedModel there): a kill leaves them under `folder`, where `remove_stale_temporaries` finds
    them, instead of in $TMPDIR, where nothing ever would. Sets `tempfile.tempdir` for the process.
    """
    os.makedirs(folder, exist_ok=True)
    private = tempfile.mkdtemp(prefix=TEMPFILE_FOLDER_PREFIX, dir=folder)
    previous, tempfile.tempdir = tempfile.tempdir, private
    try:
        yield private
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(private, ignore_errors=True)


def write_bytes_atomic(path, data):
    with temporary_sibling(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def json_safe(value):
    """A JSON-safe copy: numpy scalars and arrays to Python, NaN/inf to None, tuples to lists, paths to str."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path, data, indent=2):
    write_text_atomic(path, json.dumps(json_safe(data), indent=indent) + "\n")


def read_json(path, default=None):
    """The JSON at `path`, or `default` when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def file_digest(path):
    """`(size in bytes, sha256 hex)` of a local file: what a marker records to notice a damaged file later."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return os.path.getsize(path), digest.hexdigest()


def keras_file_problem(path):
    """None when `path` is a whole `.keras` file, else what is wrong with it (a cheap check before relying on it).

    A `.keras` file is a zip: one cut short has no central directory, and an altered member fails its CRC.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            corrupt = archive.testzip()
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        return f"{str(path)!r} is not a whole .keras file ({error})"
    return None if corrupt is None else f"{str(path)!r} is damaged (its part {corrupt!r} fails its checksum)"


def save_model_atomic(model, path):
    """`model.save(path)` through a temporary `.keras` file and a rename."""
    with temporary_sibling(path, suffix=".keras") as tmp:
        model.save(tmp)
        os.replace(tmp, path)
