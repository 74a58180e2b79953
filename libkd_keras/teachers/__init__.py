"""Teacher training: the paper's SGD recipe, resumable `model.fit`, `.keras` + `.json` per teacher."""

from libkd_keras.teachers.recipe import L2SGD, TeacherRecipe
from libkd_keras.teachers.training import train_teacher

__all__ = ["L2SGD", "TeacherRecipe", "train_teacher"]
