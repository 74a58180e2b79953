"""Class-folder sources: `<root>/<split>/<class>/*.jpg|png`, as a folder or as a tarball of one.

Deterministic order: classes sorted by folder name (label = rank), files sorted by name within a
class. The CIFAR-10 JPEG tarball (`cifar10-jpeg.tar.gz`) is read as it is, without extracting it.
"""

import os
import tarfile

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

    def load_images(positions):
        return decode_images([paths[i] for i in positions], image_size=image_size, from_paths=True, source=split_dir)

    name = os.path.basename(os.path.normpath(root))
    return Catalog(name, np.asarray(labels, np.int64), tuple(class_names), load_images)


def tar_folder_catalog(tar_path, split, image_size=None):
    """Catalog of a tarball holding `[<top>/]<split>/<class>/<image>` members, streamed once."""
    found = {}  # (class, file name) -> bytes
    splits_seen = set()
    with tarfile.open(tar_path, mode="r|*") as archive:
        for member in archive:
            parts = member.name.strip("/").split("/")
            if not member.isfile() or len(parts) < 3 or not _is_image(parts[-1]):
                continue
            splits_seen.add(parts[-3])
            if parts[-3] == split:
                found[(parts[-2], parts[-1])] = archive.extractfile(member).read()
    if not found:
        raise DataNotFoundError(
            f"Tarball {tar_path!r} has no images under <split>/<class>/ for split {split!r}; "
            f"splits found: {sorted(splits_seen) or 'none'}."
        )
    keys = sorted(found)
    class_names = sorted({class_name for class_name, _ in keys})
    _check_class_count(class_names, f"{tar_path}:{split}")
    label_of = {c: i for i, c in enumerate(class_names)}
    labels = np.asarray([label_of[c] for c, _ in keys], np.int64)
    name = os.path.basename(tar_path).split(".")[0]

    def load_images(positions):
        return decode_images([found[keys[i]] for i in positions], image_size=image_size, source=tar_path)

    return Catalog(name, labels, tuple(class_names), load_images)


def _check_class_count(class_names, where):
    if len(class_names) < 2:
        raise DataError(f"{where!r} has {len(class_names)} class folder(s) ({class_names}); a classifier needs >= 2.")
