"""`TeacherStore`, the store's read-only side: open and check a store, read its logits, feed training.

Everything that writes a store is in `write.py`; the layout is `format.py`'s.
"""

import os

import numpy as np
import tensorflow as tf

from libkd_keras.data import Split
from libkd_keras.store import batches, files, views
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import (
    EXAMPLE_FEATURES,
    ID,
    LABEL,
    LOGITS,
    LOGITS_FEATURES,
    MANIFEST_FILE,
    decode_logits,
    file_sha256,
    validate_manifest,
    validate_views,
)

READ_BATCH = 2048
REBUILD = "Rebuild the store with `rebuild_store(teachers, split, path)` (the CLI's `libkd precompute --force`)."


class TeacherStore:
    """Teacher logits for one split, stored once, read many times.

    Example:
    >>> store = precompute({"resnet26_seed0": resnet}, train, "runs/store")
    >>> store = TeacherStore.open("runs/store", expect=train)
    >>> store.logits().shape                       # (N, teachers, classes), ordered by id
    >>> ds = store.dataset(HardDistillation(), ensemble="soft", batch_size=128)   # libkd_keras.distill
    >>> distiller.fit(ds, epochs=300)               # batches of (image, {"label", "teacher", "target_kind"})
    """

    def __init__(self, path, manifest):
        self.path = os.fspath(path)
        self.manifest = manifest
        self._index = None  # (ids, labels) in store order
        self._logits = {}  # teacher name -> float32 (N, C)

    # ----------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, path, expect=None, verify=True):
        """Open the store at `path`; check the manifest and that every shard is whole.

        Args:
            expect: a `Split` the store must have been computed on (fingerprint, size, split name and
                class count are compared; the error names both sides).
            verify: also compare every shard's sha256 with the manifest (size is always checked).
        """
        path = os.fspath(path)
        manifest_path = files.join(path, MANIFEST_FILE)
        if not files.isfile(manifest_path):
            what = "does not exist" if not files.exists(path) else f"has no {MANIFEST_FILE}"
            raise StoreError(
                f"No teacher store at {path!r}: it {what}. Create one with `precompute(...)` "
                "(an interrupted precompute leaves no store behind)."
            )
        try:
            manifest = files.read_json(manifest_path)
        except (OSError, ValueError, tf.errors.OpError) as error:
            raise StoreError(f"Cannot read {manifest_path!r}: {error}.") from None
        validate_manifest(manifest, manifest_path)
        validate_views(manifest, manifest_path)
        store = cls(path, manifest)
        store._check_shards(verify)
        if expect is not None:
            store.check_matches(expect)
        return store

    def _all_shards(self):
        yield "examples", self.manifest["examples"]
        yield "view parameters", (self.manifest.get("views") or {}).get("shards", [])
        for name, teacher in self.manifest["teachers"].items():
            yield f"teacher {name!r}", teacher["shards"] + teacher.get("view_shards", [])

    def _check_shards(self, verify):
        for owner, shards in self._all_shards():
            for shard in shards:
                file = files.join(self.path, shard["file"])
                if not files.isfile(file):
                    raise StoreError(f"Shard {shard['file']!r} ({owner}) of store {self.path!r} is missing.")
                size = files.size(file)
                if size != shard["num_bytes"]:
                    raise StoreError(
                        f"Shard {shard['file']!r} ({owner}) of store {self.path!r} is truncated or altered: "
                        f"{size} bytes, the manifest says {shard['num_bytes']}. {REBUILD}"
                    )
                if verify and file_sha256(file) != shard["sha256"]:
                    raise StoreError(
                        f"Shard {shard['file']!r} ({owner}) of store {self.path!r} is corrupt: its sha256 differs "
                        f"from the manifest. {REBUILD}"
                    )

    def check_matches(self, split):
        """Raise `StoreError` naming both sides unless `split` is the data this store was computed on."""
        if not isinstance(split, Split):
            raise StoreError(f"`expect` / `split` must be a libkd_keras.data.Split; got {type(split).__name__}.")
        problems = []
        if split.fingerprint != self.fingerprint:
            problems.append(f"fingerprint {self.fingerprint[:16]}... vs {split.fingerprint[:16]}...")
        if len(split) != self.num_examples:
            problems.append(f"size {self.num_examples} vs {len(split)} examples")
        if split.split != self.split_name:
            problems.append(f"split {self.split_name!r} vs {split.split!r}")
        if split.num_classes != self.num_classes:
            problems.append(f"class count {self.num_classes} vs {split.num_classes}")
        if problems:
            raise StoreError(
                f"Teacher store {self.path!r} (data set {self.dataset_name!r}, split {self.split_name!r}) does not "
                f"match the given split (data set {split.name!r}, split {split.split!r}): "
                f"{'; '.join(problems)} (store vs split). Use the split the store was computed on, "
                "or precompute a new store."
            )

    # ------------------------------------------------------------------------------- properties
    dataset_name = property(lambda self: self.manifest["dataset"])
    split_name = property(lambda self: self.manifest["split"])
    num_examples = property(lambda self: self.manifest["num_examples"])
    fingerprint = property(lambda self: self.manifest["fingerprint"])
    num_classes = property(lambda self: self.manifest["num_classes"])
    class_names = property(lambda self: tuple(self.manifest["class_names"]))
    image_shape = property(lambda self: tuple(self.manifest["image_shape"]))
    includes_images = property(lambda self: self.manifest["includes_images"])
    teacher_names = property(lambda self: sorted(self.manifest["teachers"]))
    num_views = property(lambda self: (self.manifest.get("views") or {}).get("count", 0))  # 0: clean images only

    def __len__(self):
        return self.num_examples

    def __repr__(self):
        return (
            f"TeacherStore({self.path!r}, dataset={self.dataset_name!r}, split={self.split_name!r}, "
            f"num_examples={self.num_examples}, teachers={self.teacher_names})"
        )

    def teacher_metadata(self, name):
        return dict(self.manifest["teachers"][self._resolve([name])[0]]["metadata"])

    def _resolve(self, names):
        if names is None:
            names = self.teacher_names
        elif isinstance(names, str):
            names = [names]
        names = list(names)
        unknown = [n for n in names if n not in self.manifest["teachers"]]
        if unknown:
            raise StoreError(
                f"Unknown teacher(s) {unknown} in store {self.path!r}; stored teachers: {self.teacher_names}."
            )
        if not names:
            raise StoreError(f"No teachers chosen; stored teachers: {self.teacher_names}.")
        return names

    # ---------------------------------------------------------------------------------- reading
    def _records(self, shard, features, parse_batch=READ_BATCH):
        """Parsed batches of one shard; a short or unreadable shard raises naming it."""
        file = files.join(self.path, shard["file"])
        ds = tf.data.TFRecordDataset(file).batch(parse_batch).map(lambda r: tf.io.parse_example(r, features))
        count = 0
        try:
            for batch in ds.as_numpy_iterator():
                count += len(batch[ID])
                yield batch
        except tf.errors.OpError as error:
            raise StoreError(
                f"Shard {shard['file']!r} of store {self.path!r} is corrupt ({error.message.splitlines()[0]})."
            ) from None
        if count != shard["num_examples"]:
            raise StoreError(
                f"Shard {shard['file']!r} of store {self.path!r} holds {count} records; the manifest says "
                f"{shard['num_examples']}. The shard is truncated. {REBUILD}"
            )

    def _read_index(self):
        if self._index is None:
            ids, labels = [], []
            for shard in self.manifest["examples"]:
                for batch in self._records(shard, EXAMPLE_FEATURES):
                    ids.append(batch[ID])
                    labels.append(batch[LABEL])
            ids, labels = np.concatenate(ids), np.concatenate(labels)
            if np.any(np.diff(ids) <= 0):
                raise StoreError(f"Example ids in store {self.path!r} are not increasing; the store is damaged.")
            self._index = ids, labels
        return self._index

    @property
    def ids(self):
        """int64 `(N,)`, ascending: the row order of every array this store returns."""
        return self._read_index()[0]

    @property
    def labels(self):
        return self._read_index()[1]

    def _read_rows(self, shards, dtype, width, what):
        """float32 `(N, width)` of `(id, row)` shards (logits, view logits, view parameters), rows checked by id."""
        rows, ids = [], []
        for shard in shards:
            for batch in self._records(shard, LOGITS_FEATURES):
                ids.append(batch[ID])
                rows.append(decode_logits(batch[LOGITS], dtype, width).numpy())
        if not np.array_equal(np.concatenate(ids), self.ids):
            raise StoreError(f"{what} shards of store {self.path!r} do not line up with the example ids.")
        return np.concatenate(rows)

    def _teacher_logits(self, name):
        if name not in self._logits:
            shards, dtype = self.manifest["teachers"][name]["shards"], self.manifest["teachers"][name]["dtype"]
            self._logits[name] = self._read_rows(shards, dtype, self.num_classes, f"Teacher {name!r}")
        return self._logits[name]

    def logits(self, names=None):
        """float32 `(N, T, C)` logits of teachers `names` (default: all, sorted by name), rows by id."""
        return np.stack([self._teacher_logits(n) for n in self._resolve(names)], axis=1)

    def view_params(self):
        """uint8 `(N, V, 3)`: each example's stored views (flip, top, left; `views.replay`), rows by id."""
        return views.read_params(self)

    def view_logits(self, names=None):
        """float32 `(N, T, V, C)` logits of teachers `names` on each example's stored views."""
        return np.stack([views.read_teacher_views(self, n) for n in self._resolve(names)], axis=1)

    def images(self):
        """All stored images, decoded: uint8 `(N, H, W, 3)` in id order."""
        if not self.includes_images:
            raise StoreError(f"Store {self.path!r} was written without images (include_images=False).")
        decoded = batches.example_dataset(self, interleave=False).map(lambda image, _id, _label: image)
        decoded = decoded.batch(READ_BATCH)
        images = np.concatenate(list(decoded.as_numpy_iterator()))
        if len(images) != self.num_examples:
            raise StoreError(f"Store {self.path!r} gave {len(images)} images; its manifest says {self.num_examples}.")
        return images

    def to_split(self):
        """The stored data as a `Split` (needs images); its fingerprint is checked against the manifest."""
        split = Split(self.images(), self.labels, self.ids, self.class_names, self.dataset_name, self.split_name)
        if split.fingerprint != self.fingerprint:
            raise StoreError(f"Images in store {self.path!r} do not reproduce its fingerprint; the store is damaged.")
        return split

    # --------------------------------------------------------------------------------- training
    def dataset(
        self,
        kd,
        teachers=None,
        ensemble="soft",
        batch_size=128,
        shuffle=True,
        seed=0,
        split=None,
        augment=None,
        repeat=False,
        drop_remainder=False,
        cache=True,
        views=False,
        **removed,
    ):
        """Batches `(image float32 [0, 255], {"label", "teacher", "target_kind"})` for `Distiller.fit`.

        `kd` is the distillation whose target to read, the Distiller's own object
        (`libkd_keras.distill.HardDistillation()` or `SoftDistillation(temperature)`):

        - `label`: int64 `(B,)`, the true labels.
        - `teacher`: float32 `(B, C)`, `kd.target` of the chosen teachers' stored logits: the one-hot
          ensemble decision (hard) or its probabilities at the temperature (soft), for
          `ensemble="soft"` (mean softmax) or `"vote"` (majority vote, ties by the soft average).
        - `target_kind`: float32 `(B, 3)`, what the teacher rows are (`kd.describe(ensemble)`:
          is_soft, temperature, rule); the Distiller refuses rows of another kind than its loss.

        Images come from `split` (joined by id; it must be the split the store was computed on) or,
        without `split`, from the store's own PNGs: interleaved shards, parallel decode, and (with
        `cache=True`) kept decoded in memory after the first pass. `augment` is applied per batch to
        the images only. Shuffling is a full shuffle each epoch, reproducible from `seed`: an int (tf.data
        reshuffles every iteration) or, with `split`, a `data.epochs.EpochSeeds` (each epoch's order and
        view draws from the seed and the epoch number, so a resumed run repeats them). The length is
        known (`ceil` or, with `drop_remainder`, `floor` of examples / `batch_size`) unless `repeat`.

        `views=True` (a multi-view store): each example comes as one of its stored views, drawn anew
        each epoch, and its teacher row is the ensemble of the teachers' logits on that view.
        """
        if removed:
            raise TypeError(
                f"dataset() got unexpected argument(s) {sorted(removed)}. The target's kind and temperature are "
                "one object now, the first argument: `dataset(HardDistillation(), ...)` or "
                "`dataset(SoftDistillation(temperature), ...)` (libkd_keras.distill)."
            )
        return batches.training_dataset(
            self,
            teachers,
            kd,
            ensemble=ensemble,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            split=split,
            augment=augment,
            repeat=repeat,
            drop_remainder=drop_remainder,
            cache=cache,
            views=views,
        )
