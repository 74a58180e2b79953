"""Student training recipes of the paper: `baseline` ("Student baseline" / "KD baseline") and `superior`.

A `StudentRecipe` holds every hyper-parameter of a student run and makes the pieces from them:
the dtype policy (`apply_precision`), the student (`make_student`), the Distiller (`distiller`),
the AdamW optimizer with its warmup + cosine schedule (`optimizer`), and the augmented training
data (`augment`).

- `baseline()`: DeiT's recipe as the paper's table gives it: AdamW, lr 5e-4 scaled by
  batch / 512 as DeiT does (5e-4 * 128 / 512 = 1.25e-4 at batch 128), weight decay 0.05 (not on
  biases, norms, tokens and position embedding, as timm), drop path 0.1, batch 128, label
  smoothing 0.1, 5 warmup epochs from 1e-6 then cosine to 1e-5, pad-and-crop + flip. With its
  default `distillation="hard"` it is the paper's "KD baseline"; `baseline(distillation="none")`
  is the "Student baseline".
- `superior()`: baseline + MixUp 0.8, CutMix 1.0 (one or the other per batch, probability 0.5),
  repeated augmentation (3 copies, DeiT's RASampler, see `augment.py`), colour jitter 0.3, random
  erasing 0.25, RandAugment (2 ops). timm switches colour jitter off when RandAugment is on; the
  paper lists both and so do we.
- `mix()`: baseline + MixUp 0.8 / CutMix 1.0 and nothing else: every op of it can follow a stored
  view (flip and crop are replayed from a multi-view store, MixUp/CutMix mix the stored rows with
  the pixels), so a student of `targets="views"` gets the teacher's row on exactly the image it
  sees, at stored cost (Beyer et al. 2022's "consistent" teaching; `superior`'s RandAugment and
  colour jitter break that match).

Example:
>>> recipe = superior(precision="mixed_bfloat16")
>>> student = make_student(recipe, num_classes=10, image_size=32)        # DeiT-Tiny, patch 4
>>> distiller = recipe.distiller(student)
>>> distiller.compile(optimizer=recipe.optimizer(steps_per_epoch=390, epochs=300))
>>> train = recipe.augment(store.dataset(recipe.kd, teachers=["resnet26", "rednet26"], batch_size=128), 10)
>>> distiller.fit(train, epochs=300)
"""

import dataclasses

import keras

from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.distiller import Distiller
from libkd_keras.distill.losses import check_loss_args, distillation_for
from libkd_keras.models import STUDENT_BUILDERS, DeiT
from libkd_keras.precision import resolve_precision

# timm's AdamW excludes 1-D parameters and these from weight decay; matched on variable names.
NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "cls_token", "dist_token", "position_embedding"]


