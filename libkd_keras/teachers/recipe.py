"""The teachers' training recipe (LIB-KD Tables 1-3, the mmcls CIFAR recipe): SGD + cosine decay.

The settings are `TeacherRecipe` (`libkd_keras/recipes.py`, the [teachers] section's training keys);
this module makes the optimizer, schedule and loss from them.

Weight decay is *coupled L2*, as in PyTorch's `SGD(weight_decay=5e-4)` that the paper used: the
gradient of every trainable variable (kernels, biases and BatchNorm scales alike, as in PyTorch)
gets `weight_decay * variable` added before the momentum update (`L2SGD`). Keras' own
`SGD(weight_decay=...)` is *decoupled* (it subtracts `lr * wd * variable` outside the momentum),
which at lr 0.1 and momentum 0.9 regularises about ten times less than the recipe intends.
"""

import keras
from keras import ops

from libkd_keras.recipes import TeacherRecipe  # the settings (TensorFlow-free), declared once

__all__ = ["L2SGD", "TeacherRecipe", "teacher_loss", "teacher_optimizer", "teacher_schedule"]


@keras.saving.register_keras_serializable(package="libkd_keras")
class L2SGD(keras.optimizers.SGD):
    """SGD whose weight decay is L2 added to the gradient (PyTorch's `SGD(weight_decay=...)`).

    Example:
    >>> optimizer = L2SGD(learning_rate=0.1, momentum=0.9, l2=5e-4)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0; got {l2!r}.")
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            decay = ops.multiply(variable, ops.cast(self.l2, variable.dtype))
            gradient = ops.add(ops.cast(gradient, variable.dtype), decay)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def teacher_schedule(recipe, steps_per_epoch):
    """Cosine decay of `recipe.scaled_learning_rate` to 0 over all steps, after a linear warm-up of
    `recipe.warmup_epochs` (capped at `epochs - 1`, so a short run keeps a cosine phase)."""
    total = recipe.epochs * steps_per_epoch
    warmup = min(recipe.warmup_epochs, recipe.epochs - 1) * steps_per_epoch
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, warmup_target=recipe.scaled_learning_rate, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(recipe.scaled_learning_rate, total)


def teacher_optimizer(recipe, steps_per_epoch):
    """`L2SGD` on `teacher_schedule` with the recipe's momentum and coupled L2 weight decay."""
    return L2SGD(
        learning_rate=teacher_schedule(recipe, steps_per_epoch), momentum=recipe.momentum, l2=recipe.weight_decay
    )


def teacher_loss(recipe):
    """Cross-entropy on logits with the recipe's label smoothing."""
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing)
