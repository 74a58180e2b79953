"""The LIB-KD loss (`losses`: `HardDistillation`, `SoftDistillation`), the `Distiller`, the recipes, `train_student`."""

from libkd_keras.distill import losses
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.distiller import Distiller
from libkd_keras.distill.losses import HardDistillation, SoftDistillation
from libkd_keras.distill.mixing import ExactCutMix, LabelConsistentMix
from libkd_keras.distill.online import label_online
from libkd_keras.distill.recipes import (
    RECIPES,
    StudentRecipe,
    apply_precision,
    baseline,
    distiller_for,
    make_student,
    mix,
    student_optimizer,
    student_schedule,
    superior,
)
from libkd_keras.distill.sources import OnlineTargets, StoredTargets, ViewTargets, target_source
from libkd_keras.distill.students import student_builder
from libkd_keras.distill.training import train_student

__all__ = [
    "Distiller",
    "ExactCutMix",
    "HardDistillation",
    "LabelConsistentMix",
    "OnlineTargets",
    "RECIPES",
    "SoftDistillation",
    "StoredTargets",
    "StudentRecipe",
    "ViewTargets",
    "apply_precision",
    "baseline",
    "distiller_for",
    "label_online",
    "losses",
    "make_student",
    "mix",
    "student_augmentation",
    "student_builder",
    "student_optimizer",
    "student_schedule",
    "superior",
    "target_source",
    "train_student",
]
