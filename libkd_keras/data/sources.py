"""`load_split`: one entry point for every data source, and the sources themselves.

Every source lists its examples in a deterministic order with their labels first (a `Catalog`);
only the examples kept by `limit` (`balanced_limit`) are then decoded. Ids are positions in that
full order. Read from the top: `load_split` and the choice of source, `Catalog` and the
class-balanced `limit`, then each source:

- The CIFAR-10 sample shipped with the package, `"cifar10-sample"`: 5,000 training images (500 per
  class) and 1,000 test images (100 per class), the original JPEG bytes of
  `../shared/datasets/cifar10-jpeg.tar.gz`: per split and class, the first files by sorted name.
  They are one tarball of the class-folder tree `<split>/<class>/NNNN.jpg`, read with no network
  through the class-folder tarball loader; its sha256 is checked on every load. See
  `libkd_keras/datasets/cifar10_sample/README.md`.
- Class folders, `<root>/<split>/<class>/*.jpg|png`, as a folder or as a tarball of one. Order:
  classes sorted by folder name (label = rank), files sorted by name within a class. The CIFAR-10
  JPEG tarball (`cifar10-jpeg.tar.gz`) is read as it is, without extracting it.
- The CIFAR-10 "python version": `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`.
  Order: `data_batch_1` ... `data_batch_5` for train, `test_batch` for test, rows in file order (the
  order of the original release, also used by tfds' `cifar10`). Unpickled with an allow-list.
- Named sources read through `tensorflow-datasets`: `cifar10` and `tf_flowers`. Order: the order
  `tfds` reads the prepared split with `shuffle_files=False`. `tf_flowers` has only a `train`
  split; `load_split` derives `train` / `test` from it with a class-stratified seeded permutation
  (15% of each class to `test`), so the same `seed` always gives the same partition. Offline, with
  nothing prepared in the tfds data dir, this fails at once with a `DataNotFoundError` saying what
  to pass instead; it never enters tfds' download retries.

The source names and the path rule (`missing_path`) are `names.py`'s, which loads without TensorFlow.
"""

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import socket
import tarfile
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf

from libkd_keras.data.images import as_size, center_crop_resize, decode_images
from libkd_keras.data.names import SAMPLE_NAME, SOURCES_HELP, TFDS_SOURCES, DataError, DataNotFoundError, missing_path
from libkd_keras.data.split import Split

SAMPLE_PATH = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "datasets", "cifar10_sample", "cifar10_sample.tar.gz"
)
SAMPLE_SHA256 = "1067dd1b2273bda2e09a15c27a24d947d5ee1f72e9ed462118a0bcfe3db02e8d"
SAMPLE_PER_CLASS = {"train": 500, "test": 100}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
BATCH_FOLDER = "cifar-10-batches-py"
BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META_FILE = "batches.meta"
FLOWERS_TEST_FRACTION = 0.15
READ_BATCH = 1024


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


# ======================================================================= the catalog, the limit
@dataclasses.dataclass
class Catalog:
    """Labels of a full split in its deterministic order, and a loader for images by position."""

    name: str
    labels: np.ndarray  # int64 (N,)
    class_names: tuple
    load_images: Callable  # positions (sorted int64 array) -> uint8 (n, H, W, 3)


def balanced_limit(labels, num_classes, limit):
    """Positions of a class-balanced subset of `limit` examples: the first ones of each class.

    Quotas are `limit // num_classes` (the first `limit % num_classes` classes get one more); a class
    with too few examples gives its unused quota to the others. Same labels + limit -> same subset.

    >>> balanced_limit(np.array([0, 0, 0, 1, 1, 1]), 2, 4).tolist()
    [0, 1, 3, 4]
    """
    labels = np.asarray(labels)
    if limit is None or limit >= len(labels):
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
            raise DataError(f"`limit` must be a positive integer or None; got {limit!r}.")
        return np.arange(len(labels), dtype=np.int64)
    if not isinstance(limit, (int, np.integer)) or limit < 1:
        raise DataError(f"`limit` must be a positive integer or None; got {limit!r}.")
    counts = np.bincount(labels, minlength=num_classes)
    quota = np.zeros(num_classes, dtype=np.int64)
    remaining = int(limit)
    active = [c for c in range(num_classes) if counts[c] > 0]
    while remaining > 0 and active:
        share, extra = divmod(remaining, len(active))
        for rank, c in enumerate(active):
            give = min(share + (rank < extra), counts[c] - quota[c])
            quota[c] += give
            remaining -= give
        active = [c for c in active if quota[c] < counts[c]]
    keep = np.zeros(len(labels), dtype=bool)
    for c in range(num_classes):
        keep[np.flatnonzero(labels == c)[: quota[c]]] = True
    return np.flatnonzero(keep).astype(np.int64)


# ====================================================================== the shipped sample
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


