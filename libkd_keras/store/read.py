"""Reading a teacher store: `TeacherStore` (open and check a store, read its logits, feed training) and views.

Everything that writes a store is in `write.py`; the layout and its checks are `format.py`'s.
Read from the top: `TeacherStore` (opening and its checks, the stored arrays, the training
batches of `dataset`), the `tf.data` helpers those batches use (the image shards, the id join),
then multi-view stores.

Multi-view stores: the teachers' logits on V augmented views of each image, replayed exactly.
A view is the student's flip-and-crop (`distill/augment.py`) with its randomness written down: a
horizontal flip or not, then a reflect-padded crop at `(top, left)`. `write_store(..., views=V)`
(write.py) draws V distinct views per example (`views="all"`: every one of the 2 (2p + 1)^2, 162 at p = 4),
stores their parameters and each teacher's logits on each view, and `TeacherStore.dataset(...,
views=True)` replays one stored view per example each epoch. The pixels are rebuilt by the same
`replay` that made them for the teacher, so the teacher row belongs to exactly those pixels.
What is replayed: flip and crop. What is not: RandAugment, colour jitter (they would change the
pixels after the teacher saw them: use them with online teachers), random erasing and MixUp/CutMix
(the latter mix the teacher rows like the pixels, as for clean-image rows). Their layout on disk
and its check (`validate_views`) are `format.py`'s, with the rest of the format.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from libkd_keras.data import Split
from libkd_keras.data.epochs import VIEWS, EpochSeeds, with_batch_seeds
from libkd_keras.store import files
from libkd_keras.store.format import (
    EXAMPLE_FEATURES,
    EXAMPLE_FEATURES_WITH_IMAGE,
    ID,
    IMAGE,
    LABEL,
    LOGITS,
    LOGITS_FEATURES,
    MANIFEST_FILE,
    StoreError,
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
        """uint8 `(N, V, 3)`: each example's stored views (flip, top, left; `replay`), rows by id."""
        views = self.manifest["views"]
        rows = self._read_rows(views["shards"], "uint8", views["count"] * 3, "View parameter")
        return rows.astype(np.uint8).reshape(self.num_examples, views["count"], 3)

    def _teacher_view_logits(self, name):
        """float32 `(N, V, C)` logits of teacher `name` on each stored view."""
        teacher, count = self.manifest["teachers"][name], self.manifest["views"]["count"]
        width = count * self.num_classes
        rows = self._read_rows(teacher["view_shards"], teacher["dtype"], width, f"Teacher {name!r} view")
        return rows.reshape(self.num_examples, count, self.num_classes)

    def view_logits(self, names=None):
        """float32 `(N, T, V, C)` logits of teachers `names` on each example's stored views."""
        return np.stack([self._teacher_view_logits(n) for n in self._resolve(names)], axis=1)

    def images(self):
        """All stored images, decoded: uint8 `(N, H, W, 3)` in id order."""
        if not self.includes_images:
            raise StoreError(f"Store {self.path!r} was written without images (include_images=False).")
        decoded = example_dataset(self, interleave=False).map(lambda image, _id, _label: image)
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
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise StoreError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        kind, targets = self._target_rows(kd, self._resolve(teachers), ensemble, views)
        if views:
            params = tf.constant(self.view_params())
            padding = self.manifest["views"]["padding"]
        epoch_seeded = isinstance(seed, EpochSeeds)
        if epoch_seeded and (split is None or repeat):
            raise StoreError(
                "Epoch-seeded batches (`seed=EpochSeeds(...)`) need the split in memory and one epoch per iteration: "
                "pass `split=` (the split the store was computed on) and leave `repeat` off."
            )
        if split is not None:
            self.check_matches(split)
            join_positions(self.ids, split.ids, self.path)  # every id is in the store: a clear error here
            if epoch_seeded:  # each epoch's order from (seed, epoch): data/epochs.py
                arrays = tuple(tf.constant(a) for a in (split.images, split.ids, split.labels))
                ds = seed.positions(len(split), batch_size, shuffle=shuffle, drop_remainder=drop_remainder)
                ds = ds.map(lambda at: tuple(tf.gather(a, at) for a in arrays))
            else:
                ds = tf.data.Dataset.from_tensor_slices((split.images, split.ids, split.labels))
        elif self.includes_images:
            ds = example_dataset(self)
            if cache:
                ds = ds.cache()
        else:
            raise StoreError(
                f"Store {self.path!r} holds no images (written with include_images=False); pass `split=` "
                "with the split it was computed on."
            )
        if not epoch_seeded:
            if shuffle:
                ds = ds.shuffle(self.num_examples, seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if views:  # random int64s per batch, different each epoch and reproducible from `seed`
            ds = with_batch_seeds(ds, seed, VIEWS).map(
                lambda batch, pair: (
                    *batch,
                    tf.random.stateless_uniform([tf.shape(batch[1])[0]], pair, None, None, tf.int64),
                )
            )
        if not repeat:  # a known length: Keras then ends each epoch cleanly (no step past the end)
            batches = self.num_examples // batch_size if drop_remainder else -(-self.num_examples // batch_size)
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))

        sorted_ids, targets, kind = tf.constant(self.ids), tf.constant(targets), tf.constant(kind, tf.float32)

        def finish(images, ids, labels, draws=None):
            positions = _checked_join(sorted_ids, ids, self.path)  # the join by id
            if views:  # the drawn view's pixels, rebuilt exactly, and the teachers' row on them
                rows = tf.stack([positions, tf.cast(draws % params.shape[1], positions.dtype)], axis=1)
                images = replay(images, tf.gather_nd(params, rows), padding)
                teacher = tf.gather_nd(targets, rows)
            else:
                teacher = tf.gather(targets, positions)
            images = tf.cast(images, tf.float32)
            if augment is not None:
                images = augment(images)
            target_kind = tf.tile(kind[None], [tf.shape(labels)[0], 1])
            return images, {"label": labels, "teacher": teacher, "target_kind": target_kind}

        return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def _target_rows(self, kd, names, ensemble, views):
        """`(kind, rows)`: `kd.describe(ensemble)` and the float32 target row of every example (N, C) or view (N, V, C).

        The ensemble target of every example (and view) is made once; the batches gather its rows.
        """
        if not (callable(getattr(kd, "target", None)) and callable(getattr(kd, "describe", None))):
            raise ValueError(
                "The first argument of `dataset` is the distillation whose target rows to read: "
                f"libkd_keras.distill.HardDistillation() or SoftDistillation(temperature); got {kd!r}."
            )
        kind = kd.describe(ensemble)  # what the rows are (also checks the rule)
        if views:
            check_views(self)
            logits = self.view_logits(names)  # (N, T, V, C) -> rows of (T, C) per example and view
            num, teachers, count, classes = logits.shape
            flat = np.transpose(logits, (0, 2, 1, 3)).reshape(num * count, teachers, classes)
            targets = keras.ops.convert_to_numpy(kd.target(flat, ensemble))
            targets = targets.reshape(num, count, classes)
        else:
            targets = keras.ops.convert_to_numpy(kd.target(self.logits(names), ensemble))
        return kind, targets.astype(np.float32)


