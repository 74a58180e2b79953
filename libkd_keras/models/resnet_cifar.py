"""CIFAR ResNets (He et al., 2016, section 4.2): 6n+2 layers, 3 stages at widths 16/32/64."""

from libkd_keras.models._common import check_classifier_args
from libkd_keras.models.resnet import resnet

STAGE_WIDTHS = (16, 32, 64)


def cifar_blocks(depth, width, family):
    """Blocks per stage and stage widths of a 6n+2-layer CIFAR network; a clear error otherwise."""
    valid = "20, 32, 44, 56, 110 (any 6n+2 with n >= 1, e.g. 8, 14)"
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"`depth` of {family} must be 6n+2 (2 layers per block, 3 stages); valid: {valid}; got {depth!r}."
        )
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"`width` of {family} must be a positive integer (multiplies 16/32/64); got {width!r}.")
    n = (depth - 2) // 6
    return (n, n, n), tuple(w * width for w in STAGE_WIDTHS)


def resnet_cifar(
    depth=20,
    width=1,
    num_classes=10,
    input_shape=(32, 32, 3),
    include_top=True,
    mean=None,
    std=None,
    zero_init_residual=False,
    name=None,
):
    """He et al. 2016's CIFAR ResNet returning logits; inputs are raw pixels in [0, 255].

    3x3 conv stem to `16 * width` channels (stride 1, no pooling, at any input size), then 3 stages
    of `(depth - 2) / 6` basic blocks at widths 16/32/64 x `width`, the first block of stages 2 and 3
    with stride 2, then global average pooling and a float32 Dense head. Where a block changes the
    shape, its shortcut is a 1x1 conv + BatchNorm projection (the paper's option B; the paper's
    CIFAR table used option A, zero-padding, which has no parameters).

    Trainable parameters with a 10-class head (option B): depth 20: 272,474; depth 8: 78,042;
    depth 20 width 2: 1,084,586.

    Args:
        depth: int. 6n+2 layers (8, 14, 20, 32, 44, 56, 110, ...).
        width: int. Multiplier of the stage widths 16/32/64.
        num_classes: int. Classes of the head.
        input_shape: tuple. Static (height, width, channels), e.g. (32, 32, 3).
        include_top: bool. False returns the pooled features instead of logits.
        mean, std: sequences of 3 floats or None. Pixel normalisation (CIFAR-10's by default).
        zero_init_residual: bool. Start the last BatchNorm scale of every block at 0 (off, as resnet26).
        name: str or None. Model name; default `resnet_cifar{depth}` (plus `x{width}` when width > 1).

    Example:
    >>> model = resnet_cifar(20, num_classes=10, input_shape=(32, 32, 3))
    >>> model(keras.ops.zeros((1, 32, 32, 3))).shape
    (1, 10)
    """
    blocks, widths = cifar_blocks(depth, width, "resnet_cifar")
    input_shape, _ = check_classifier_args(num_classes, input_shape, "cifar")
    name = name or f"resnet_cifar{depth}" + (f"x{width}" if width > 1 else "")
    return resnet(
        blocks, widths, num_classes, input_shape, include_top, "cifar", mean, std, zero_init_residual, name=name
    )
