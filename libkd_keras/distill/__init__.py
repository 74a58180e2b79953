"""The LIB-KD loss (`losses`), the `Distiller` that trains a student with it, the recipes, `train_student`."""

from libkd_keras.distill import losses
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.distiller import Distiller
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
from libkd_keras.distill.students import student_builder
from libkd_keras.distill.training import train_student

__all__ = [
    "Distiller",
    "ExactCutMix",
    "LabelConsistentMix",
    "RECIPES",
    "StudentRecipe",
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
    "train_student",
]
