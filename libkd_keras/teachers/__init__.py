"""Teacher training: the paper's SGD recipe, resumable `model.fit`, `.keras` + `.json` per teacher."""

from libkd_keras.teachers.recipe import L2SGD, TeacherRecipe, teacher_loss, teacher_optimizer, teacher_schedule
from libkd_keras.teachers.training import train_teacher

__all__ = ["L2SGD", "TeacherRecipe", "teacher_loss", "teacher_optimizer", "teacher_schedule", "train_teacher"]
