"""RedNet-26, the involution (INN) teacher: bottlenecks with a 7x7 involution, stages [1, 2, 4, 1]."""

import keras

from libkd_keras.layers import Involution2D
from libkd_keras.models._common import check_classifier_args, classifier_head, conv_bn, model_input


def involution_bottleneck(x, mid, strides, expansion, zero_init_residual, name):
    out_channels = mid * expansion
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = conv_bn(x, out_channels, 1, strides, relu=False, name=f"{name}_shortcut")
    x = conv_bn(x, mid, 1, 1, name=f"{name}_1")
    x = Involution2D(kernel_size=7, strides=strides, group_channels=16, reduction_ratio=4, name=f"{name}_involution")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_2_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_2_relu")(x)
    x = conv_bn(x, out_channels, 1, 1, relu=False, zero_gamma=zero_init_residual, name=f"{name}_3")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def rednet(
    blocks=(1, 2, 4, 1),
    base_channels=64,
    stem_channels=64,
    expansion=4,
    strides=(1, 2, 2, 2),
    num_classes=10,
    input_shape=(32, 32, 3),
    include_top=True,
    stem=None,
    mean=None,
    std=None,
    zero_init_residual=True,
    name="rednet",
):
    """An involution ResNet (RedNet) returning logits; inputs are raw pixels in [0, 255].

    `zero_init_residual` starts the last BatchNorm scale of every bottleneck at 0 (as the
    reference RedNet does): early in training, when BatchNorm's moving statistics are still far
    from the batch ones, the product of the input with its generated kernel can otherwise grow
    block after block until inference logits overflow.
    """
    input_shape, stem = check_classifier_args(num_classes, input_shape, stem)
    inputs, x = model_input(input_shape, mean, std)
    x = conv_bn(x, stem_channels // 2, 3, 1 if stem == "cifar" else 2, name="stem_1")
    x = Involution2D(kernel_size=3, strides=1, group_channels=16, reduction_ratio=4, name="stem_involution")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem_2_bn")(x)
    x = keras.layers.ReLU(name="stem_2_relu")(x)
    x = conv_bn(x, stem_channels, 3, 1, name="stem_3")
    if stem == "imagenet":
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for s, (n, stride) in enumerate(zip(blocks, strides), start=1):
        mid = base_channels * 2 ** (s - 1)
        for b in range(1, n + 1):
            x = involution_bottleneck(
                x, mid, stride if b == 1 else 1, expansion, zero_init_residual, name=f"stage{s}_block{b}"
            )
    outputs = classifier_head(x, num_classes, include_top)
    return keras.Model(inputs, outputs, name=name)


def rednet26(
    num_classes=10, input_shape=(32, 32, 3), include_top=True, stem=None, mean=None, std=None, zero_init_residual=True
):
    """RedNet-26 (LIB-KD Table 2): 7,184,166 trainable parameters without the head.

    Stem: 3x3 conv to 32, 3x3 involution, BatchNorm, ReLU, 3x3 conv to 64. `stem=None` picks
    the CIFAR variant (no downsampling in the stem) for inputs up to 64x64 and the ImageNet
    variant (stride-2 conv and max pool, /4 overall) for larger inputs.

    Example:
    >>> model = rednet26(num_classes=10, input_shape=(32, 32, 3))
    >>> model(keras.ops.zeros((1, 32, 32, 3))).shape
    (1, 10)
    """
    return rednet(
        (1, 2, 4, 1),
        64,
        64,
        4,
        (1, 2, 2, 2),
        num_classes,
        input_shape,
        include_top,
        stem,
        mean,
        std,
        zero_init_residual,
        name="rednet26",
    )