# ========================================================================= tf.data helpers
def example_dataset(store, interleave=True):
    """`(image uint8, id, label)` from the example shards: interleaved (or in-order) reads, parallel decode."""
    paths = [files.join(store.path, s["file"]) for s in store.manifest["examples"]]
    shape = store.image_shape

    def parse(record):
        example = tf.io.parse_single_example(record, EXAMPLE_FEATURES_WITH_IMAGE)
        image = tf.ensure_shape(tf.io.decode_png(example[IMAGE], channels=3), shape)
        return image, example[ID], example[LABEL]

    if interleave:
        ds = tf.data.Dataset.from_tensor_slices(paths).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(paths), 8), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        ds = tf.data.TFRecordDataset(paths)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def join_positions(sorted_ids, ids, where):
    """Rows of `ids` in the ascending `sorted_ids`; a `StoreError` naming the ids that are not there."""
    sorted_ids, ids = np.asarray(sorted_ids), np.asarray(ids)
    positions = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    missing = ids[sorted_ids[positions] != ids] if len(sorted_ids) else ids
    if len(missing):
        raise StoreError(
            f"{len(missing)} example id(s) are not in store {where!r} (first: {missing[:5].tolist()}): the "
            "images cannot be joined to their teacher rows. Use the split the store was computed on, or "
            "precompute a store for this split."
        )
    return positions


def _checked_join(sorted_ids, ids, where):
    """`searchsorted` in the graph, asserting that the id found is the id looked for."""
    positions = tf.minimum(tf.searchsorted(sorted_ids, ids), tf.shape(sorted_ids)[0] - 1)
    found = tf.gather(sorted_ids, positions)
    check = tf.debugging.assert_equal(
        found, ids, message=f"An example id is not in store {where!r}; the store or its images are damaged."
    )
    with tf.control_dependencies([check]):
        return tf.identity(positions)


