"""What a student recipe makes: its dtype policy, optimizer and schedule, Distiller and DeiT.

The settings are `StudentRecipe` (`libkd_keras/recipes.py`: the [student] section, a [[students]]
entry, an ablation experiment; `baseline()`, `superior()`, `mix()` build one). This module turns them
into the pieces of a student run: `apply_precision`, `student_schedule` / `student_optimizer` (AdamW,
warmup + cosine), `distiller_for` (the `Distiller` with the recipe's loss settings) and `make_student`;
`distill.student_augmentation(dataset, recipe, num_classes)` makes its augmented training data.

Example:
>>> recipe = superior(precision="mixed_bfloat16")
>>> student = make_student(recipe, num_classes=10, image_size=32)        # DeiT-Tiny, patch 4
>>> distiller = distiller_for(recipe, student)
>>> distiller.compile(optimizer=student_optimizer(recipe, steps_per_epoch=390, epochs=300))
>>> batches = store.dataset(recipe.kd, teachers=["resnet26", "rednet26"], batch_size=recipe.batch_size)
>>> distiller.fit(student_augmentation(batches, recipe, num_classes=10), epochs=300)
"""

import keras

from libkd_keras.distill.distiller import Distiller
from libkd_keras.models import STUDENT_BUILDERS, DeiT
from libkd_keras.recipes import NAMED_RECIPES, RECIPES, StudentRecipe, baseline, mix, superior

__all__ = [
    "NAMED_RECIPES",
    "RECIPES",
    "StudentRecipe",
    "apply_precision",
    "baseline",
    "distiller_for",
    "make_student",
    "mix",
    "student_optimizer",
    "student_schedule",
    "superior",
]

# timm's AdamW excludes 1-D parameters and these from weight decay; matched on variable names.
NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "cls_token", "dist_token", "position_embedding"]


def apply_precision(recipe):
    """Set Keras' global dtype policy to the recipe's precision; call before building the student.

    Under "mixed_bfloat16" the DeiT heads keep float32 weights and outputs and the losses are
    computed in float32.
    """
    keras.mixed_precision.set_dtype_policy(recipe.precision)


def student_schedule(recipe, steps_per_epoch, epochs):
    """Linear warmup from `warmup_learning_rate` to the peak rate, then cosine to `min_learning_rate`.

    The warmup lasts `warmup_epochs`, but at most half of the run (short runs keep a cosine phase).
    """
    if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0 or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(
            f"`steps_per_epoch` and `epochs` must be positive integers; got {steps_per_epoch!r}, {epochs!r}."
        )
    total = steps_per_epoch * epochs
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total // 2)
    peak = recipe.peak_learning_rate
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.warmup_learning_rate if warmup else peak,
        decay_steps=total - warmup,
        alpha=min(recipe.min_learning_rate / peak, 1.0),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def student_optimizer(recipe, steps_per_epoch, epochs):
    """AdamW (epsilon 1e-8 as DeiT) on `student_schedule(...)`; no decay on biases, norms, tokens; the
    gradients' global norm clipped to `clip_grad_norm` when it is set."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=student_schedule(recipe, steps_per_epoch, epochs),
        weight_decay=recipe.weight_decay,
        epsilon=1e-8,
        global_clipnorm=recipe.clip_grad_norm or None,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def distiller_for(recipe, student, teachers=None, **kwargs):
    """A `Distiller` of `student` with the recipe's loss settings (`recipe.kd`, alpha, label smoothing)."""
    return Distiller(
        student, kd=recipe.kd, alpha=recipe.alpha, teachers=teachers, label_smoothing=recipe.label_smoothing, **kwargs
    )


def make_student(
    recipe, num_classes, image_size=32, patch_size=4, variant="tiny", distillation_token=True, **deit_kwargs
):
    """Set the recipe's precision, then build the DeiT student with its drop-path rate.

    `variant` is "micro", "tiny", "small" or "base" (`models.DEIT_VARIANTS`), or None to build
    `DeiT(**deit_kwargs)` with any size (e.g. `variant=None, dim=32, depth=2, num_heads=2` for a test model).
    """
    from libkd_keras.distill.students import student_builder  # the one DeiT-from-config builder

    apply_precision(recipe)
    if variant is None:
        return DeiT(
            num_classes=num_classes,
            image_size=image_size,
            patch_size=patch_size,
            distillation=distillation_token,
            drop_path_rate=recipe.drop_path_rate,
            **deit_kwargs,
        )
    if f"deit_{variant}" not in STUDENT_BUILDERS:
        variants = ", ".join(repr(a.removeprefix("deit_")) for a in STUDENT_BUILDERS)
        raise ValueError(f"`variant` must be one of {variants} or None; got {variant!r}.")
    build = student_builder(
        f"deit_{variant}", num_classes, image_size, patch_size, recipe.drop_path_rate, deit_kwargs or None
    )
    return build(distillation_token)
