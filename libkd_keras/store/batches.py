"""`tf.data` from a store: its images, and training batches with the id join and the target's description."""

import keras
import numpy as np
import tensorflow as tf

from libkd_keras.data.epochs import VIEWS, EpochSeeds, with_batch_seeds
from libkd_keras.store import files
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import EXAMPLE_FEATURES_WITH_IMAGE, ID, IMAGE, LABEL
from libkd_keras.store.views import check_views, replay


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


def training_dataset(
    store, teachers, kd, *, ensemble, batch_size, shuffle, seed, split, augment, repeat, drop_remainder, cache, views
):
    """The batches of `TeacherStore.dataset` (see there: the arguments and their defaults are declared there)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise StoreError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    names = store._resolve(teachers)
    if not (callable(getattr(kd, "target", None)) and callable(getattr(kd, "describe", None))):
        raise ValueError(
            "The first argument of `dataset` is the distillation whose target rows to read: "
            f"libkd_keras.distill.HardDistillation() or SoftDistillation(temperature); got {kd!r}."
        )
    kind = kd.describe(ensemble)  # what the rows are (also checks the rule)
    # The ensemble target of every example (and view), once: N x C (or N x V x C) floats; batches gather rows.
    if views:
        check_views(store)
        logits = store.view_logits(names)  # (N, T, V, C) -> rows of (T, C) per example and view
        num, teachers_, count, classes = logits.shape
        flat = np.transpose(logits, (0, 2, 1, 3)).reshape(num * count, teachers_, classes)
        targets = keras.ops.convert_to_numpy(kd.target(flat, ensemble))
        targets = targets.reshape(num, count, classes)
        params = tf.constant(store.view_params())
        padding = store.manifest["views"]["padding"]
    else:
        targets = keras.ops.convert_to_numpy(kd.target(store.logits(names), ensemble))
    targets = targets.astype(np.float32)
    epoch_seeded = isinstance(seed, EpochSeeds)
    if epoch_seeded and (split is None or repeat):
        raise StoreError(
            "Epoch-seeded batches (`seed=EpochSeeds(...)`) need the split in memory and one epoch per iteration: "
            "pass `split=` (the split the store was computed on) and leave `repeat` off."
        )
    if split is not None:
        store.check_matches(split)
        join_positions(store.ids, split.ids, store.path)  # every id is in the store: a clear error here
        if epoch_seeded:  # each epoch's order from (seed, epoch): data/epochs.py
            arrays = tuple(tf.constant(a) for a in (split.images, split.ids, split.labels))
            ds = seed.positions(len(split), batch_size, shuffle=shuffle, drop_remainder=drop_remainder)
            ds = ds.map(lambda at: tuple(tf.gather(a, at) for a in arrays))
        else:
            ds = tf.data.Dataset.from_tensor_slices((split.images, split.ids, split.labels))
    elif store.includes_images:
        ds = example_dataset(store)
        if cache:
            ds = ds.cache()
    else:
        raise StoreError(
            f"Store {store.path!r} holds no images (written with include_images=False); pass `split=` "
            "with the split it was computed on."
        )
    if not epoch_seeded:
        if shuffle:
            ds = ds.shuffle(store.num_examples, seed=seed, reshuffle_each_iteration=True)
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
        batches = store.num_examples // batch_size if drop_remainder else -(-store.num_examples // batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))

    sorted_ids, targets, kind = tf.constant(store.ids), tf.constant(targets), tf.constant(kind, tf.float32)

    def finish(images, ids, labels, draws=None):
        positions = _checked_join(sorted_ids, ids, store.path)  # the join by id
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
