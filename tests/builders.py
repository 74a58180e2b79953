"""The tests' one set of tiny models and tiny splits.

Each model builder calls the library's own builder (`resnet`, `rednet`, `DeiT`), so a tiny model shares
every code path with the full-size one. Shapes are keyword arguments: a test whose numbers depend on a
shape (a token count, a layer list) passes that shape where it calls the builder.

`seed`: an int calls `keras.utils.set_random_seed(seed)` first, so the weights are a function of it; None
(the default) draws from Keras' global generator as the caller left it, as the library's builders do. Keep
None for a builder handed to `train_teacher` / `train_student` / `run_ablation` (they seed before they
build: a seed inside the builder would override theirs) and for teachers built one after another that
must differ.

Importing this module imports Keras but runs no TensorFlow op, so `tests/distribute/worker.py` may import it
in a worker process before it makes its strategy.
"""

import keras
import numpy as np

from libkd_keras.data import Split
from libkd_keras.models import DeiT, rednet, rednet_cifar, resnet, resnet_cifar


def _seed(seed):
    if seed is not None:
        keras.utils.set_random_seed(seed)


def tiny_resnet(num_classes=4, size=16, *, widths=(8, 16, 16, 16), zero_init_residual=False, seed=None, name="resnet"):
    """A basic-block ResNet, one block per stage (CIFAR stem at this size): `size`x`size` raw pixels in, logits out.

    `zero_init_residual=False` (the default here) keeps the residual branches on, so tests on an untrained
    model see every layer's numerics in the output.
    """
    _seed(seed)
    return resnet(
        blocks=(1, 1, 1, 1),
        widths=widths,
        num_classes=num_classes,
        input_shape=(size, size, 3),
        zero_init_residual=zero_init_residual,
        name=name,
    )


def tiny_rednet(num_classes=4, size=16, *, zero_init_residual=False, seed=None, name="rednet"):
    """An involution RedNet, one bottleneck per stage (7x7 involutions, strided in stages 2-4, 3x3 in the stem)."""
    _seed(seed)
    return rednet(
        blocks=(1, 1, 1, 1),
        base_channels=16,
        stem_channels=32,
        num_classes=num_classes,
        input_shape=(size, size, 3),
        zero_init_residual=zero_init_residual,
        name=name,
    )


def tiny_resnet_cifar(num_classes=4, size=16, *, seed=None):
    """He et al.'s CIFAR ResNet at depth 8 (one basic block per stage)."""
    _seed(seed)
    return resnet_cifar(8, num_classes=num_classes, input_shape=(size, size, 3))


def tiny_rednet_cifar(num_classes=4, size=16, *, kernel_size=3, zero_init_residual=False, seed=None):
    """The CIFAR RedNet at depth 8. 3x3 involutions by default: the code path of RedNet's 7x7 with 9 taps
    instead of 49, so its graphs trace and convert several times faster (`tests/export` converts 7x7 ones)."""
    _seed(seed)
    return rednet_cifar(
        8,
        num_classes=num_classes,
        input_shape=(size, size, 3),
        kernel_size=kernel_size,
        zero_init_residual=zero_init_residual,
    )


def tiny_deit(
    distillation=True,
    *,
    num_classes=4,
    size=16,
    patch_size=4,
    dim=32,
    depth=2,
    num_heads=2,
    drop_path_rate=0.0,
    seed=None,
    name=None,
):
    """A DeiT student, with (`distillation=True`) or without the distillation token.

    `tiny_deit` is itself a student builder (`build(distillation_token) -> DeiT`, as `train_student` and
    `run_ablation` take one); `functools.partial(tiny_deit, dim=16, ...)` is one of another shape.
    """
    _seed(seed)
    return DeiT(
        num_classes=num_classes,
        image_size=size,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        num_heads=num_heads,
        distillation=distillation,
        drop_path_rate=drop_path_rate,
        name=name,
    )


def tiny_cnn(
    num_classes=3,
    input_shape=(8, 8, 3),
    *,
    filters=4,
    strides=1,
    batch_norm=False,
    rescale=True,
    softmax=False,
    seed=None,
    name="tiny_cnn",
):
    """A functional CNN teacher: [Rescaling(1/255)], a 3x3 conv (+ BatchNormalization), ReLU, pooling, Dense.

    A teacher builder as `train_teacher` takes one (`builder(num_classes, input_shape)`; it names the files
    after the function, `tiny_cnn_seed<N>.keras`). `rescale=False` gives a model for [0, 1] pixels (a
    user's own teacher), `softmax=True` one that returns probabilities instead of logits.
    """
    _seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
    if batch_norm:
        x = keras.layers.Conv2D(filters, 3, strides=strides, use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    else:
        x = keras.layers.Conv2D(filters, 3, strides=strides, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name=name)


# The tiny member of each family that `tests/models` trains and runs on another backend.
TINY_BUILDERS = {"resnet": tiny_resnet, "rednet": tiny_rednet, "deit": tiny_deit}


def toy_split(n, split, seed):
    """`n` 8x8 uint8 images of 3 classes whose class is their brightness (ids 0..n-1)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = (rng.integers(0, 80, (n, 8, 8, 3)) + 80 * labels[:, None, None, None]).astype(np.uint8)
    return Split(images, labels, np.arange(n), ("a", "b", "c"), "toy", split)
