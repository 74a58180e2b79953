"""The CIFAR-10 "python version": `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`.

Deterministic order: `data_batch_1` ... `data_batch_5` for train, `test_batch` for test, rows in
file order (the order of the original release, also used by tfds' `cifar10`).
"""

import os
import pickle
import tarfile

import numpy as np

from libkd_keras.data.catalog import Catalog
from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.images import as_size, center_crop_resize

BATCH_FOLDER = "cifar-10-batches-py"
BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META_FILE = "batches.meta"


def is_cifar_python_tarball(path):
    """True for a tarball whose first member lies under `cifar-10-batches-py/`."""
    with tarfile.open(path, mode="r|*") as archive:
        first = next(iter(archive), None)
    return first is not None and first.name.strip("./").startswith(BATCH_FOLDER)


def batches_folder(path):
    """The `cifar-10-batches-py` folder at `path` or directly inside it, else None."""
    for candidate in (path, os.path.join(path, BATCH_FOLDER)):
        if os.path.isfile(os.path.join(candidate, META_FILE)):
            return candidate
    return None


def _unpickle(data, where):
    try:
        return pickle.loads(data, encoding="bytes")
    except Exception as error:  # a truncated or foreign file
        raise DataError(f"{where} is not a readable CIFAR-10 python batch ({error}).") from None


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
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted:
                    blobs[name] = archive.extractfile(member).read()
        missing = [n for n in wanted if n not in blobs]
        if missing:
            raise DataNotFoundError(f"CIFAR-10 tarball {path!r} lacks {missing}.")
    meta = _unpickle(blobs[META_FILE], META_FILE)
    class_names = tuple(n.decode() for n in meta[b"label_names"])
    data, labels = [], []
    for name in BATCH_FILES[split]:
        batch = _unpickle(blobs[name], name)
        data.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int64))
    images, labels = np.concatenate(data), np.concatenate(labels)
    size = as_size(image_size)

    def load_images(positions):
        selected = images[positions]
        if size is None or size == selected.shape[1:3]:
            return np.ascontiguousarray(selected)
        chunks = [selected[i : i + 1024] for i in range(0, len(selected), 1024)]
        return np.concatenate([center_crop_resize(chunk, size).numpy() for chunk in chunks])

    return Catalog("cifar10", labels, class_names, load_images)
