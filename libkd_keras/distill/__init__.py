"""The LIB-KD loss (`losses`), the `Distiller` that trains a student with it, the recipes, `train_student`."""

from libkd_keras.distill import losses
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.distiller import Distiller
from libkd_keras.distill.mixing import ExactCutMix, LabelConsistentMix
from libkd_keras.distill.online import label_online
from libkd_keras.distill.recipes import RECIPES, StudentRecipe, baseline, make_student, superior
from libkd_keras.distill.students import scaled_base_learning_rate, student_builder
from libkd_keras.distill.training import train_student

__all__ = [
    "Distiller",
    "ExactCutMix",
    "LabelConsistentMix",
    "RECIPES",
    "StudentRecipe",
    "baseline",
    "label_online",
    "losses",
    "make_student",
    "scaled_base_learning_rate",
    "student_augmentation",
    "student_builder",
    "superior",
    "train_student",
]
