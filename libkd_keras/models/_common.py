"""Shared pieces of the convolutional teachers: input checks, stems, conv-BN-ReLU."""

import keras

from libkd_keras.layers import CIFAR10_MEAN, CIFAR10_STD, PixelNormalization

SMALL_IMAGE_MAX_SIDE = 64  # inputs up to this side get the CIFAR stem (no early downsampling)


def check_classifier_args(num_classes, input_shape, stem):
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}.")
    if len(input_shape) != 3 or any(d is None or d <= 0 for d in input_shape):
        raise ValueError(
            f"`input_shape` must be a static (height, width, channels), e.g. (32, 32, 3); got {input_shape!r}."
        )
    if stem is None:
        stem = "cifar" if max(input_shape[:2]) <= SMALL_IMAGE_MAX_SIDE else "imagenet"
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"`stem` must be 'cifar', 'imagenet' or None (chosen from the input size); got {stem!r}.")
    return tuple(input_shape), stem


def conv_bn(x, filters, kernel_size, strides=1, relu=True, zero_gamma=False, name=None):
    """Conv (no bias) + BatchNorm (+ ReLU). `zero_gamma` starts the BatchNorm scale at 0: the last
    BatchNorm of a residual branch, so that each block starts as the identity (mmcls'
    `zero_init_residual=True`; RedNet's default, an option of ResNet)."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer="zeros" if zero_gamma else "ones", name=f"{name}_bn"
    )(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def model_input(input_shape, mean, std):
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = PixelNormalization(mean=mean or CIFAR10_MEAN, std=std or CIFAR10_STD, name="normalize")(inputs)
    return inputs, x


def classifier_head(x, num_classes, include_top):
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if include_top:
        x = keras.layers.Dense(num_classes, dtype="float32", name="head")(x)
    return x
