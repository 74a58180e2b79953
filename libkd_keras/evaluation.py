"""Accuracy, in one place: top-k counts over logits, and the top-1/top-5 of a DeiT's heads.

Every accuracy the library reports (pipeline, ablation, store analyses, LiteRT export) is a
fraction in [0, 1] computed by `TopK`: ties rank the lower class index first, and with fewer
than k classes top-k counts every class.

Example:
>>> counts = TopK(k=5)
>>> counts.update(logits, labels)
>>> counts.result()
{'top1': 0.91, 'top5': 0.99, 'n': 2000}
"""

import numpy as np

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


def evaluate_heads(student, images, labels, batch_size=256):
    """Top-1/top-5 (fractions) of a DeiT's class head, distillation head and their average.

    Args:
        student: keras.Model. A `DeiT` (`student.heads(x, training=False)` -> `(cls, dist)`).
        images: array `(N, H, W, 3)`. Raw pixels in [0, 255].
        labels: array `(N,)`. Class ids.
        batch_size: int. Images per forward pass.

    Returns `{"cls": {"top1", "top5"}, "dist": {...} or None, "both": {...}, "n": N}`; a
    student without a distillation token has `"dist": None` and `"both"` equal to `"cls"`.
    """
    import keras
    import tensorflow as tf

    heads = tf.function(lambda x: student.heads(x, training=False), reduce_retracing=True)
    labels = np.asarray(labels).reshape(-1)
    counts = {h: TopK(5) for h in HEADS}
    for start in range(0, len(labels), batch_size):
        x = tf.convert_to_tensor(np.asarray(images[start : start + batch_size], dtype=np.float32))
        cls, dist = (keras.ops.convert_to_numpy(keras.ops.cast(o, "float32")) for o in heads(x))
        y = labels[start : start + batch_size]
        for head, scores in zip(HEADS, (cls, dist, (cls + dist) / 2)):
            counts[head].update(scores, y)
    result = {h: {k: v for k, v in counts[h].result().items() if k != "n"} for h in HEADS}
    if not getattr(student, "distillation", False):
        result["dist"], result["both"] = None, result["cls"]
    return {**result, "n": int(len(labels))}
