"""Epoch-seeded training: each epoch's order, augmentation and dropout are functions of (seed, epoch number).

`tf.data`'s own reshuffling (`shuffle(reshuffle_each_iteration=True)`, `Dataset.random(rerandomize_each_
iteration=True)`) counts the iterations of one Python process. A run resumed from its backup after epoch
k is a new process, so it would shuffle its epoch k + 1 in epoch 1's order. `EpochSeeds` is a Keras
callback that holds the epoch number `fit` is on (set at each epoch's start, also the first epoch of a
resumed run), and a pipeline built with it (`Split.dataset(seed=EpochSeeds(s))`, `TeacherStore.dataset`,
`student_augmentation`) draws its order and its stateless augmentation from (seed, stream, epoch, batch):
a run stopped after epoch k and resumed makes the same batches in epochs k + 1, ... as the run that was
never stopped.

How the epoch reaches the batches: Keras' `fit` makes a new iterator of a dataset of known length at each
epoch's start, after every callback's `on_epoch_begin`, and the pipeline reads the epoch (a one-entry
lookup table on the CPU, which no `tf.distribute` strategy mirrors) as it makes each batch. An iterator
made earlier (Keras also makes one at each epoch's end, then replaces it) only reads; nothing in the
pipeline keeps state between batches. The callback also restarts the random generators of the model it
trains (dropout, drop path) from (seed, epoch), since backups do not hold their state. Keras layers in
the pipeline that draw from a `SeedGenerator` (RandAugment, colour jitter, random erasing, MixUp/CutMix)
are not epoch-seeded: their draws depend on the process's history.

Example:
>>> seeds = EpochSeeds(0)
>>> train = split.dataset(128, shuffle=True, augment=teacher_augmentation(32), seed=seeds)
>>> model.fit(train, epochs=10, callbacks=[seeds, keras.callbacks.BackupAndRestore("backup")])
"""

import keras
import numpy as np
import tensorflow as tf

# Independent streams drawn from one seed.
ORDER, AUGMENT, VIEWS, FLIP_CROP = range(4)


class EpochSeeds(keras.callbacks.Callback):
    """The seed and the epoch an input pipeline draws from; pass it to `fit(callbacks=[...])` too.

    Args:
        seed: int. The run's seed.

    Outside `fit` (a custom loop), call `set_epoch(epoch)` before iterating the dataset for that epoch.
    """

    def __init__(self, seed=0):
        super().__init__()
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"`seed` must be an integer; got {seed!r}.")
        self.seed = seed
        with tf.init_scope(), tf.device("/CPU:0"):
            self._epoch = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, default_value=0)
        self._key = tf.constant(0, tf.int64)

    def set_epoch(self, epoch):
        """The epoch (0-based) the next iteration of the dataset makes."""
        self._epoch.insert(self._key, tf.constant(int(epoch), tf.int64))

    def on_epoch_begin(self, epoch, logs=None):
        self.set_epoch(epoch)
        if self.model is not None:
            self.reseed_model(self.model, epoch)

    def reseed_model(self, model, epoch):
        """Restarts every `SeedGenerator` of `model` (dropout, drop path) from (seed, epoch, its position).

        Keras' backups hold the weights and the optimizer but not these generators' states, so without
        this a resumed run's steps would draw epoch 1's masks again.
        """
        states = [v for v in model.variables if v.name == "seed_generator_state"]
        for position, state in enumerate(states):
            start = np.random.SeedSequence([self.seed, epoch, position]).generate_state(1)[0] >> 1  # < 2**31
            state.assign(np.array([start, 0], dtype=state.dtype))

    @property
    def epoch(self):
        return int(self._epoch.lookup(self._key))

    def epoch_seed(self, stream):
        """The stateless seed pair `(2,)` int64 of `stream` in the current epoch (read when it runs)."""
        return tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, stream], tf.int64), self._epoch.lookup(self._key)
        )

    def positions(self, num_examples, batch_size, *, shuffle, drop_remainder=False):
        """Batches of example positions `(B,)` int64: a permutation of `range(num_examples)` per epoch.

        The length is known (`ceil` or `floor` of `num_examples / batch_size`), so Keras ends each epoch
        exactly.
        """
        positions = tf.data.Dataset.range(num_examples).batch(batch_size, drop_remainder=drop_remainder)
        if not shuffle or num_examples < 2:
            return positions
        return positions.map(
            lambda p: tf.random.experimental.index_shuffle(p, self.epoch_seed(ORDER), num_examples - 1),
            num_parallel_calls=tf.data.AUTOTUNE,
        )


def with_batch_seeds(dataset, seed, stream):
    """`dataset`'s batches as `(batch, seed pair (2,) int64)`: one stateless seed per batch, its length kept.

    `seed` is an `EpochSeeds` (the pair is a function of the seed, `stream`, the epoch and the batch's
    position in it), an int (a stream of `tf.data.Dataset.random`: new each iteration of this process,
    the same in every process) or None (not reproducible).
    """
    if isinstance(seed, EpochSeeds):
        return dataset.enumerate().map(
            lambda index, batch: (batch, tf.random.experimental.stateless_fold_in(seed.epoch_seed(stream), index))
        )
    salted = None if seed is None else seed + stream
    pairs = tf.data.Dataset.random(seed=salted, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(dataset, pairs)


def check_epoch_length(dataset, steps, what):
    """Raises unless `dataset` is known to make exactly `steps` batches an epoch.

    Without a known length Keras runs one step past the end of every epoch (outside XLA that step still
    counts on the optimizer's iterations and applies its weight decay), so the training functions refuse
    such a pipeline before the first step.
    """
    length = int(dataset.cardinality())
    if length != steps:
        known = {int(tf.data.UNKNOWN_CARDINALITY): "an unknown number of", int(tf.data.INFINITE_CARDINALITY): "endless"}
        raise ValueError(
            f"{what}: the training data make {known.get(length, length)} batches an epoch; expected exactly {steps}. "
            "This is a bug in the input pipeline (a step that loses the dataset's length); please report it."
        )
