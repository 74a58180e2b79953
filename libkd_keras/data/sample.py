"""The CIFAR-10 sample shipped with the package: `load_split("cifar10-sample", "train" | "test")`.

5,000 training images (500 per class) and 1,000 test images (100 per class), the original JPEG
bytes of `../shared/datasets/cifar10-jpeg.tar.gz`: per split and class, the first files by sorted
name. They are one tarball of the class-folder tree `<split>/<class>/NNNN.jpg`, read with no
network through the class-folder tarball loader; its sha256 is checked on every load.
See `libkd_keras/datasets/cifar10_sample/README.md`.
"""

import gzip
import hashlib
import io
import os
import tarfile

from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.folder import _is_image, tar_folder_catalog
from libkd_keras.data.names import SAMPLE_NAME

SAMPLE_PATH = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "datasets", "cifar10_sample", "cifar10_sample.tar.gz"
)
SAMPLE_SHA256 = "1067dd1b2273bda2e09a15c27a24d947d5ee1f72e9ed462118a0bcfe3db02e8d"
SAMPLE_PER_CLASS = {"train": 500, "test": 100}


def sample_catalog(split, image_size=None):
    """Catalog of one split of the shipped sample, after checking the tarball's sha256."""
    path, sha256 = SAMPLE_PATH, SAMPLE_SHA256
    if split not in SAMPLE_PER_CLASS:
        raise DataError(f"{SAMPLE_NAME} has splits 'train' and 'test'; got split={split!r}.")
    if not os.path.isfile(path):
        raise DataNotFoundError(f"The shipped CIFAR-10 sample {path!r} is missing; reinstall libkd_keras.")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != sha256:
        raise DataError(
            f"The shipped CIFAR-10 sample {path!r} is damaged (sha256 {digest[:16]}... instead of "
            f"{sha256[:16]}...); reinstall libkd_keras."
        )
    catalog = tar_folder_catalog(path, split, image_size)
    catalog.name = SAMPLE_NAME
    return catalog


def build_sample(root, out_path, per_class=None):
    """Writes the sample tarball from an extracted CIFAR-10 JPEG tree `<root>/<split>/<class>/*.jpg`.

    Deterministic: for each split and class, the first `per_class[split]` image files by sorted
    name, members in sorted order, no timestamps or owners, gzip without a time stamp. Returns
    the sha256 of the written file.

    >>> build_sample("/tmp/cifar", "cifar10_sample.tar.gz")
    '...'
    """
    per_class = per_class or SAMPLE_PER_CLASS
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for split, count in per_class.items():
            split_dir = os.path.join(root, split)
            for class_name in sorted(os.listdir(split_dir)):
                files = sorted(f for f in os.listdir(os.path.join(split_dir, class_name)) if _is_image(f))[:count]
                if len(files) < count:
                    raise DataError(f"{split_dir}/{class_name} has {len(files)} images; the sample needs {count}.")
                for name in files:
                    with open(os.path.join(split_dir, class_name, name), "rb") as f:
                        data = f.read()
                    info = tarfile.TarInfo(f"{split}/{class_name}/{name}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 0
                    archive.addfile(info, io.BytesIO(data))
    with (
        open(out_path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as gz,
    ):
        gz.write(buffer.getvalue())
    with open(out_path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
