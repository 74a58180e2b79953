"""`load_split`: one entry point for every data source."""

import os
import tarfile

from libkd_keras.data.catalog import balanced_limit
from libkd_keras.data.cifar_python import batches_folder, cifar_python_catalog, is_cifar_python_tarball
from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.folder import folder_catalog, tar_folder_catalog
from libkd_keras.data.names import SAMPLE_NAME, SOURCES_HELP, TFDS_SOURCES, missing_path
from libkd_keras.data.sample import sample_catalog
from libkd_keras.data.split import Split
from libkd_keras.data.tfds_sources import tfds_catalog


def load_split(source, split, *, data_dir=None, limit=None, image_size=None, seed=0):
    """Read one split of `source` into memory as a `Split`.

    Args:
        source: `"cifar10-sample"` (5,000 train / 1,000 test CIFAR-10 images shipped with the package,
            no network), a tfds name (`"cifar10"`, `"tf_flowers"`), a class-folder tree `<root>/<split>/<class>/`,
            a tarball of one, `cifar-10-python.tar.gz` or an extracted `cifar-10-batches-py` folder.
        split: `"train"` or `"test"` (any split folder name for folder sources).
        data_dir: tfds data dir for named sources.
        limit: keep a class-balanced subset of this many examples, the first of each class in the
            deterministic order (ids keep their positions in the full split).
        image_size: int or `(height, width)`; images are centre-cropped and resized to it.
            Default: the images' own size (folders: the first image's), 224 for `tf_flowers`.
        seed: the seed of the `tf_flowers` train/test partition (other sources ignore it).

    Example:
    >>> train = load_split("/tmp/cifar10-jpeg", "train", limit=5000)
    >>> train.images.shape, train.fingerprint[:8]
    ((5000, 32, 32, 3), '...')
    """
    catalog = _catalog(source, split, data_dir, image_size, seed)
    positions = balanced_limit(catalog.labels, len(catalog.class_names), limit)
    images = catalog.load_images(positions)
    return Split(images, catalog.labels[positions], positions, catalog.class_names, catalog.name, split)


def _catalog(source, split, data_dir, image_size, seed):
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"`source` must be a name or a path; got {type(source).__name__}. Sources: {SOURCES_HELP}.")
    source = os.fspath(source)
    if source == SAMPLE_NAME:
        return sample_catalog(split, image_size)
    if source in TFDS_SOURCES:
        return tfds_catalog(source, split, data_dir, image_size, seed)
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        if batches_folder(path):
            return cifar_python_catalog(path, split, image_size)
        return folder_catalog(path, split, image_size)
    if os.path.isfile(path):
        if not tarfile.is_tarfile(path):
            raise DataError(f"{path!r} is a file but not a tarball. Sources: {SOURCES_HELP}.")
        if is_cifar_python_tarball(path):
            return cifar_python_catalog(path, split, image_size)
        return tar_folder_catalog(path, split, image_size)
    missing = missing_path(source)
    if missing:
        raise DataNotFoundError(missing)
    raise DataError(f"Unknown data source {source!r}. Sources: {SOURCES_HELP}.")
