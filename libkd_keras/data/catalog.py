"""`Catalog`: what a source knows before decoding images, and the class-balanced `limit`.

Every source lists its examples in a deterministic order with their labels first; only the
examples kept by `limit` are then decoded. Ids are positions in that full order.
"""

import dataclasses
from typing import Callable

import numpy as np

from libkd_keras.data.errors import DataError


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
