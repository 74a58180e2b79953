"""Toy data whose images carry their id, and teachers whose logits are a known table indexed by id."""

import keras
import numpy as np

from libkd_keras.data import Split

NUM_CLASSES = 4
NUM_EXAMPLES = 60


def encode_ids(ids):
    """Images 8x8 whose first pixel holds the id (low byte, high byte); the rest is noise."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(ids), 8, 8, 3), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = ids % 256, ids // 256
    return images


def decode_ids(images):
    images = np.asarray(images)
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)


def make_split(n=NUM_EXAMPLES, split="train", name="toy", ids=None):
    ids = 3 * np.arange(n) + 7 if ids is None else ids  # ids need not be contiguous
    labels = np.random.default_rng(1).integers(0, NUM_CLASSES, n)
    return Split(encode_ids(ids), labels, ids, tuple("abcd"), name, split)


class TableTeacher(keras.Model):
    """Returns `table[id]` for each image; `fail_at_batch` raises on that batch (run eagerly)."""

    def __init__(self, table, fail_at_batch=None, **kwargs):
        super().__init__(**kwargs)
        self.table = np.asarray(table, np.float32)
        self.fail_at_batch, self.batches = fail_at_batch, 0
        if fail_at_batch is not None:
            self.run_eagerly = True

    def call(self, images):
        if self.fail_at_batch is not None:
            self.batches += 1
            if self.batches == self.fail_at_batch:
                raise RuntimeError("teacher crashed midway")
        pixels = keras.ops.cast(images[:, 0, 0, :2], "int32")
        return keras.ops.take(keras.ops.convert_to_tensor(self.table), pixels[:, 0] + 256 * pixels[:, 1], axis=0)


def logit_table(seed, max_id=1024):
    return np.random.default_rng(seed).normal(0, 2, (max_id, NUM_CLASSES)).astype(np.float32)
