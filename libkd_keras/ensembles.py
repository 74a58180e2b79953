"""Ensemble rules over teacher logits: what several teachers decide, and their probabilities.

One implementation, written with `keras.ops`, shared by the store (targets computed once, read by
tf.data) and online teachers (`teacher_target`: in the Distiller's step or in the input pipeline,
`distill/online.py`). Which of the two a distillation target is (the one-hot decision or the
probabilities at its temperature) is the distillation object's to say: `HardDistillation` and
`SoftDistillation` in `distill/losses.py` build their rows from `decision` and `probabilities`.
This module imports neither the store nor TensorFlow directly, so any side can use it.

All rules take teacher logits shaped `(batch, teachers, classes)`.

Example:
>>> decision(logits, rule="vote")                        # (batch,) class indices
>>> probabilities(logits, rule="soft", temperature=4.0)  # (batch, classes)
"""

import keras
from keras import ops

from libkd_keras.choices import ENSEMBLES

ENSEMBLE_RULES = ENSEMBLES  # "soft" (average the probabilities), "vote" (majority vote)


def soft_average(logits, temperature=1.0):
    """Mean of the teachers' softmax probabilities at `temperature` (paper: soft averaging)."""
    return ops.mean(ops.softmax(ops.cast(logits, "float32") / temperature, axis=-1), axis=1)


def vote_counts(logits):
    """How many teachers pick each class: `(batch, classes)`."""
    classes = logits.shape[-1]
    return ops.sum(ops.one_hot(ops.argmax(logits, axis=-1), classes), axis=1)


def majority_vote(logits):
    """Class picked by most teachers; ties broken by the soft average (which adds < 1 vote)."""
    return ops.argmax(vote_counts(logits) + 0.5 * soft_average(logits), axis=-1)


def check_rule(rule):
    """Raise `ValueError` naming the argument unless `rule` is one of `ENSEMBLE_RULES`."""
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"`ensemble` must be one of {ENSEMBLE_RULES}; got {rule!r}.")


def decision(logits, rule="soft"):
    """The ensemble's class `(batch,)`: the soft average's argmax (rule "soft") or the majority vote."""
    check_rule(rule)
    return majority_vote(logits) if rule == "vote" else ops.argmax(soft_average(logits), axis=-1)


def probabilities(logits, rule="soft", temperature=1.0):
    """The ensemble's probability rows `(batch, classes)`: the soft average at `temperature` (rule
    "soft"), or the vote fractions (rule "vote", which do not depend on the temperature)."""
    check_rule(rule)
    if rule == "vote":
        return vote_counts(logits) / ops.cast(logits.shape[1], "float32")
    return soft_average(logits, temperature)


def as_teacher_list(teachers):
    """Online teachers as a tuple: from a list, a dict (its values) or one keras.Model; never empty."""
    if isinstance(teachers, dict):
        teachers = list(teachers.values())
    elif isinstance(teachers, keras.Model):
        teachers = [teachers]
    teachers = () if teachers is None else tuple(teachers)
    if not teachers or not all(isinstance(t, keras.Model) for t in teachers):
        raise ValueError(
            f"`teachers` must be a non-empty list (or dict) of keras.Model returning logits; got {teachers!r}."
        )
    return teachers


def teacher_target(teachers, images, num_classes, kd, rule="soft"):
    """Online teachers' ensemble target on `images`: frozen (`training=False`, no gradient), float32.

    Args:
        teachers: sequence of keras.Model. Each maps the images to logits `(batch, num_classes)`.
        images: tensor `(batch, H, W, 3)`. The pixels the student sees.
        num_classes: int. The student's classes; a teacher predicting another count is an error.
        kd: `HardDistillation()` or `SoftDistillation(T)` (`distill/losses.py`): which target row.
        rule: str. How the teachers are combined (`ENSEMBLE_RULES`).
    """
    logits = [ops.cast(ops.stop_gradient(t(images, training=False)), "float32") for t in teachers]
    for teacher, out in zip(teachers, logits):
        if out.shape[-1] != num_classes:
            raise ValueError(
                f"`teachers`: {teacher.name} predicts {out.shape[-1]} classes but the student "
                f"predicts {num_classes}; they must match."
            )
    return kd.target(ops.stack(logits, axis=1), rule)
