"""Top-1 / top-5 accuracy of an exported file, and of the Keras model on the same data."""

import numpy as np

from libkd_keras.export.inputs import labelled_batches
from libkd_keras.export.runtime import LiteRTModel


class TopK:
    """Running top-1 and top-k counts over batches of logits."""

    def __init__(self, k=5):
        self.k, self.top1, self.topk, self.n = k, 0, 0, 0

    def update(self, logits, labels):
        logits, labels = np.asarray(logits), np.asarray(labels)
        if logits.shape[-1] and labels.size and labels.max() >= logits.shape[-1]:
            raise ValueError(f"label {int(labels.max())} is out of range for a model with {logits.shape[-1]} classes.")
        k = min(self.k, logits.shape[-1])  # with fewer than 5 classes top-5 counts every class
        ranked = np.argsort(-logits, axis=-1, kind="stable")
        self.top1 += int(np.sum(ranked[:, 0] == labels))
        self.topk += int(np.sum(np.any(ranked[:, :k] == labels[:, None], axis=-1)))
        self.n += len(labels)

    def result(self):
        if self.n == 0:
            raise ValueError("the data set is empty; nothing to evaluate.")
        return {"top1": self.top1 / self.n, "top5": self.topk / self.n, "n": self.n}


def evaluate_litert(path, data, batch_size=64, threads=1):
    """Top-1/top-5 accuracy (fractions in [0, 1]) of the .tflite file at `path` on `data`.

    Runs `ai_edge_litert.interpreter.Interpreter`: `batch_size` images per invocation when the
    file has a dynamic batch dimension, otherwise chunks of its fixed batch (batch 1: one image
    at a time). int8/uint8 inputs are quantized from raw pixels and outputs dequantized.

    Args:
        data: `(images, labels)` arrays, a `Split`, or a tf.data of `(image, label)` or
            `(image, {"label": ...})` (batched or not), images as raw pixels in [0, 255].

    Example:
    >>> evaluate_litert("student_int8.tflite", (x_test, y_test))
    {'top1': 0.912, 'top5': 0.997, 'n': 2000}
    """
    runner = LiteRTModel(path, threads=threads)
    counts = TopK()
    for images, labels in labelled_batches(data, runner.image_shape, batch_size):
        counts.update(runner.predict(images, batch_size=batch_size), labels)
    return counts.result()


def evaluate_keras(model, data, image_shape, batch_size=64):
    """The same metrics for the Keras model itself (inference mode: `training=False`)."""
    counts = TopK()
    for images, labels in labelled_batches(data, image_shape, batch_size):
        counts.update(np.asarray(model(images, training=False)), labels)
    return counts.result()
