"""Class-folder sources: `<root>/<split>/<class>/*.jpg|png`, as a folder or as a tarball of one.

Deterministic order: classes sorted by folder name (label = rank), files sorted by name within a
class. The CIFAR-10 JPEG tarball (`cifar10-jpeg.tar.gz`) is read as it is, without extracting it.
"""

import contextlib
import os
import tarfile
import zlib

import numpy as np

from libkd_keras.data.catalog import Catalog
from libkd_keras.data.errors import DataError, DataNotFoundError
from libkd_keras.data.images import decode_images

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


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
