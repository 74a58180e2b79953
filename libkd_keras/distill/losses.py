"""The LIB-KD loss: where it is computed, as pure functions of logits and targets (keras.ops).

Every function works in float32 whatever the dtype policy (logits and targets are cast first) and
returns one value per example, shape `(batch,)`; the mean over the batch is the paper's loss
(`batch_mean`; `scale_for_replicas` then divides it by the replica count under `tf.distribute`).

Targets are probability rows `(batch, classes)`: one-hot labels, MixUp/CutMix-mixed labels, the
store's teacher rows (one-hot of the ensemble decision for a hard target, probabilities at the
temperature `T` for a soft one). `label_rows` turns integer labels into such rows.

The objective (paper, Eq. 10 and Algorithm 1, step 5):

    hard: alpha * CE_ls(cls, y) + (1 - alpha) * CE(dist, teacher_hard)
    soft: alpha * CE_ls(cls, y) + (1 - alpha) * T^2 * KL(teacher_T || softmax(dist / T))

`CE_ls` is cross-entropy with label smoothing, applied to the true-label term only; the
distillation term uses the teacher rows unsmoothed, as DeiT does for hard distillation (its hard
term is plain cross-entropy on the teacher's argmax; its soft term has no smoothing either).

Weighting: DeiT's code (`DistillationLoss`) computes `base * (1 - alpha) + distill * alpha`, i.e.
alpha weights the *distillation* term. The LIB-KD paper writes `alpha * CE(true) + (1 - alpha) *
distill`, i.e. alpha weights the *true-label* term. We follow the paper. With the paper's alpha of
0.5 both agree.

Soft term normalisation: the KL is summed over classes and averaged over the batch (Hinton's
`batchmean`). DeiT divides the summed KL by `batch * classes` (`outputs_kd.numel()`), which makes
its soft term `classes` times smaller; we do not copy that.

The two distillations are objects, `HardDistillation()` and `SoftDistillation(temperature)`; "none"
(the plain student) is `None`. Each says, in one place, everything that differs between them:

    target(logits, rule)   a teacher ensemble's logits (batch, teachers, classes) -> its target rows
    describe(rule)         what those rows are, 3 floats (is_soft, temperature, rule): the "target_kind"
                           the store and the online labeller put beside every row
    matches(kind)          the kind check: which "target_kind" rows this loss may train on
    loss(dist, teacher)    the term on the distillation head (the functions above)

The store reader, the online labeller and the Distiller take the object itself, so the temperature
is given once. The objects are also `keras.distillation.DistillationLoss`es: with Keras' own
`keras.distillation.Distiller` (one teacher run in the step, one student output) the teacher's
logits become the same target row and the same term (`compute_loss`).

Example:
>>> import keras
>>> cls = keras.ops.convert_to_tensor([[2.0, 0.0, 0.0]])
>>> dist = keras.ops.convert_to_tensor([[0.0, 2.0, 0.0]])
>>> terms = distillation_loss(cls, dist, labels=[0], teacher=[[0.0, 1.0, 0.0]], alpha=0.5)
>>> sorted(terms)
['distill_loss', 'label_loss', 'loss']
>>> SoftDistillation(4.0).describe("soft")        # soft rows at T=4 of the soft average
[1.0, 4.0, 0.0]
"""

import dataclasses

import keras
from keras import ops

from libkd_keras.ensembles import ENSEMBLE_RULES, check_rule, decision, probabilities

DISTILLATION_TYPES = ("hard", "soft", "none")  # the config's names (`distillation_for`)
TARGET_DESCRIPTION = ("is_soft", "temperature", "rule")  # the columns of `describe(rule)`


def label_rows(labels, num_classes):
    """True labels as float32 probability rows `(batch, classes)`.

    Integer labels `(batch,)` (or `(batch, 1)`) become one-hot rows; rows (one-hot, smoothed or
    mixed) pass through cast to float32.
    """
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] == 1 and "int" in str(labels.dtype):
        labels = ops.squeeze(labels, axis=-1)
    if len(labels.shape) == 1:
        return ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype="float32")
    return ops.cast(labels, "float32")


def smooth_labels(rows, label_smoothing):
    """Label smoothing on probability rows: `rows * (1 - eps) + eps / classes` (rows still sum to 1)."""
    if not label_smoothing:
        return rows
    classes = rows.shape[-1]
    return rows * (1.0 - label_smoothing) + label_smoothing / classes


def cross_entropy(logits, target, label_smoothing=0.0):
    """`-sum(target * log_softmax(logits))` per example; `target` is a probability row.

    With one-hot targets this is ordinary cross-entropy; with mixed or smoothed targets it is
    timm's `SoftTargetCrossEntropy`.
    """
    target = smooth_labels(ops.cast(target, "float32"), label_smoothing)
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.sum(target * log_probs, axis=-1)


