"""ResNet-26, the convolutional (CNN) teacher: basic blocks, stages [1, 2, 4, 1]."""

import keras

from libkd_keras.models._common import check_classifier_args, classifier_head, conv_bn, model_input


def basic_block(x, filters, strides, zero_init_residual, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, relu=False, name=f"{name}_shortcut")
    x = conv_bn(x, filters, 3, strides, name=f"{name}_1")
    x = conv_bn(x, filters, 3, 1, relu=False, zero_gamma=zero_init_residual, name=f"{name}_2")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def resnet(
    blocks=(1, 2, 4, 1),
    widths=(64, 128, 256, 512),
    num_classes=10,
    input_shape=(32, 32, 3),
    include_top=True,
    stem=None,
    mean=None,
    std=None,
    zero_init_residual=False,
    name="resnet",
):
    """A basic-block ResNet returning logits; inputs are raw pixels in [0, 255].

    `zero_init_residual=True` starts the last BatchNorm scale of every block at 0, so each block
    starts as the identity (mmcls' option). Off by default: it slows the short trainings a CPU
    affords. Measured on real CIFAR-10 (5,000 images, 3 epochs, mixed_bfloat16, seed 0): test
    top-1 33.2% with it, 40.2% without; an 8-epoch budget teacher reached 55.8% with it and
    69.3% in an earlier run without (benchmarks/RESULTS.md). RedNet keeps it on (it needs it).
    """
    input_shape, stem = check_classifier_args(num_classes, input_shape, stem)
    inputs, x = model_input(input_shape, mean, std)
    if stem == "cifar":
        x = conv_bn(x, widths[0], 3, 1, name="stem")
    else:
        x = conv_bn(x, widths[0], 7, 2, name="stem")
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for s, (n, width) in enumerate(zip(blocks, widths), start=1):
        for b in range(1, n + 1):
            x = basic_block(x, width, 2 if (b == 1 and s > 1) else 1, zero_init_residual, name=f"stage{s}_block{b}")
    outputs = classifier_head(x, num_classes, include_top)
    return keras.Model(inputs, outputs, name=name)


def resnet26(
    num_classes=10, input_shape=(32, 32, 3), include_top=True, stem=None, mean=None, std=None, zero_init_residual=False
):
    """ResNet-26 (LIB-KD Table 3): 8,740,682 trainable parameters with a 10-class head.

    `stem=None` picks the CIFAR stem (3x3 conv, stride 1, no pooling) for inputs up to 64x64
    and the ImageNet stem (7x7 conv stride 2, max pool) for larger ones.

    Example:
    >>> model = resnet26(num_classes=10, input_shape=(32, 32, 3))
    >>> model(keras.ops.zeros((1, 32, 32, 3))).shape
    (1, 10)
    """
    return resnet(
        (1, 2, 4, 1),
        (64, 128, 256, 512),
        num_classes,
        input_shape,
        include_top,
        stem,
        mean,
        std,
        zero_init_residual,
        name="resnet26",
    )
