"""Top-1 / top-5 accuracy of an exported file, and of the Keras model on the same data.

Both count with `libkd_keras.evaluation.TopK`, the library's one accuracy implementation.
"""

import numpy as np

from libkd_keras.evaluation import TopK
from libkd_keras.export.inputs import labelled_batches
from libkd_keras.export.runtime import LiteRTModel


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
