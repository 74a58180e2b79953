"""Named sources read through `tensorflow-datasets`: `cifar10` and `tf_flowers`.

Order: the order `tfds` reads the prepared split with `shuffle_files=False`. `tf_flowers` has only
a `train` split; `load_split` derives `train` / `test` from it with a class-stratified seeded
permutation (15% of each class to `test`), so the same `seed` always gives the same partition.

Offline, with nothing prepared in the tfds data dir, this fails at once with a `DataNotFoundError`
saying what to pass instead; it never enters tfds' download retries.
"""

import socket

import numpy as np
import tensorflow as tf

from libkd_keras.data.catalog import Catalog
from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.images import as_size, center_crop_resize
from libkd_keras.data.names import TFDS_SOURCES

FLOWERS_TEST_FRACTION = 0.15
READ_BATCH = 1024


def can_reach(host, port=443, timeout=3.0):
    """Whether a TCP connection to `host` opens within `timeout` seconds (the download check)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load(name, split, data_dir):
    """`(tf.data of (image, label), info)`, preparing the data set only when it can be downloaded."""
    import tensorflow_datasets as tfds

    kwargs = dict(split=split, data_dir=data_dir, shuffle_files=False, as_supervised=True, with_info=True)
    try:
        return tfds.load(name, download=False, **kwargs)
    except (AssertionError, FileNotFoundError, OSError):
        pass  # not prepared in data_dir
    host = TFDS_SOURCES[name][1]
    if not can_reach(host):
        where = data_dir or "the default tfds data dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
        raise DataNotFoundError(
            f"Data set {name!r} is not prepared in {where} and cannot be downloaded ({host} is unreachable). "
            f"Pass `data_dir` pointing at a tfds folder where {name!r} is prepared, or give a folder path "
            "(<root>/<split>/<class>/*.jpg|png, e.g. the extracted cifar10-jpeg.tar.gz) or a tarball "
            "(cifar10-jpeg.tar.gz, cifar-10-python.tar.gz) as the source instead."
        )
    try:
        return tfds.load(name, download=True, **kwargs)
    except Exception as error:
        raise DataError(f"Downloading and preparing {name!r} with tfds failed: {error}") from error


def _read_all(ds, image_size):
    if image_size is not None:
        ds = ds.map(
            lambda image, label: (center_crop_resize(image, image_size), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    images, labels = [], []
    for image_batch, label_batch in ds.batch(READ_BATCH).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def stratified_test_positions(labels, fraction, seed):
    """Sorted positions of a seeded, per-class `fraction` of the examples."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = int(round(fraction * len(members)))
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def tfds_catalog(name, split, data_dir=None, image_size=None, seed=0):
    splits, _, default_size = TFDS_SOURCES[name]
    if split not in splits:
        raise DataError(f"Data set {name!r} offers splits {splits}; got split={split!r}.")
    size = as_size(image_size if image_size is not None else default_size)
    if name == "tf_flowers":
        ds, info = _load(name, "train", data_dir)
        images, labels = _read_all(ds, size)
        test = stratified_test_positions(labels, FLOWERS_TEST_FRACTION, seed)
        keep = test if split == "test" else np.setdiff1d(np.arange(len(labels)), test)
        images, labels = images[keep], labels[keep]
    else:
        ds, info = _load(name, split, data_dir)
        images, labels = _read_all(ds, None)
        if size is not None and size != images.shape[1:3]:
            chunks = [images[i : i + READ_BATCH] for i in range(0, len(images), READ_BATCH)]
            images = np.concatenate([center_crop_resize(chunk, size).numpy() for chunk in chunks])
    class_names = tuple(info.features["label"].names)
    return Catalog(name, labels, class_names, lambda positions: images[positions])
