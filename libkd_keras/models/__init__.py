"""The model families of LIB-KD: CNN teacher, involution teacher, DeiT student, each at paper and CIFAR scale."""

from libkd_keras.models.deit import DEIT_VARIANTS, DeiT, deit_base, deit_micro, deit_small, deit_tiny
from libkd_keras.models.rednet import rednet, rednet26
from libkd_keras.models.rednet_cifar import rednet_cifar
from libkd_keras.models.resnet import resnet, resnet26
from libkd_keras.models.resnet_cifar import resnet_cifar

# Keys equal libkd_keras.choices.TEACHER_ARCHS (all families) and STUDENT_ARCHS (tests/models check it).
# Teachers: builder(num_classes=, input_shape=, ...); students: builder(num_classes=, image_size=, patch_size=, ...).
TEACHER_BUILDERS = {
    "resnet26": resnet26,
    "rednet26": rednet26,
    "resnet_cifar": resnet_cifar,
    "rednet_cifar": rednet_cifar,
}
STUDENT_BUILDERS = {"deit_micro": deit_micro, "deit_tiny": deit_tiny, "deit_small": deit_small, "deit_base": deit_base}

__all__ = [
    "DEIT_VARIANTS",
    "DeiT",
    "STUDENT_BUILDERS",
    "TEACHER_BUILDERS",
    "deit_base",
    "deit_micro",
    "deit_small",
    "deit_tiny",
    "rednet",
    "rednet26",
    "rednet_cifar",
    "resnet",
    "resnet26",
    "resnet_cifar",
]