def hard_distillation_loss(dist_logits, teacher):
    """Cross-entropy of the distillation head against the teacher's hard label (a one-hot row).

    Under MixUp/CutMix the stored one-hot rows are mixed with the same weights as the images and
    the true labels, so the target becomes the same mixture of two teacher decisions.
    """
    return cross_entropy(dist_logits, teacher)


def soft_distillation_loss(dist_logits, teacher, temperature=1.0):
    """`T^2 * KL(teacher_T || softmax(dist / T))` per example.

    `teacher` holds the teacher's probabilities already taken at temperature `T` (the store reads
    them at the `temperature` you ask for; the online ensemble uses the same `T`).
    """
    teacher = ops.cast(teacher, "float32")
    log_student = ops.log_softmax(ops.cast(dist_logits, "float32") / temperature, axis=-1)
    # teacher * log(teacher), with 0 * log(0) = 0 (rows may hold exact zeros, e.g. mixed one-hots).
    teacher_entropy_term = teacher * ops.log(ops.maximum(teacher, 1e-30))
    return temperature**2 * ops.sum(teacher_entropy_term - teacher * log_student, axis=-1)


def check_loss_args(alpha, label_smoothing):
    """`ValueError` naming the argument when a loss hyper-parameter is out of range."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` (weight of the true-label term) must be a number in [0, 1]; got {alpha!r}.")
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, (int, float))
        or not (0.0 <= label_smoothing < 1.0)
    ):
        raise ValueError(f"`label_smoothing` must be a number in [0, 1); got {label_smoothing!r}.")


def check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"`temperature` must be a positive number; got {temperature!r}.")


# -- the two distillations, as objects ------------------------------------------------------------


class Distillation(keras.distillation.DistillationLoss):
    """What `HardDistillation` and `SoftDistillation` share: the kind check's words, Keras' API, saving."""

    def mismatch_message(self, row):
        """Why rows described by `row` (a `describe` row, or None if unknown) do not fit this loss."""
        found = target_words(row) if row is not None else "targets of another kind"
        return (
            f"The Distiller's {self!r} trains on {self.wanted}, but the batches hold {found}. Read them with the same "
            f"object: `store.dataset({self!r}, ...)` or `label_online(..., {self!r})`; or pass "
            "`check_target_kind=False` to the Distiller to mix target kinds deliberately."
        )

    # keras.distillation: a DistillationLoss of Keras' own Distiller (one teacher, one student output).
    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The batch mean of `loss` on the student's logits, against the target row of the teacher's logits."""
        teacher = ops.stop_gradient(ops.cast(teacher_outputs, "float32"))
        return ops.mean(self.loss(student_outputs, self.target(ops.expand_dims(teacher, 1))))

    def validate_model_compatibility(self, teacher, student):
        if getattr(student, "distillation", False):
            raise ValueError(
                "keras.distillation.Distiller trains one student output, but this student has a distillation "
                "token (two heads while training). Build it with `distillation=False`, or train it with "
                "`libkd_keras.distill.Distiller`, which puts this target on the token's head."
            )

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="libkd_keras")
@dataclasses.dataclass(frozen=True, repr=False)
class HardDistillation(Distillation):
    """Hard distillation (DeiT's): the distillation head learns the teacher ensemble's decision.

    - `target`: the one-hot row of the ensemble's class (`ensembles.decision`: the soft average's
      argmax, or the majority vote);
    - `describe`: `[0, 0, rule]`: hard rows depend on no temperature;
    - `matches`: hard rows only;
    - `loss`: `CE(dist, teacher)` (`hard_distillation_loss`).
    """

    wanted = "hard targets"

    def target(self, logits, rule="soft"):
        return ops.one_hot(decision(logits, rule), logits.shape[-1])

    def describe(self, rule="soft"):
        check_rule(rule)
        return [0.0, 0.0, float(ENSEMBLE_RULES.index(rule))]

    def matches(self, kind):
        """Per row of `kind` (tf or NumPy `(B, 3)` `describe` rows): is it a hard row?"""
        return ~(kind[:, 0] > 0.5)

    def loss(self, dist_logits, teacher):
        return hard_distillation_loss(dist_logits, teacher)

    def __repr__(self):
        return "HardDistillation()"


