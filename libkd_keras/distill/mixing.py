"""MixUp / CutMix that mix the true labels and the stored teacher targets exactly like the pixels.

The trick: one-hot labels and teacher rows are concatenated along the last axis and passed to
Keras' `MixUp` / `CutMix` as their `"labels"`, so both are mixed with the same per-example weight
and the same partner as the images, then split again. Mixed rows still sum to one.

Differences from DeiT / timm, by design of the Keras layers:
- the mixing weight is drawn per example (timm draws one per batch);
- `ExactCutMix` sets the label weight to the fraction of pixels actually kept (timm's
  `correct_lam`), which Keras' `CutMix` approximates from the unrounded box size.

Example:
>>> mixer = LabelConsistentMix(num_classes=10, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5)
>>> images, targets = mixer(images, {"label": labels, "teacher": teacher_rows})
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="libkd_keras")
class ExactCutMix(keras.layers.CutMix):
    """`keras.layers.CutMix` whose label weight is the fraction of pixels kept from each image."""

    def get_random_transformation(self, data, training=True, seed=None):
        transformation = super().get_random_transformation(data, training=training, seed=seed)
        if transformation is not None:
            pasted = self.backend.cast(transformation["batch_masks"], self.compute_dtype)
            transformation["mix_weight"] = 1.0 - self.backend.numpy.mean(pasted, axis=(1, 2, 3))
        return transformation


class LabelConsistentMix:
    """Apply MixUp or CutMix to a batch and mix the label and teacher rows the same way.

    - `mixup_alpha`: Beta(alpha, alpha) parameter of MixUp (0 disables it).
    - `cutmix_alpha`: Beta(alpha, alpha) parameter of CutMix (0 disables it).
    - `switch_prob`: with both on, the probability that a batch uses CutMix instead of MixUp.

    Called on `(images, targets)` where `targets` is integer labels `(B,)`, label rows `(B, C)` or
    a dict with `"label"` and optionally `"teacher"`; returns the same structure with the label
    (and teacher) as float32 probability rows. Works inside `tf.data.Dataset.map`.
    """

    def __init__(self, num_classes, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, seed=None):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}.")
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not value >= 0:
                raise ValueError(f"`{name}` must be >= 0 (0 disables it); got {value!r}.")
        if not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"`switch_prob` must be in [0, 1]; got {switch_prob!r}.")
        if not (mixup_alpha or cutmix_alpha):
            raise ValueError("At least one of `mixup_alpha` and `cutmix_alpha` must be positive.")
        self.num_classes = num_classes
        self.switch_prob = float(switch_prob) if (mixup_alpha and cutmix_alpha) else float(bool(cutmix_alpha))
        # float32 layers: mixing weights and label rows stay exact under a mixed-precision policy.
        self.mixup = keras.layers.MixUp(alpha=mixup_alpha, seed=seed, dtype="float32") if mixup_alpha else None
        cutmix_seed = None if seed is None else seed + 1
        self.cutmix = (
            ExactCutMix(factor=(cutmix_alpha, cutmix_alpha), seed=cutmix_seed, dtype="float32")
            if cutmix_alpha
            else None
        )
        self.seed = seed

    def _mix(self, layer, images, rows):
        out = layer({"images": images, "labels": rows}, training=True)
        return out["images"], out["labels"]

    def __call__(self, images, targets):
        label = targets["label"] if isinstance(targets, dict) else targets
        teacher = targets.get("teacher") if isinstance(targets, dict) else None
        label = tf.convert_to_tensor(label)
        if label.shape.rank == 1:
            label = tf.one_hot(tf.cast(label, tf.int32), self.num_classes)
        parts = [tf.cast(label, tf.float32)] + ([tf.cast(teacher, tf.float32)] if teacher is not None else [])
        rows = tf.concat(parts, axis=-1)
        images = tf.cast(images, tf.float32)

        if self.mixup is None:
            images, rows = self._mix(self.cutmix, images, rows)
        elif self.cutmix is None:
            images, rows = self._mix(self.mixup, images, rows)
        else:
            use_cutmix = tf.random.uniform((), seed=self.seed) < self.switch_prob  # one coin per batch
            images, rows = tf.cond(
                use_cutmix, lambda: self._mix(self.cutmix, images, rows), lambda: self._mix(self.mixup, images, rows)
            )

        mixed_label, mixed_teacher = rows[:, : self.num_classes], rows[:, self.num_classes :]
        if not isinstance(targets, dict):
            return images, mixed_label
        out = dict(targets, label=mixed_label)
        if teacher is not None:
            out["teacher"] = mixed_teacher
        return images, out
