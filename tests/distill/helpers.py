"""Tiny students and generated data in the store reader's format, shared by the distill tests."""

import functools

import numpy as np
import tensorflow as tf

from tests.builders import tiny_deit

NUM_CLASSES, SIZE = 4, 16


# The shared tiny DeiT (tests/builders.py), seeded with 0 unless `seed=` says otherwise.
tiny_student = functools.partial(tiny_deit, num_classes=NUM_CLASSES, size=SIZE, seed=0)


def colour_data(n=64, num_classes=NUM_CLASSES, seed=0, teacher_noise=0.25):
    """Images whose class is their brightness level; teacher one-hot rows, mostly right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    levels = np.linspace(20, 235, num_classes)
    images = levels[labels][:, None, None, None] + rng.normal(0, 10, (n, SIZE, SIZE, 3))
    images = np.clip(images, 0, 255).astype("float32")
    teacher_labels = np.where(rng.uniform(size=n) < teacher_noise, rng.integers(0, num_classes, n), labels)
    teacher = np.eye(num_classes, dtype="float32")[teacher_labels]
    return images, labels.astype("int64"), teacher


def store_dataset(images, labels, teacher, batch_size=16):
    """The store reader's format: (image float32, {"label": int64 (B,), "teacher": float32 (B, C)})."""
    return tf.data.Dataset.from_tensor_slices((images, {"label": labels, "teacher": teacher})).batch(batch_size)
