"""The three model families of LIB-KD: CNN teacher, involution teacher, DeiT student."""

from libkd_keras.models.deit import DEIT_VARIANTS, DeiT, deit_base, deit_small, deit_tiny
from libkd_keras.models.rednet import rednet, rednet26
from libkd_keras.models.resnet import resnet, resnet26

TEACHER_BUILDERS = {"resnet26": resnet26, "rednet26": rednet26}
STUDENT_BUILDERS = {"deit_tiny": deit_tiny, "deit_small": deit_small, "deit_base": deit_base}

__all__ = [
    "DEIT_VARIANTS", "DeiT", "STUDENT_BUILDERS", "TEACHER_BUILDERS",
    "deit_base", "deit_small", "deit_tiny", "rednet", "rednet26", "resnet", "resnet26",
]