# ============================================================== class folders and tarballs
def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def folder_catalog(root, split, image_size=None):
    """Catalog of `<root>/<split>/<class>/<image>`; errors name the missing or empty folder."""
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        present = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        raise DataNotFoundError(
            f"Split folder {split_dir!r} does not exist. A folder source must look like "
            f"<root>/<split>/<class>/*.jpg|png; folders found in {root!r}: {present or 'none'}."
        )
    class_names = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
    if not class_names:
        loose = [f for f in os.listdir(split_dir) if _is_image(f)]
        hint = " (it holds images directly; put them into one subfolder per class)" if loose else ""
        raise DataError(f"No class folders in {split_dir!r}{hint}. Expected {split_dir}/<class>/*.jpg|png.")
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = os.path.join(split_dir, class_name)
        files = sorted(f for f in os.listdir(class_dir) if _is_image(f))
        if not files:
            raise DataError(
                f"Class folder {class_dir!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}). "
                "Add images or remove the folder."
            )
        paths += [os.path.join(class_dir, f) for f in files]
        labels += [label] * len(files)
    _check_class_count(class_names, split_dir)
    others = {d: _subfolders(os.path.join(root, d)) for d in os.listdir(root) if d != split and not d.startswith(".")}
    check_same_classes(root, split, class_names, {d: c for d, c in others.items() if c})

    def load_images(positions):
        return decode_images([paths[i] for i in positions], image_size=image_size, from_paths=True, source=split_dir)

    name = os.path.basename(os.path.normpath(root))
    return Catalog(name, np.asarray(labels, np.int64), tuple(class_names), load_images)


def tar_folder_catalog(tar_path, split, image_size=None):
    """Catalog of a tarball holding `[<top>/]<split>/<class>/<image>` members, streamed once."""
    found = {}  # (class, file name) -> bytes
    classes_of = {}  # split folder -> its class folders
    with open_tar_stream(tar_path) as archive:
        for member in archive:
            parts = member.name.strip("/").split("/")
            if not member.isfile() or len(parts) < 3 or not _is_image(parts[-1]):
                continue
            classes_of.setdefault(parts[-3], set()).add(parts[-2])
            if parts[-3] == split:
                found[(parts[-2], parts[-1])] = archive.extractfile(member).read()
    splits_seen = set(classes_of)
    if not found:
        raise DataNotFoundError(
            f"Tarball {tar_path!r} has no images under <split>/<class>/ for split {split!r}; "
            f"splits found: {sorted(splits_seen) or 'none'}."
        )
    keys = sorted(found)
    class_names = sorted({class_name for class_name, _ in keys})
    _check_class_count(class_names, f"{tar_path}:{split}")
    check_same_classes(tar_path, split, class_names, {d: sorted(c) for d, c in classes_of.items() if d != split})
    label_of = {c: i for i, c in enumerate(class_names)}
    labels = np.asarray([label_of[c] for c, _ in keys], np.int64)
    name = os.path.basename(tar_path).split(".")[0]

    def load_images(positions):
        return decode_images([found[keys[i]] for i in positions], image_size=image_size, source=tar_path)

    return Catalog(name, labels, tuple(class_names), load_images)


def _check_class_count(class_names, where):
    if len(class_names) < 2:
        raise DataError(f"{where!r} has {len(class_names)} class folder(s) ({class_names}); a classifier needs >= 2.")


def _subfolders(path):
    if not os.path.isdir(path):
        return []
    return sorted(d for d in os.listdir(path) if not d.startswith(".") and os.path.isdir(os.path.join(path, d)))


def check_same_classes(where, split, class_names, others):
    """Refuses a split whose class folders differ from those of another split (`others`: split -> names).

    Labels are the ranks of the sorted class-folder names, so a renamed or missing folder in one
    split would silently shift its labels against the others.
    """
    for other, names in sorted(others.items()):
        only_here, only_there = sorted(set(class_names) - set(names)), sorted(set(names) - set(class_names))
        if not (only_here or only_there):
            continue
        listed = "; ".join(
            [f"only in {split}/: {', '.join(only_here)}"] * bool(only_here)
            + [f"only in {other}/: {', '.join(only_there)}"] * bool(only_there)
        )
        rename = (
            f" (e.g. rename {split}/{only_here[0]} to {split}/{only_there[0]})"
            if len(only_here) == len(only_there) == 1
            else ""
        )
        raise DataError(
            f"The class folders of split {split!r} and split {other!r} in {where!r} differ: {listed}. Labels are "
            "the ranks of the sorted class-folder names, so every split needs the same class folders; rename, add or "
            f"remove folders until they match{rename}. A folder beside the splits that is not a split must be moved "
            "out of the data root."
        )


@contextlib.contextmanager
def open_tar_stream(path):
    """`tarfile.open(path, "r|*")`, with a truncated or corrupt archive raised as a `DataError`."""
    try:
        with tarfile.open(path, mode="r|*") as archive:
            yield archive
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise DataError(
            f"Tarball {path!r} is truncated or corrupt ({type(error).__name__}: {error}); download or copy it again."
        ) from None


# ======================================================================= CIFAR-10 python
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


# ============================================================================== tfds
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
