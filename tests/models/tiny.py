"""Tiny members of each model family, sharing every code path with the full-size models.

The convolutional ones start with their residual branches switched on (`zero_init_residual=False`),
so that tests on untrained models see every layer's numerics in the output."""

from libkd_keras.models import DeiT, rednet, resnet


def tiny_resnet(num_classes=4, size=16):
    return resnet(
        blocks=(1, 1, 1, 1),
        widths=(8, 16, 16, 16),
        num_classes=num_classes,
        input_shape=(size, size, 3),
        zero_init_residual=False,
    )


def tiny_rednet(num_classes=4, size=16):
    return rednet(
        blocks=(1, 1, 1, 1),
        base_channels=16,
        stem_channels=32,
        num_classes=num_classes,
        input_shape=(size, size, 3),
        zero_init_residual=False,
    )


def tiny_deit(num_classes=4, size=16, distillation=True):
    return DeiT(
        num_classes=num_classes,
        image_size=size,
        patch_size=4,
        dim=32,
        depth=2,
        num_heads=2,
        distillation=distillation,
        drop_path_rate=0.1,
    )


TINY_BUILDERS = {"resnet": tiny_resnet, "rednet": tiny_rednet, "deit": tiny_deit}
