"""Ensemble rules over stored or online teacher logits (keras.ops, so tf.data and the Distiller share them).

All functions take teacher logits shaped `(batch, teachers, classes)`.
"""

from keras import ops

ENSEMBLE_RULES = ("soft", "vote")
TARGET_KINDS = ("hard", "soft")


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


def ensemble_target(logits, rule="soft", target="hard", temperature=1.0):
    """The distillation target as a probability row `(batch, classes)`.

    - `target="hard"`: one-hot of the ensemble's decision (soft-average argmax, or majority vote).
    - `target="soft"`: the soft average at `temperature` (rule "soft"), or the vote fractions
      (rule "vote").
    """
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"`ensemble` must be one of {ENSEMBLE_RULES}; got {rule!r}.")
    if target not in TARGET_KINDS:
        raise ValueError(f"`target` must be one of {TARGET_KINDS}; got {target!r}.")
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive; got {temperature!r}.")
    classes = logits.shape[-1]
    if target == "hard":
        winner = majority_vote(logits) if rule == "vote" else ops.argmax(soft_average(logits), axis=-1)
        return ops.one_hot(winner, classes)
    if rule == "vote":
        return vote_counts(logits) / ops.cast(logits.shape[1], "float32")
    return soft_average(logits, temperature)
