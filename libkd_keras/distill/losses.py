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

Example:
>>> import keras
>>> cls = keras.ops.convert_to_tensor([[2.0, 0.0, 0.0]])
>>> dist = keras.ops.convert_to_tensor([[0.0, 2.0, 0.0]])
>>> terms = distillation_loss(cls, dist, labels=[0], teacher=[[0.0, 1.0, 0.0]], alpha=0.5)
>>> sorted(terms)
['distill_loss', 'label_loss', 'loss']
"""

import keras
from keras import ops

DISTILLATION_TYPES = ("hard", "soft", "none")


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


def check_distillation_args(alpha, distillation, temperature, label_smoothing):
    """`ValueError` naming the argument when a loss hyper-parameter is out of range."""
    if distillation not in DISTILLATION_TYPES:
        raise ValueError(f"`distillation` must be one of {DISTILLATION_TYPES}; got {distillation!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` (weight of the true-label term) must be a number in [0, 1]; got {alpha!r}.")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"`temperature` must be a positive number; got {temperature!r}.")
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, (int, float))
        or not (0.0 <= label_smoothing < 1.0)
    ):
        raise ValueError(f"`label_smoothing` must be a number in [0, 1); got {label_smoothing!r}.")


def distillation_loss(
    cls_logits,
    dist_logits,
    labels,
    teacher=None,
    *,
    alpha=0.5,
    distillation="hard",
    temperature=1.0,
    label_smoothing=0.1,
):
    """The LIB-KD loss per example: `{"loss", "label_loss", "distill_loss"}`, each `(batch,)`.

    - `labels`: integer labels `(batch,)` or probability rows `(batch, classes)`.
    - `teacher`: probability rows `(batch, classes)`; required for "hard" and "soft".
    - `distillation="none"`: the plain student. The distillation head (pass `dist_logits=None`
      for a student without one) is trained on the *true* label, smoothed, i.e. the hard loss
      with the teacher replaced by the label: `alpha * CE_ls(cls, y) + (1 - alpha) * CE_ls(dist, y)`.
      Without a distillation head the loss is `CE_ls(cls, y)` and `distill_loss` is zero.
    """
    check_distillation_args(alpha, distillation, temperature, label_smoothing)
    num_classes = cls_logits.shape[-1]
    targets = label_rows(labels, num_classes)
    label_loss = cross_entropy(cls_logits, targets, label_smoothing)
    if distillation == "none":
        if dist_logits is None:
            return {"loss": label_loss, "label_loss": label_loss, "distill_loss": ops.zeros_like(label_loss)}
        distill = cross_entropy(dist_logits, targets, label_smoothing)
    elif teacher is None:
        raise ValueError(f'`teacher` rows are required for distillation="{distillation}".')
    elif distillation == "hard":
        distill = hard_distillation_loss(dist_logits, teacher)
    else:
        distill = soft_distillation_loss(dist_logits, teacher, temperature)
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