# ======================================================================== multi-view stores
@dataclasses.dataclass(frozen=True)
class ViewRecipe:
    """How a view is made: flip, then reflect-pad by `padding` and crop back to `image_shape`.

    Example:
    >>> recipe = ViewRecipe(padding=4, image_shape=(32, 32, 3))
    >>> recipe.num_distinct
    162
    >>> params = recipe.draw(ids, count=8, seed=0)     # (N, 8, 3): flip, top, left
    >>> views = replay(images, params[:, 0], recipe.padding)
    """

    padding: int
    image_shape: tuple

    def __post_init__(self):
        height, width = self.image_shape[:2]
        if not isinstance(self.padding, int) or not 0 <= self.padding < min(height, width):
            raise StoreError(f"View `padding` must be an integer in [0, {min(height, width)}); got {self.padding!r}.")

    @property
    def num_distinct(self):
        return 2 * (2 * self.padding + 1) ** 2

    def all_views(self):
        """int `(num_distinct, 3)`: every (flip, top, left), flip-major."""
        offsets = np.arange(2 * self.padding + 1)
        grid = np.stack(np.meshgrid([0, 1], offsets, offsets, indexing="ij"), axis=-1)
        return grid.reshape(-1, 3).astype(np.uint8)

    def count_for(self, views):
        """The number of views per example that `views` (a positive int or "all") asks for."""
        if views == "all":
            return self.num_distinct
        if not isinstance(views, int) or isinstance(views, bool) or not 1 <= views <= self.num_distinct:
            raise StoreError(
                f"`views` must be 'all' or an integer in [1, {self.num_distinct}] (the distinct flips and "
                f"crops at padding {self.padding}); got {views!r}."
            )
        return views

    def draw(self, ids, count, seed):
        """uint8 `(N, count, 3)`: `count` distinct views per example, drawn from `(seed, id)` alone."""
        table = self.all_views()
        if count == len(table):
            return np.broadcast_to(table, (len(ids), count, 3)).copy()
        picks = [np.random.default_rng([seed, int(i)]).choice(len(table), count, replace=False) for i in ids]
        return table[np.asarray(picks)]


def replay(images, params, padding):
    """Rebuild views: `images` `(B, H, W, 3)` (any dtype, kept), `params` `(B, 3)` (flip, top, left).

    Pure indexing (reverse, reflect pad, gather): the same inputs give bit-identical pixels.
    """
    images = tf.convert_to_tensor(images)
    params = tf.cast(params, tf.int32)
    height, width = images.shape[1], images.shape[2]
    flipped = tf.where(params[:, 0, None, None, None] > 0, tf.reverse(images, axis=[2]), images)
    if not padding:
        return flipped
    padded = tf.pad(flipped, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode="REFLECT")
    rows = params[:, 1, None] + tf.range(height)[None]
    cols = params[:, 2, None] + tf.range(width)[None]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def view_images(images, params, view, padding, batch_size=2048):
    """uint8 `(N, H, W, 3)`: view number `view` of every image (for the teachers' pass)."""
    out = [
        replay(images[start : start + batch_size], params[start : start + batch_size, view], padding).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else images[:0]


def recipe_of(manifest):
    """The `ViewRecipe` of a multi-view store's manifest, or None for a single-view store."""
    views = manifest.get("views")
    if views is None:
        return None
    return ViewRecipe(padding=views["padding"], image_shape=tuple(views["image_shape"]))


def check_views(store):
    """Refuse replayed views from a single-view store, saying how to precompute one."""
    if not store.num_views:
        raise StoreError(
            f"Store {store.path!r} holds teacher logits on the clean images only; replayed views need a multi-view "
            "store: precompute it with `precompute(..., views=N)` (config: store.views = N, e.g. 16; "
            f"`views='all'` stores all {ViewRecipe(4, tuple(store.image_shape)).num_distinct} pad-4 flips and crops)."
        )


def check_replayable(store, recipe, image_shape):
    """Refuse views the reader cannot replay for a student of `recipe` (its crop) and `image_shape`."""
    check_views(store)
    views = recipe_of(store.manifest)
    differences = []
    if tuple(image_shape) != tuple(views.image_shape):
        differences.append(f"image shape {list(views.image_shape)} (store) vs {list(image_shape)} (student)")
    if not recipe.flip_crop or recipe.crop_padding != views.padding:
        crop = f"padding {recipe.crop_padding}" if recipe.flip_crop else "no flip/crop"
        differences.append(f"crop padding {views.padding} (store) vs {crop} (recipe {recipe.recipe!r})")
    if differences:
        raise StoreError(
            f"Store {store.path!r} cannot replay views for this student: {'; '.join(differences)}. Precompute the "
            "views with the student's crop and image size, or train with targets='clean'."
        )