@dataclasses.dataclass(frozen=True)
class StudentRecipe:
    """Hyper-parameters of a student run; see the module docstring for the two presets."""

    name: str = "baseline"
    # optimisation
    batch_size: int = 128
    base_learning_rate: float = 5e-4  # at batch 512; the learning rate is scaled by batch / 512
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    warmup_learning_rate: float = 1e-6
    min_learning_rate: float = 1e-5
    drop_path_rate: float = 0.1
    precision: str = "float32"  # or "mixed_bfloat16", or "auto" (resolved at construction: precision.py)
    # loss
    distillation: str = "hard"
    alpha: float = 0.5
    temperature: float = 1.0
    label_smoothing: float = 0.1
    # augmentation
    flip_crop: bool = True
    crop_padding: int = 4
    rand_augment_ops: int = 0
    rand_augment_factor: float = 0.1
    color_jitter: float = 0.0
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_switch_prob: float = 0.5
    repeats: int = 1

    def __post_init__(self):
        object.__setattr__(self, "precision", resolve_precision(self.precision, "deit"))  # students are DeiTs
        distillation_for(self.distillation, self.temperature)  # checks both
        check_loss_args(self.alpha, self.label_smoothing)
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive integer; got {self.batch_size!r}.")
        for name in ("base_learning_rate", "warmup_learning_rate", "min_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive; got {getattr(self, name)!r}.")
        if not self.weight_decay >= 0 or not self.warmup_epochs >= 0:
            raise ValueError("`weight_decay` and `warmup_epochs` must be >= 0.")

    @property
    def learning_rate(self):
        """Peak learning rate: `base_learning_rate * batch_size / 512` (DeiT's linear scaling)."""
        return self.base_learning_rate * self.batch_size / 512

    def apply_precision(self):
        """Set Keras' global dtype policy; call before building the student (`make_student` does).

        Under "mixed_bfloat16" the DeiT heads keep float32 weights and outputs and the losses are
        computed in float32.
        """
        keras.mixed_precision.set_dtype_policy(self.precision)

    def schedule(self, steps_per_epoch, epochs):
        """Linear warmup from `warmup_learning_rate` to `learning_rate`, then cosine to `min_learning_rate`.

        The warmup lasts `warmup_epochs`, but at most half of the run (short runs keep a cosine phase).
        """
        if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0 or not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(
                f"`steps_per_epoch` and `epochs` must be positive integers; got {steps_per_epoch!r}, {epochs!r}."
            )
        total = steps_per_epoch * epochs
        warmup = min(self.warmup_epochs * steps_per_epoch, total // 2)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=self.warmup_learning_rate if warmup else self.learning_rate,
            decay_steps=total - warmup,
            alpha=min(self.min_learning_rate / self.learning_rate, 1.0),
            warmup_target=self.learning_rate if warmup else None,
            warmup_steps=warmup,
        )

    def optimizer(self, steps_per_epoch, epochs):
        """AdamW (epsilon 1e-8 as DeiT) on `schedule(...)`; no decay on biases, norms, tokens."""
        optimizer = keras.optimizers.AdamW(
            learning_rate=self.schedule(steps_per_epoch, epochs), weight_decay=self.weight_decay, epsilon=1e-8
        )
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
        return optimizer

    @property
    def kd(self):
        """This recipe's distillation: `HardDistillation()`, `SoftDistillation(temperature)` or None ("none")."""
        return distillation_for(self.distillation, self.temperature)

    def distiller(self, student, teachers=None, **kwargs):
        """A `Distiller` with this recipe's loss settings (`kd`, alpha, label smoothing)."""
        return Distiller(
            student, kd=self.kd, alpha=self.alpha, teachers=teachers, label_smoothing=self.label_smoothing, **kwargs
        )

    def augment(self, dataset, num_classes, seed=None, replayed_views=False):
        """The recipe's augmentation applied to batched store (or `(image, label)`) data.

        `replayed_views`: the batches are replayed store views (`store.dataset(views=True)`), which
        are this recipe's flip and crop already; the rest of the recipe follows.
        """
        return student_augmentation(
            dataset,
            num_classes,
            self.batch_size,
            flip_crop=self.flip_crop and not replayed_views,
            crop_padding=self.crop_padding,
            rand_augment_ops=self.rand_augment_ops,
            rand_augment_factor=self.rand_augment_factor,
            color_jitter=self.color_jitter,
            random_erasing=self.random_erasing,
            mixup_alpha=self.mixup_alpha,
            cutmix_alpha=self.cutmix_alpha,
            mix_switch_prob=self.mix_switch_prob,
            repeats=self.repeats,
            seed=seed,
        )

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def baseline(**overrides):
    """The paper's student / KD baseline recipe (see the module docstring)."""
    return StudentRecipe(name="baseline").replace(**overrides)


def superior(**overrides):
    """The paper's "KD superior" recipe (see the module docstring)."""
    return StudentRecipe(
        name="superior",
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        mix_switch_prob=0.5,
        repeats=3,
        color_jitter=0.3,
        random_erasing=0.25,
        rand_augment_ops=2,
    ).replace(**overrides)


def mix(**overrides):
    """The baseline recipe with MixUp/CutMix only: consistent with replayed store views (module docstring)."""
    return StudentRecipe(name="mix", mixup_alpha=0.8, cutmix_alpha=1.0, mix_switch_prob=0.5).replace(**overrides)


RECIPES = {"baseline": baseline, "superior": superior, "mix": mix}


def make_student(
    recipe, num_classes, image_size=32, patch_size=4, variant="tiny", distillation_token=True, **deit_kwargs
):
    """Set the recipe's precision, then build the DeiT student with its drop-path rate.

    `variant` is "micro", "tiny", "small" or "base" (`models.DEIT_VARIANTS`), or None to build
    `DeiT(**deit_kwargs)` with any size (e.g. `variant=None, dim=32, depth=2, num_heads=2` for a test model).
    """
    from libkd_keras.distill.students import student_builder  # the one DeiT-from-config builder

    recipe.apply_precision()
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
