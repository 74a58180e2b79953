"""`Split`: one split of a data set in memory, with stable ids and a fingerprint.

The id of an example is its position in a deterministic order of the *full* split, so it stays
the same when only a subset is loaded (`limit`) and lets stored teacher outputs be joined back to
their images. The fingerprint is a sha256 over ids, labels and image bytes; it is recorded
wherever labels or teacher outputs are stored and checked when they are read back.
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf

from libkd_keras.data.epochs import AUGMENT, EpochSeeds, with_batch_seeds
from libkd_keras.data.names import DataError

FINGERPRINT_VERSION = b"libkd-split-fingerprint-v1"


def split_fingerprint(images, labels, ids):
    """sha256 hex digest over image shape, ids, labels and image bytes (all little-endian)."""
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    digest.update(repr(tuple(int(d) for d in images.shape)).encode())
    digest.update(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(images, dtype=np.uint8).data)
    return digest.hexdigest()


def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """A split held in memory: `images` uint8 `(N, H, W, 3)`, `labels` / `ids` int64 `(N,)`.

    `fingerprint` is always computed from the arrays and cannot be passed: a split made with other
    images (e.g. `dataclasses.replace(split, images=flipped)`) gets its own. The arrays are
    read-only views, so the fingerprint cannot go stale through `split.images[...] = ...`.

    Example:
    >>> split = Split(np.zeros((2, 8, 8, 3), "uint8"), np.array([0, 1]), np.array([0, 1]), ("a", "b"))
    >>> len(split), split.num_classes, split.image_shape
    (2, 2, (8, 8, 3))
    >>> batches = split.dataset(batch_size=2, shuffle=True)
    """

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    class_names: tuple
    name: str = "unnamed"
    split: str = "train"
    fingerprint: str = dataclasses.field(init=False)  # derived from the arrays in __post_init__

    def __post_init__(self):
        images = np.asarray(self.images)
        labels = np.asarray(self.labels).astype(np.int64, copy=False).reshape(-1)
        ids = np.asarray(self.ids).astype(np.int64, copy=False).reshape(-1)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"Split images must be uint8 shaped (N, H, W, 3); got {images.dtype} {images.shape}.")
        if not len(labels) == len(ids) == len(images):
            raise DataError(
                f"Split arrays disagree in length: {len(images)} images, {len(labels)} labels, {len(ids)} ids."
            )
        if len(np.unique(ids)) != len(ids):
            raise DataError("Split ids must be unique; found repeated ids.")
        class_names = tuple(str(c) for c in self.class_names)
        if len(class_names) < 2:
            raise DataError(f"A split needs at least 2 classes; got class_names={class_names!r}.")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(
                f"Labels must lie in [0, {len(class_names) - 1}] for {len(class_names)} classes; "
                f"got values from {labels.min()} to {labels.max()}."
            )
        images, labels, ids = (_read_only(a) for a in (images, labels, ids))
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "fingerprint", split_fingerprint(images, labels, ids))

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        return (
            f"Split(name={self.name!r}, split={self.split!r}, num_examples={len(self)}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes}, fingerprint={self.fingerprint[:12]}...)"
        )

    @property
    def num_examples(self):
        return len(self.labels)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.images.shape[1:])

    def positions_of(self, ids):
        """Positions in this split of the given ids (error naming missing ids)."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        missing = wanted[~np.isin(wanted, self.ids)]
        if len(missing):
            raise DataError(
                f"{len(missing)} requested ids are not in split {self.name}/{self.split} (e.g. {missing[:5].tolist()})."
            )
        sorter = np.argsort(self.ids)
        return sorter[np.searchsorted(self.ids, wanted, sorter=sorter)]

    def subset(self, *, indices=None, ids=None):
        """A new `Split` with the examples at `indices` (positions) or with the given `ids`.

        Keeps the original ids (so stored outputs still join) and recomputes the fingerprint.

        >>> first_ten = split.subset(indices=range(10))
        """
        if (indices is None) == (ids is None):
            raise DataError("Pass exactly one of `indices` (positions) or `ids` to `Split.subset`.")
        if ids is not None:
            indices = self.positions_of(ids)
        indices = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise DataError(f"Subset indices must lie in [0, {len(self)}); got {indices.min()}..{indices.max()}.")
        return Split(
            self.images[indices], self.labels[indices], self.ids[indices], self.class_names, self.name, self.split
        )

    def dataset(self, batch_size, shuffle=False, augment=None, seed=0, repeat=False, drop_remainder=False):
        """`tf.data` of `(image float32 in [0, 255], label int64)` batches, of known length.

        `augment` is a callable applied to each batch of images (e.g. `teacher_augmentation(32)`).
        `seed` an int: a full shuffle, reshuffled every epoch by `tf.data` (the same sequence of
        orders in every process); so is the augmentation of a seeded `augment` (it runs batch after
        batch, in order). `seed` an `EpochSeeds` (pass it to `fit`'s callbacks too): each epoch's order
        is a function of the seed and the epoch number, and `augment` is called as
        `augment(images, seed=pair)` with a stateless seed pair of (seed, epoch, batch), so a run
        resumed after epoch k makes the batches of the run that was never stopped.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        if isinstance(seed, EpochSeeds):
            return self._epoch_seeded(batch_size, shuffle, augment, seed, repeat, drop_remainder)
        ds = tf.data.Dataset.from_tensor_slices((self.images, self.labels))
        if shuffle:
            ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)

        def to_float(images, labels):
            images = tf.cast(images, tf.float32)
            if augment is not None:
                images = augment(images)
            return images, labels

        # A stateful augmentation (a tf.random.Generator) must see the batches in order to repeat itself;
        # it is vectorised over the batch, so the serial map costs little.
        ds = ds.map(to_float, num_parallel_calls=None if augment is not None else tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def _epoch_seeded(self, batch_size, shuffle, augment, seeds, repeat, drop_remainder):
        if repeat:
            raise DataError(
                "`repeat=True` cannot be epoch-seeded: one iteration of the dataset is one epoch. Leave `repeat` "
                "off and let `fit(epochs=...)` iterate it again."
            )
        images, labels = tf.constant(self.images), tf.constant(self.labels)
        ds = seeds.positions(len(self), batch_size, shuffle=shuffle, drop_remainder=drop_remainder)
        ds = ds.map(lambda at: (tf.cast(tf.gather(images, at), tf.float32), tf.gather(labels, at)))
        if augment is not None:  # in order, as above: a Keras layer inside `augment` may still draw statefully
            ds = with_batch_seeds(ds, seeds, AUGMENT).map(lambda batch, pair: (augment(batch[0], seed=pair), batch[1]))
        return ds.prefetch(tf.data.AUTOTUNE)
