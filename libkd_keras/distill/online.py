"""Online teachers in the input pipeline: `tf.data` labels each augmented batch with their target.

`targets = "online"` means the frozen teachers label the very pixels the student sees (after flip
and crop, RandAugment, erasing, MixUp/CutMix). Two places can run them, with the same targets
(`ensembles.teacher_target`):

- inside the training step: `Distiller(teachers=[...])`;
- here, as the input pipeline's last map (`label_online`), which hands a stored-mode Distiller
  batches of `(images, {"label", "teacher", "target_kind"})`, as the store does.

Here the student's step holds no teacher, so it compiles with XLA on a CPU too (`xla.py`), and
validation runs no teacher. On a 2-core CPU a training step is no faster this way (the teachers'
pass is most of it); validation is (benchmarks/RESULTS.md, "Training speed"; the log:
benchmarks/results/online.md). `tf.data` runs on the host CPU, so on a GPU, or with several replicas, the
teachers stay in the step: `in_input_pipeline()` is that rule, and `train_student` follows it.
Validation data are not labelled here, so `val_loss` is the true-label term, as for stored
targets (in the step, the teachers label the validation images too); the accuracies are the same.

Example:
>>> batches = student_augmentation(split.dataset(128, shuffle=True, seed=0), recipe, num_classes=10, seed=0)
>>> batches = label_online(batches, [resnet, rednet], num_classes=10, kd=recipe.kd)   # e.g. SoftDistillation(4.0)
>>> distiller_for(recipe, student).fit(batches, epochs=200)    # the targets of Distiller(teachers=[...])
"""

import keras
import tensorflow as tf

from libkd_keras.ensembles import as_teacher_list, teacher_target
from libkd_keras.layers.involution_xla import fused_taps


def in_input_pipeline(replicas=None):
    """Whether online teachers should run in `tf.data` here: TensorFlow backend, no GPU, one replica.

    Args:
        replicas: int or None. Replicas in sync (None: those of the current `tf.distribute` strategy).
    """
    if keras.backend.backend() != "tensorflow" or tf.config.list_logical_devices("GPU"):
        return False
    if replicas is None:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return replicas == 1


def label_online(dataset, teachers, num_classes, kd, rule="soft"):
    """`dataset` of `(images, labels)` batches with the teachers' ensemble target added to each.

    Args:
        dataset: tf.data.Dataset. Batches `(images, labels)`: labels int `(B,)` or rows `(B, C)`
            (MixUp/CutMix), as the recipe's augmentation yields them.
        teachers: list, dict or keras.Model. Frozen teachers returning logits (`as_teacher_list`).
        num_classes: int. The student's classes.
        kd: `HardDistillation()` or `SoftDistillation(T)`: the Distiller's own, which makes the rows.
        rule: str. "soft" (average the probabilities) or "vote" (`ensembles.ENSEMBLE_RULES`).

    Returns batches `(images, {"label", "teacher", "target_kind"})`, prefetched.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"`label_online` runs the teachers in tf.data, which needs the TensorFlow backend (this is "
            f"{keras.backend.backend()!r}); pass `teachers=[...]` to the Distiller to run them in the step."
        )
    teachers = as_teacher_list(teachers)
    kind = tf.constant(kd.describe(rule), tf.float32)  # also checks the rule

    def label(images, labels):
        teacher = teacher_target(teachers, images, num_classes, kd, rule=rule)
        rows = tf.tile(kind[None], [tf.shape(images)[0], 1])
        return images, {"label": labels, "teacher": teacher, "target_kind": rows}

    # The map is traced here: Involution2D's XLA-fused taps (inference, no gradient) run inside it.
    with fused_taps(True):
        labelled = dataset.map(label)
    return labelled.prefetch(tf.data.AUTOTUNE)
