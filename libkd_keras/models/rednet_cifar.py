"""CIFAR RedNets: the CIFAR ResNet topology (6n+2 layers, widths 16/32/64) with 7x7 involutions."""

import keras

from libkd_keras.layers import Involution2D
from libkd_keras.models._common import check_classifier_args, classifier_head, conv_bn, model_input
from libkd_keras.models.resnet_cifar import cifar_blocks


def involution_basic_block(x, filters, strides, kernel_size, group_channels, zero_init_residual, name):
    """3x3 conv (stride, channel change) + BN + ReLU, KxK involution + BN, add the shortcut, ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, relu=False, name=f"{name}_shortcut")
    x = conv_bn(x, filters, 3, strides, name=f"{name}_1")
    x = Involution2D(
        kernel_size=kernel_size, strides=1, group_channels=group_channels, reduction_ratio=4, name=f"{name}_involution"
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer="zeros" if zero_init_residual else "ones", name=f"{name}_2_bn"
    )(x)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def rednet_cifar(
    depth=20,
    width=1,
    num_classes=10,
    input_shape=(32, 32, 3),
    include_top=True,
    mean=None,
    std=None,
    kernel_size=7,
    group_channels=16,
    zero_init_residual=True,
    name=None,
):
    """The CIFAR ResNet (`resnet_cifar`) with RedNet's substitution; inputs are raw pixels in [0, 255].

    Same stem, stages, strides, shortcuts (1x1 conv projection where the shape changes) and head as
    `resnet_cifar`. In every basic block the second 3x3 conv, the one that keeps the channel count,
    is a 7x7 `Involution2D` (RedNet's kernel size, group_channels 16, reduction ratio 4). The first
    3x3 conv stays: an involution cannot change the channel count or mix channels, and in RedNet's
    bottleneck the involution also sits between channel-mixing convs. Other choices, from the
    reference RedNet (d-li14/involution, mmcls `rednet.py`):
    - `zero_init_residual=True` (RedNet's default): the last BatchNorm of each block starts at 0,
      which keeps the product of inputs and generated kernels from growing block after block;
    - the stem stays He et al.'s single 3x3 conv: RedNet's stem involution (a 3x3 one between two
      convs) exists to replace ImageNet's 7x7 stem, and at 16 channels it would be one group;
    - no max pool, no extra stage (RedNet's ImageNet layout has 4 stages of bottlenecks).
    With group_channels 16 the stages have 1/2/4 kernel groups (x `width`).

    Trainable parameters with a 10-class head: depth 20: 144,899; depth 8: 35,517;
    depth 20 width 2: 571,892.

    Args:
        depth: int. 6n+2 layers (8, 14, 20, 32, 44, 56, 110, ...).
        width: int. Multiplier of the stage widths 16/32/64.
        num_classes: int. Classes of the head.
        input_shape: tuple. Static (height, width, channels), e.g. (32, 32, 3).
        include_top: bool. False returns the pooled features instead of logits.
        mean, std: sequences of 3 floats or None. Pixel normalisation (CIFAR-10's by default).
        kernel_size: int. Odd involution kernel size; 7 is RedNet's. Training time grows with its square
            (K*K taps per involution), so a smaller one trades RedNet's large receptive field for speed.
        group_channels: int. Channels sharing one generated kernel; must divide 16 * width.
        zero_init_residual: bool. Start the last BatchNorm scale of every block at 0.
        name: str or None. Model name; default `rednet_cifar{depth}` (plus `x{width}` when width > 1).

    Example:
    >>> model = rednet_cifar(20, num_classes=10, input_shape=(32, 32, 3))
    >>> model(keras.ops.zeros((1, 32, 32, 3))).shape
    (1, 10)
    """
    blocks, widths = cifar_blocks(depth, width, "rednet_cifar")
    input_shape, _ = check_classifier_args(num_classes, input_shape, "cifar")
    name = name or f"rednet_cifar{depth}" + (f"x{width}" if width > 1 else "")
    inputs, x = model_input(input_shape, mean, std)
    x = conv_bn(x, widths[0], 3, 1, name="stem")
    for s, (n, filters) in enumerate(zip(blocks, widths), start=1):
        for b in range(1, n + 1):
            x = involution_basic_block(
                x,
                filters,
                2 if (b == 1 and s > 1) else 1,
                kernel_size,
                group_channels,
                zero_init_residual,
                name=f"stage{s}_block{b}",
            )
    outputs = classifier_head(x, num_classes, include_top)
    return keras.Model(inputs, outputs, name=name)
