"""Ensemble rules over teacher logits, and the description of the target they give.

One implementation, written with `keras.ops`, shared by the store (targets computed once, read by
tf.data) and online teachers (`teacher_target`: in the Distiller's step or in the input pipeline,
`distill/online.py`). This module imports neither the store nor TensorFlow directly, so any side
can use it.

All rules take teacher logits shaped `(batch, teachers, classes)`.

Example:
>>> target = ensemble_target(logits, rule="soft", target="soft", temperature=4.0)   # (batch, classes)
>>> describe_target("soft", "soft", 4.0)          # what the rows are: [is_soft, temperature, rule]
[1.0, 4.0, 0.0]
"""

import keras
from keras import ops

from libkd_keras.choices import DISTILLATIONS, ENSEMBLES

ENSEMBLE_RULES = ENSEMBLES  # "soft" (average the probabilities), "vote" (majority vote)
TARGET_KINDS = DISTILLATIONS  # "hard" (one-hot of the decision), "soft" (probabilities)
TARGET_DESCRIPTION = ("is_soft", "temperature", "rule")  # the columns of `describe_target`


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


def check_target_args(rule, target, temperature):
    """Raise `ValueError` naming the argument unless `rule`, `target` and `temperature` are valid."""
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"`ensemble` must be one of {ENSEMBLE_RULES}; got {rule!r}.")
    if target not in TARGET_KINDS:
        raise ValueError(f"`target` must be one of {TARGET_KINDS}; got {target!r}.")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be positive; got {temperature!r}.")


def ensemble_target(logits, rule="soft", target="hard", temperature=1.0):
    """The distillation target as a probability row `(batch, classes)`.

    - `target="hard"`: one-hot of the ensemble's decision (soft-average argmax, or majority vote).
    - `target="soft"`: the soft average at `temperature` (rule "soft"), or the vote fractions
      (rule "vote", which do not depend on the temperature).
    """
    check_target_args(rule, target, temperature)
    classes = logits.shape[-1]
    if target == "hard":
        winner = majority_vote(logits) if rule == "vote" else ops.argmax(soft_average(logits), axis=-1)
        return ops.one_hot(winner, classes)
    if rule == "vote":
        return vote_counts(logits) / ops.cast(logits.shape[1], "float32")
    return soft_average(logits, temperature)


def describe_target(rule="soft", target="hard", temperature=1.0):
    """What `ensemble_target(..., rule, target, temperature)` rows are, as 3 floats (`TARGET_DESCRIPTION`).

    `[is_soft (0 or 1), temperature, rule (index in ENSEMBLE_RULES)]`; the temperature is 0 when the
    rows do not depend on it (hard targets, vote fractions). The store puts this row beside every
    teacher row (`"target_kind"`) and the Distiller checks it against its own loss.
    """
    check_target_args(rule, target, temperature)
    depends_on_temperature = target == "soft" and rule == "soft"
    return [
        float(target == "soft"),
        float(temperature) if depends_on_temperature else 0.0,
        float(ENSEMBLE_RULES.index(rule)),
    ]


def target_name(is_soft, temperature, rule):
    """Human words for a `describe_target` row, e.g. `'soft targets at T=4 (rule "soft")'`."""
    rule = ENSEMBLE_RULES[int(round(rule))] if 0 <= round(rule) < len(ENSEMBLE_RULES) else f"#{rule:g}"
    if not is_soft:
        return f'hard targets (rule "{rule}")'
    at = f" at T={temperature:g}" if temperature else " (independent of T)"
    return f'soft targets{at} (rule "{rule}")'


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


def teacher_target(teachers, images, num_classes, rule="soft", target="hard", temperature=1.0):
    """Online teachers' ensemble target on `images`: frozen (`training=False`, no gradient), float32.

    Args:
        teachers: sequence of keras.Model. Each maps the images to logits `(batch, num_classes)`.
        images: tensor `(batch, H, W, 3)`. The pixels the student sees.
        num_classes: int. The student's classes; a teacher predicting another count is an error.
        rule, target, temperature: as `ensemble_target`.
    """
    logits = [ops.cast(ops.stop_gradient(t(images, training=False)), "float32") for t in teachers]
    for teacher, out in zip(teachers, logits):
        if out.shape[-1] != num_classes:
            raise ValueError(
                f"`teachers`: {teacher.name} predicts {out.shape[-1]} classes but the student "
                f"predicts {num_classes}; they must match."
            )
    return ensemble_target(ops.stack(logits, axis=1), rule=rule, target=target, temperature=temperature)
