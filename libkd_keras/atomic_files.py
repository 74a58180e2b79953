"""Whole-or-nothing file writes, used by every part that saves something.

Each writer works on a temporary name in the target folder and renames it over the target only
when the file is complete, so an interrupted run never leaves a half-written file under the real
name (and a reader never takes one for whole). A kill can still leave the temporary itself
(`.<name>.<random>.tmp[<suffix>]`); `remove_stale_temporaries` deletes them when a folder is reopened.
"""

import contextlib
import json
import math
import os
import re
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
    """Deletes the temporaries an interrupted writer left under `folder`; returns how many.

    Call it only while no other process writes there (the run folder's lock guarantees that).
    """
    removed = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if is_temporary(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(root, name))
                    removed += 1
    return removed


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


def save_model_atomic(model, path):
    """`model.save(path)` through a temporary `.keras` file and a rename."""
    with temporary_sibling(path, suffix=".keras") as tmp:
        model.save(tmp)
        os.replace(tmp, path)
