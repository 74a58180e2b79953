"""What the CLI needs before TensorFlow: the data sources' names, the rule that tells a path from a name, the errors.

The CLI checks `data.dataset` with `missing_path` before it imports TensorFlow, so a mistyped path
is refused at once; `load_split` applies the same rule. Bad data sources raise `DataError`, which
the CLI catches and prints without a traceback. No TensorFlow here.
"""

import os


class DataError(ValueError):
    """A data source or split cannot be used as given (the message says why and what to do)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A path, split folder or prepared data set that does not exist."""


SAMPLE_NAME = "cifar10-sample"
TFDS_SOURCES = {
    # name: (splits offered, host tfds downloads from, default image size)
    "cifar10": (("train", "test"), "www.cs.toronto.edu", None),
    "tf_flowers": (("train", "test"), "storage.googleapis.com", 224),
}
SOURCES_HELP = (
    f"{SAMPLE_NAME!r} (the CIFAR-10 sample shipped with the package, offline), "
    f"a tfds name ({', '.join(TFDS_SOURCES)}), a folder <root>/<split>/<class>/*.jpg|png, a tarball of such "
    "a folder (e.g. cifar10-jpeg.tar.gz), cifar-10-python.tar.gz, or an extracted cifar-10-batches-py folder"
)


def looks_like_path(source):
    """Whether `source` (not an existing file or folder) was meant as a path rather than a source name."""
    return os.sep in source or source.startswith(".") or source.endswith((".gz", ".tar", ".tgz"))


def missing_path(source):
    """The error message for a `source` that is meant as a path and does not exist, else None."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    source = os.fspath(source)
    if source == SAMPLE_NAME or source in TFDS_SOURCES:
        return None
    path = os.path.expanduser(source)
    if os.path.exists(path) or not looks_like_path(source):
        return None
    return f"Data source path {path!r} does not exist. Sources: {SOURCES_HELP}."
