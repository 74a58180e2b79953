"""Whole-or-nothing file writes: write under a temporary name in the target folder, then rename."""

import contextlib
import json
import os
import tempfile


def check_output_path(path, suffix):
    """Returns `path` as a str after checking its suffix and that its folder exists.

    Raises before any work is done, so a bad path never costs a conversion.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the output path must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise ValueError(f"the output path must end with '{suffix}'; got {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"the output path {path!r} is a folder; give a file name ending with '{suffix}'.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"the folder of the output path {path!r} does not exist ({folder}); create it first, "
            "e.g. os.makedirs(folder, exist_ok=True)."
        )
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def temporary_sibling(path, suffix=""):
    """Yields a fresh temporary file name beside `path`; the file is removed unless renamed away."""
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the renamed file gets usual permissions
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def write_bytes_atomic(path, data):
    with temporary_sibling(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