@keras.saving.register_keras_serializable(package="libkd_keras")
@dataclasses.dataclass(frozen=True, repr=False)
class SoftDistillation(Distillation):
    """Soft distillation at `temperature` (Hinton's): the distillation head learns the ensemble's probabilities.

    - `target`: the ensemble's probabilities at `temperature` (`ensembles.probabilities`: the soft
      average, or the vote fractions, which no temperature changes);
    - `describe`: `[1, temperature, rule]`, the temperature 0 for vote fractions;
    - `matches`: soft rows at this temperature, or vote fractions (they fit any);
    - `loss`: `T^2 * KL(teacher_T || softmax(dist / T))` (`soft_distillation_loss`).
    """

    temperature: float = 1.0

    def __post_init__(self):
        check_temperature(self.temperature)
        object.__setattr__(self, "temperature", float(self.temperature))

    @property
    def wanted(self):
        return f"soft targets at T={self.temperature:g}"

    def target(self, logits, rule="soft"):
        return probabilities(logits, rule, self.temperature)

    def describe(self, rule="soft"):
        check_rule(rule)
        return [1.0, self.temperature if rule == "soft" else 0.0, float(ENSEMBLE_RULES.index(rule))]

    def matches(self, kind):
        """Per row of `kind` (tf or NumPy `(B, 3)` `describe` rows): soft, at this temperature or none."""
        is_soft, row_temperature = kind[:, 0] > 0.5, kind[:, 1]
        close = abs(row_temperature - self.temperature) <= 1e-4 * self.temperature
        return is_soft & ((row_temperature == 0) | close)

    def loss(self, dist_logits, teacher):
        return soft_distillation_loss(dist_logits, teacher, self.temperature)

    def __repr__(self):
        short = f"{self.temperature:g}"
        return f"SoftDistillation(temperature={short if float(short) == self.temperature else repr(self.temperature)})"


def target_words(row):
    """Human words for a `describe` row, e.g. `'soft targets at T=4 (rule "soft")'`."""
    is_soft, temperature, rule = row
    rule = ENSEMBLE_RULES[int(round(rule))] if 0 <= round(rule) < len(ENSEMBLE_RULES) else f"#{rule:g}"
    if not is_soft:
        return f'hard targets (rule "{rule}")'
    at = f" at T={temperature:g}" if temperature else " (independent of T)"
    return f'soft targets{at} (rule "{rule}")'


def check_kd(kd):
    """`kd` itself, or a `ValueError` unless it is `HardDistillation()`, `SoftDistillation(T)` or None."""
    if kd is not None and not isinstance(kd, Distillation):
        raise ValueError(
            "`kd` must be HardDistillation(), SoftDistillation(temperature) (libkd_keras.distill) or None (no "
            f"distillation: the plain student); got {kd!r}."
        )
    return kd


def distillation_for(distillation, temperature=1.0):
    """The object of a config's `distillation` name: "hard", "soft" (at `temperature`) or "none" (None).

    The temperature is checked whatever the name: a recipe holds one either way.
    """
    if distillation not in DISTILLATION_TYPES:
        raise ValueError(f"`distillation` must be one of {DISTILLATION_TYPES}; got {distillation!r}.")
    check_temperature(temperature)
    if distillation == "none":
        return None
    return SoftDistillation(temperature) if distillation == "soft" else HardDistillation()


def distillation_loss(
    cls_logits, dist_logits, labels, teacher=None, *, kd=HardDistillation(), alpha=0.5, label_smoothing=0.1
):
    """The LIB-KD loss per example: `{"loss", "label_loss", "distill_loss"}`, each `(batch,)`.

    - `labels`: integer labels `(batch,)` or probability rows `(batch, classes)`.
    - `teacher`: probability rows `(batch, classes)` (`kd.target`'s); required with a `kd`.
    - `kd`: `HardDistillation()`, `SoftDistillation(T)`, or None: the plain student. The
      distillation head (pass `dist_logits=None` for a student without one) is then trained on the
      *true* label, smoothed, i.e. the hard loss with the teacher replaced by the label:
      `alpha * CE_ls(cls, y) + (1 - alpha) * CE_ls(dist, y)`. Without a distillation head the loss
      is `CE_ls(cls, y)` and `distill_loss` is zero.
    """
    check_kd(kd)
    check_loss_args(alpha, label_smoothing)
    num_classes = cls_logits.shape[-1]
    targets = label_rows(labels, num_classes)
    label_loss = cross_entropy(cls_logits, targets, label_smoothing)
    if kd is None:
        if dist_logits is None:
            return {"loss": label_loss, "label_loss": label_loss, "distill_loss": ops.zeros_like(label_loss)}
        distill = cross_entropy(dist_logits, targets, label_smoothing)
    elif teacher is None:
        raise ValueError(f"`teacher` rows are required for {kd!r}.")
    else:
        distill = kd.loss(dist_logits, teacher)
    return {"loss": alpha * label_loss + (1.0 - alpha) * distill, "label_loss": label_loss, "distill_loss": distill}


def batch_mean(values, sample_weight):
    """The mean of per-example `values` over the batch, each weighted by `sample_weight` when given."""
    if sample_weight is None:
        return ops.mean(values)
    return ops.mean(values * ops.reshape(ops.cast(sample_weight, "float32"), (-1,)))


def scale_for_replicas(loss):
    """Divide by the replica count under `tf.distribute`, as Keras does for compiled losses."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / replicas
    return loss
