"""Accuracy, in one place: top-k counts over logits, and the top-1/top-5 of a DeiT's heads.

Every accuracy the library reports (pipeline, ablation, store analyses, LiteRT export) is a
fraction in [0, 1] computed by `TopK`: ties rank the lower class index first, and with fewer
than k classes top-k counts every class. A student's per-image test classes are kept beside its
record (`save_predictions`, `<name>.predictions.npz`) so that the report can test a gain on the
same images (McNemar).

Example:
>>> counts = TopK(k=5)
>>> counts.update(logits, labels)
>>> counts.result()
{'top1': 0.91, 'top5': 0.99, 'n': 2000}
"""

import os

import numpy as np

from libkd_keras.atomic_files import temporary_sibling

HEADS = ("cls", "dist", "both")  # class head, distillation head, their average (inference output)


class TopK:
    """Running top-1 and top-k counts over batches of scores (logits or probabilities)."""

    def __init__(self, k=5):
        self.k, self.top1, self.topk, self.n = k, 0, 0, 0

    def update(self, scores, labels):
        scores, labels = np.asarray(scores), np.asarray(labels).reshape(-1)
        if scores.shape[-1] and labels.size and labels.max() >= scores.shape[-1]:
            raise ValueError(f"label {int(labels.max())} is out of range for a model with {scores.shape[-1]} classes.")
        k = min(self.k, scores.shape[-1])
        ranked = np.argsort(-scores, axis=-1, kind="stable")
        self.top1 += int(np.sum(ranked[:, 0] == labels))
        self.topk += int(np.sum(np.any(ranked[:, :k] == labels[:, None], axis=-1)))
        self.n += len(labels)
        return self

    def result(self):
        if self.n == 0:
            raise ValueError("the data set is empty; nothing to evaluate.")
        return {"top1": self.top1 / self.n, "top5": self.topk / self.n, "n": self.n}


def top_k_accuracy(scores, labels, k):
    """Fraction of rows whose label is among the `k` highest scores."""
    return TopK(k).update(scores, labels).result()["top5"]


def evaluate_heads(student, images, labels, batch_size=256, return_predictions=False):
    """Top-1/top-5 (fractions) of a DeiT's class head, distillation head and their average.

    Args:
        student: keras.Model. A `DeiT` (`student.heads(x, training=False)` -> `(cls, dist)`).
        images: array `(N, H, W, 3)`. Raw pixels in [0, 255].
        labels: array `(N,)`. Class ids.
        batch_size: int. Images per forward pass.
        return_predictions: bool. Also return `"predictions"`: the inference output's class per image
            (int64 `(N,)`, the top-1 class `TopK` counts), for paired tests between models.

    Returns `{"cls": {"top1", "top5"}, "dist": {...} or None, "both": {...}, "n": N}`; a
    student without a distillation token has `"dist": None` and `"both"` equal to `"cls"`.
    """
    import keras
    import tensorflow as tf

    heads = tf.function(lambda x: student.heads(x, training=False), reduce_retracing=True)
    labels = np.asarray(labels).reshape(-1)
    counts = {h: TopK(5) for h in HEADS}
    predictions = []
    for start in range(0, len(labels), batch_size):
        x = tf.convert_to_tensor(np.asarray(images[start : start + batch_size], dtype=np.float32))
        cls, dist = (keras.ops.convert_to_numpy(keras.ops.cast(o, "float32")) for o in heads(x))
        y = labels[start : start + batch_size]
        for head, scores in zip(HEADS, (cls, dist, (cls + dist) / 2)):
            counts[head].update(scores, y)
        output = (cls + dist) / 2 if getattr(student, "distillation", False) else cls
        predictions.append(np.argmax(output, axis=-1))  # the first of tied maxima, as TopK ranks them
    result = {h: {k: v for k, v in counts[h].result().items() if k != "n"} for h in HEADS}
    if not getattr(student, "distillation", False):
        result["dist"], result["both"] = None, result["cls"]
    if return_predictions:
        result["predictions"] = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
    return {**result, "n": int(len(labels))}


# Per-image test predictions of a model, beside its record: `<name>.predictions.npz`.
PREDICTIONS_SUFFIX = ".predictions.npz"


def _class_dtype(num_classes):
    return np.int8 if num_classes <= 127 else np.int16 if num_classes <= 32767 else np.int32


def save_predictions(path, predictions, labels, ids, num_classes):
    """Writes a model's per-image classes on a split (small: int8/int16 class ids, int32 ids), atomically.

    `ids` are the split's example ids (`Split.ids`): two models' files pair image by image only where they agree.
    """
    dtype = _class_dtype(int(num_classes))
    ids = np.asarray(ids)
    with temporary_sibling(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            predictions=np.asarray(predictions).astype(dtype),
            labels=np.asarray(labels).astype(dtype),
            ids=ids.astype(np.int32 if ids.size == 0 or ids.max() < 2**31 else np.int64),
        )
        os.replace(tmp, path)
    return path


def load_predictions(path):
    """`{"predictions", "labels", "ids"}` (int64 arrays) saved by `save_predictions`, or None without a file."""
    try:
        with np.load(path) as data:
            return {key: data[key].astype(np.int64) for key in ("predictions", "labels", "ids")}
    except (FileNotFoundError, OSError, KeyError, ValueError):
        return None
