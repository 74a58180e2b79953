"""Normalisation layers: raw pixels inside the model (docs/DESIGN.md, "Pixels"), and the student's LayerNorm."""

import keras
from keras import ops

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@keras.saving.register_keras_serializable(package="libkd_keras")
class PixelNormalization(keras.layers.Layer):
    """Maps raw pixels in [0, 255] to `(x / 255 - mean) / std`, per channel.

    Constants only (no weights), so it adds no parameters and exports to LiteRT as one
    multiply-add.

    Example:
    >>> layer = PixelNormalization(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    >>> layer(keras.ops.full((1, 2, 2, 3), 127.5))[0, 0, 0]  # -> [0., 0., 0.]
    """

    def __init__(self, mean=CIFAR10_MEAN, std=CIFAR10_STD, **kwargs):
        super().__init__(**kwargs)
        mean = tuple(float(m) for m in mean)
        std = tuple(float(s) for s in std)
        if len(mean) != len(std):
            raise ValueError(
                f"`mean` and `std` must have one value per channel; got {len(mean)} means and {len(std)} stds."
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"`std` values must be positive; got {std}.")
        self.mean = mean
        self.std = std

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != len(self.mean):
            raise ValueError(
                f"PixelNormalization has {len(self.mean)} channel statistics but the input has "
                f"{input_shape[-1]} channels; pass `mean` and `std` with {input_shape[-1]} values."
            )

    def call(self, inputs):
        scale = [1.0 / (255.0 * s) for s in self.std]
        offset = [-m / s for m, s in zip(self.mean, self.std)]
        x = ops.cast(inputs, self.compute_dtype)
        return x * ops.cast(scale, x.dtype) + ops.cast(offset, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}


@keras.saving.register_keras_serializable(package="libkd_keras")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` computed as `(x - mean) * (gamma / sqrt(var + eps)) + beta`.

    A drop-in subclass: same arguments, weights and outputs as the Keras layer, and the same
    name, so `.keras` files saved with the Keras layer load into models built with this one. Keras writes the shift as
    `-mean * inv + beta`; LiteRT has no int8 kernel for that negation, so a full-integer
    export kept one float island (quantize, NEG, dequantize) per normalisation. This form maps to
    MEAN, SQUARED_DIFFERENCE, RSQRT, SUB, MUL and ADD, all with int8 kernels: int8 files stay
    integer end to end, as integer-only accelerators need. RMS scaling, a normalised axis other
    than the last, or `center=False` / `scale=False` fall back to the Keras computation.

    Example:
    >>> x = keras.random.normal((2, 5, 8))
    >>> ours = LayerNormalization(epsilon=1e-6)  # libkd_keras.layers.LayerNormalization
    >>> theirs = keras.layers.LayerNormalization(epsilon=1e-6)
    >>> bool(keras.ops.all(keras.ops.abs(ours(x) - theirs(x)) < 1e-5))
    True
    """

    def _last_axis_only(self, ndim):
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        return [a % ndim for a in axes] == [ndim - 1]

    def call(self, inputs):
        if self.rms_scaling or self.gamma is None or self.beta is None or not self._last_axis_only(len(inputs.shape)):
            return super().call(inputs)
        x = ops.cast(inputs, "float32")  # at least float32 for the statistics, as Keras does
        mean, variance = ops.moments(x, axes=[-1], keepdims=True)
        scale = ops.rsqrt(variance + self.epsilon) * ops.cast(self.gamma, x.dtype)
        outputs = (x - mean) * scale + ops.cast(self.beta, x.dtype)
        return ops.cast(outputs, self.compute_dtype)
