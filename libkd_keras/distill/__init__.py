"""The LIB-KD loss (`losses`), the `Distiller` that trains a student with it, and the student recipes."""

from libkd_keras.distill import losses
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.distiller import Distiller
from libkd_keras.distill.mixing import ExactCutMix, LabelConsistentMix
from libkd_keras.distill.recipes import RECIPES, StudentRecipe, baseline, make_student, superior

__all__ = [
    "Distiller", "ExactCutMix", "LabelConsistentMix", "RECIPES", "StudentRecipe", "baseline", "losses",
    "make_student", "student_augmentation", "superior",
]
