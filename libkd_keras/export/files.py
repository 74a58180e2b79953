"""Output paths of exported files, checked before any work; the writers live in `libkd_keras.atomic_files`."""

import os


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
