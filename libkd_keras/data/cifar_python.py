"""The CIFAR-10 "python version": `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`.

Deterministic order: `data_batch_1` ... `data_batch_5` for train, `test_batch` for test, rows in
file order (the order of the original release, also used by tfds' `cifar10`).
"""

import io
import os
import pickle

import numpy as np

from libkd_keras.data.catalog import Catalog
from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.folder import open_tar_stream
from libkd_keras.data.images import as_size, center_crop_resize

BATCH_FOLDER = "cifar-10-batches-py"
BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META_FILE = "batches.meta"


def is_cifar_python_tarball(path):
    """True for a tarball whose first member lies under `cifar-10-batches-py/`."""
    with open_tar_stream(path) as archive:
        first = next(iter(archive), None)
    return first is not None and first.name.strip("./").startswith(BATCH_FOLDER)


def batches_folder(path):
    """The `cifar-10-batches-py` folder at `path` or directly inside it, else None."""
    for candidate in (path, os.path.join(path, BATCH_FOLDER)):
        if os.path.isfile(os.path.join(candidate, META_FILE)):
            return candidate
    return None


# What a CIFAR batch pickle may name: numpy's array, dtype and scalar reconstruction (as numpy 1.x
# and 2.x pickle them), and `_codecs.encode` (how protocol-2 pickles of Python 3 hold bytes).
# Dicts, lists, bytes, str and ints need no lookup. Anything else is refused, never called.
SAFE_GLOBALS = {
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in [
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    ]
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch does not contain")
        return super().find_class(module, name)


def _unpickle(data, where):
    """Unpickles a CIFAR batch with an allow-list: only numpy arrays and builtin containers."""
    try:
        return _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # a truncated, foreign or malicious file
        raise DataError(
            f"{where} is not a readable CIFAR-10 python batch ({error}); it was not loaded. Use the original "
            "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html."
        ) from None


def _entry(content, key, where):
    if not isinstance(content, dict) or key not in content:
        found = sorted(map(repr, content)) if isinstance(content, dict) else type(content).__name__
        raise DataError(f"{where} is not a CIFAR-10 python batch: it has no {key!r} entry (found {found}).")
    return content[key]


def _class_names(meta):
    names = _entry(meta, b"label_names", META_FILE)
    if not isinstance(names, (list, tuple)) or len(names) < 2 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{META_FILE}: `label_names` must be a list of at least 2 names; got {names!r:.200}.")
    return tuple(n.decode() if isinstance(n, bytes) else n for n in names)


def _batch_arrays(batch, name, num_classes):
    data, labels = _entry(batch, b"data", name), _entry(batch, b"labels", name)
    try:
        data = np.asarray(data)
        labels = np.asarray(labels, np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name}: `data` or `labels` is not numeric ({error}).") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(
            f"{name}: expected uint8 `data` of shape (N, 3072) and N labels; got {data.dtype} {data.shape} "
            f"and {len(labels)} labels."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{name}: labels must lie in [0, {num_classes - 1}]; got {labels.min()}..{labels.max()}.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def cifar_python_catalog(path, split, image_size=None):
    if split not in BATCH_FILES:
        raise DataError(f"CIFAR-10 has splits 'train' and 'test'; got split={split!r}.")
    wanted = BATCH_FILES[split] + [META_FILE]
    blobs = {}
    if os.path.isdir(path):
        folder = batches_folder(path)
        for name in wanted:
            file = os.path.join(folder, name)
            if not os.path.isfile(file):
                raise DataNotFoundError(f"CIFAR-10 batch file {file!r} is missing.")
            with open(file, "rb") as f:
                blobs[name] = f.read()
    else:
        with open_tar_stream(path) as archive:
            for member in archive:
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted:
                    blobs[name] = archive.extractfile(member).read()
        missing = [n for n in wanted if n not in blobs]
        if missing:
            raise DataNotFoundError(f"CIFAR-10 tarball {path!r} lacks {missing}.")
    class_names = _class_names(_unpickle(blobs[META_FILE], META_FILE))
    data, labels = [], []
    for name in BATCH_FILES[split]:
        images, batch_labels = _batch_arrays(_unpickle(blobs[name], name), name, len(class_names))
        data.append(images)
        labels.append(batch_labels)
    images, labels = np.concatenate(data), np.concatenate(labels)
    used = int(labels.max()) + 1 if len(labels) else 0
    if split == "train" and used < len(class_names):  # (a small test split may well lack the last class)
        raise DataError(
            f"{META_FILE} names {len(class_names)} classes, but the training batches' labels go up to {used - 1} "
            f"only: {', '.join(map(repr, class_names[used:]))} would be classes without a single training image. "
            f"Use the {META_FILE} that came with these batches (CIFAR-10's names 10 classes)."
        )
    size = as_size(image_size)

    def load_images(positions):
        selected = images[positions]
        if size is None or size == selected.shape[1:3]:
            return np.ascontiguousarray(selected)
        chunks = [selected[i : i + 1024] for i in range(0, len(selected), 1024)]
        return np.concatenate([center_crop_resize(chunk, size).numpy() for chunk in chunks])

    return Catalog("cifar10", labels, class_names, load_images)
