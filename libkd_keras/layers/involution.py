"""Involution (Li et al., CVPR 2021; LIB-KD eq. 8-9), with builtin-only ops for LiteRT."""

import keras
from keras import ops

from libkd_keras.layers import involution_xla


def _positive_int(name, value, odd=False):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or (odd and value % 2 == 0):
        kind = "a positive odd integer (1, 3, 5, 7, ...)" if odd else "a positive integer"
        raise ValueError(f"`{name}` must be {kind}; got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="libkd_keras")
class Involution2D(keras.layers.Layer):
    """Involution: a K x K kernel generated per pixel and shared by the channels of a group.

    For every output pixel, a kernel of `K*K*G` weights is generated from the input at that
    pixel (average-pooled by the stride when `strides > 1`): 1x1 conv to `C / reduction_ratio`
    channels without bias, BatchNorm, ReLU, 1x1 conv with bias to `K*K*G` channels. Each of the
    `G = C / group_channels` groups applies its K*K weights to the K*K neighbourhood of all of
    its `group_channels` channels. Output channels equal input channels.

    The neighbourhood is gathered with K*K unit-step slices of the padded input (no
    `extract_patches`), which keeps the layer backend-agnostic and every op a LiteRT builtin;
    the gradient is written by hand in the same style (see `_involve`). On the TensorFlow
    backend, inside Keras' `fit` / `evaluate` / `predict` steps and in eager calls, the same
    sums run XLA-fused instead (`involution_xla`: same numbers, several times faster); every
    other trace, LiteRT and SavedModel export included, gets the portable graph. Spatial input
    dimensions must be static.

    Example:
    >>> x = keras.random.normal((2, 32, 32, 64))
    >>> Involution2D(kernel_size=7, strides=2)(x).shape
    (2, 16, 16, 64)
    """

    def __init__(self, kernel_size=7, strides=1, group_channels=16, reduction_ratio=4, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _positive_int("kernel_size", kernel_size, odd=True)
        self.strides = _positive_int("strides", strides)
        self.group_channels = _positive_int("group_channels", group_channels)
        self.reduction_ratio = _positive_int("reduction_ratio", reduction_ratio)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Involution2D expects (batch, height, width, channels); got {input_shape}.")
        _, height, width, channels = input_shape
        if height is None or width is None:
            raise ValueError(
                "Involution2D needs static spatial input dimensions; got height/width "
                f"{height}/{width}. Give the model a fixed `input_shape`, e.g. (32, 32, 3)."
            )
        if channels is None or channels % self.group_channels:
            divisors = [d for d in range(1, (channels or 0) + 1) if channels and channels % d == 0]
            raise ValueError(
                f"`group_channels`={self.group_channels} must divide the input channels "
                f"({channels}); accepted values: {divisors or 'a static channel count first'}."
            )
        if channels < self.reduction_ratio:
            raise ValueError(
                f"`reduction_ratio`={self.reduction_ratio} exceeds the input channels ({channels}); "
                f"use a value between 1 and {channels}."
            )
        if self.strides > 1 and (height % self.strides or width % self.strides):
            raise ValueError(
                f"`strides`={self.strides} must divide the input height and width "
                f"({height}x{width}); use strides=1 or an input size divisible by {self.strides}."
            )
        self.groups = channels // self.group_channels
        self.out_height, self.out_width = height // self.strides, width // self.strides
        k2g = self.kernel_size * self.kernel_size * self.groups
        self.pool = (
            keras.layers.AveragePooling2D(self.strides, self.strides, dtype=self.dtype_policy)
            if self.strides > 1
            else None
        )
        self.reduce = keras.layers.Conv2D(
            channels // self.reduction_ratio, 1, use_bias=False, dtype=self.dtype_policy, name="reduce"
        )
        self.reduce_norm = keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, dtype=self.dtype_policy, name="reduce_norm"
        )
        self.span = keras.layers.Conv2D(k2g, 1, use_bias=True, dtype=self.dtype_policy, name="span")
        pooled = (None, self.out_height, self.out_width, channels)
        self.reduce.build(pooled)
        self.reduce_norm.build(pooled[:-1] + (channels // self.reduction_ratio,))
        self.span.build(pooled[:-1] + (channels // self.reduction_ratio,))

    def kernel(self, inputs, training=None):
        """The generated per-pixel kernels, shape (batch, out_h, out_w, groups, K*K)."""
        x = self.pool(inputs) if self.pool is not None else inputs
        x = ops.relu(self.reduce_norm(self.reduce(x), training=training))
        weights = self.span(x)
        k2 = self.kernel_size * self.kernel_size
        return ops.reshape(weights, (-1, self.out_height, self.out_width, self.groups, k2))

    def call(self, inputs, training=None):
        weights = self.kernel(inputs, training=training)
        return self._involve(inputs, weights)

    def _taps(self, padded, length_h, length_w, step):
        """The K*K shifted views `padded[:, i::step, j::step, :]` of length (length_h, length_w).

        With a stride, the rows and columns are first split by their phase (index mod step) by a
        reshape, so every view is a unit-step slice: strided slices are slow on CPU.
        """
        k = self.kernel_size
        if step == 1:
            for i in range(k):
                for j in range(k):
                    yield i * k + j, padded[:, i : i + length_h, j : j + length_w, :]
            return
        _, height, width, depth = padded.shape
        extra_h, extra_w = -height % step, -width % step
        padded = ops.pad(padded, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]])
        rows, cols = (height + extra_h) // step, (width + extra_w) // step
        phased = ops.reshape(padded, (-1, rows, step, cols, step * depth))
        for i in range(k):
            for j in range(k):
                (r, a), (c, b) = divmod(i, step), divmod(j, step)
                yield i * k + j, phased[:, r : r + length_h, a, c : c + length_w, b * depth : (b + 1) * depth]

    def _pad(self, x):
        pad = (self.kernel_size - 1) // 2
        return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])

    def _dilate(self, x):
        """(B, out_h, out_w, D) -> (B, H, W, D): the values on the stride grid, zeros between."""
        s = self.strides
        if s == 1:
            return x
        depth = x.shape[-1]
        x = ops.reshape(x, (-1, self.out_height, 1, self.out_width, 1, depth))
        x = ops.pad(x, [[0, 0], [0, 0], [0, s - 1], [0, 0], [0, s - 1], [0, 0]])
        return ops.reshape(x, (-1, self.out_height * s, self.out_width * s, depth))

    def _apply(self, source, weights, height, width, step):
        """sum over taps t of tap_t(source) * weights[t]; weights tap-major (K*K, B, height, width, G).

        Every tensor stays at most 5-D: LiteRT's StridedSlice kernel refuses 6-D inputs.
        """
        out = None
        for t, patch in self._taps(source, height, width, step):
            tap_weights = ops.expand_dims(weights[t], -1)
            term = ops.reshape(patch, (-1, height, width, self.groups, self.group_channels)) * tap_weights
            out = term if out is None else out + term
        return ops.reshape(out, (-1, height, width, self.groups * self.group_channels))

    def _involve(self, inputs, weights):
        """Applies the kernels `weights` (B, out_h, out_w, G, K*K) to the neighbourhoods of `inputs`.

        The kernels are made tap-major first, so that each tap reads one contiguous block instead
        of every K*K-th value. The gradient is written by hand: the automatic one pads each of the
        K*K slice gradients back to full size, several times slower on CPU with or without XLA.
        """
        ho, wo, g, gc = self.out_height, self.out_width, self.groups, self.group_channels
        k, k2 = self.kernel_size, self.kernel_size * self.kernel_size
        height, width = inputs.shape[1], inputs.shape[2]
        if involution_xla.fused_taps_enabled():
            weights = ops.reshape(weights, (-1, ho, wo, g, k2))
            return involution_xla.involve(inputs, weights, k, self.strides, gc)

        @ops.custom_gradient
        def involve(x, w):
            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                dy = ops.reshape(upstream, (-1, ho, wo, g, gc))
                # d/dw[t]: the group sums of tap_t(x) * dy.
                dw = ops.stack(
                    [
                        ops.sum(ops.reshape(patch, (-1, ho, wo, g, gc)) * dy, axis=-1)
                        for _, patch in self._taps(self._pad(x), ho, wo, self.strides)
                    ]
                )
                # d/dx: the transposed involution. On the input grid (dy and w spread out by the
                # stride, then padded), tap t = (i, j) of dy meets kernel K*K-1-t at that offset.
                dy_full = self._pad(self._dilate(upstream))
                w_full = self._pad(self._dilate(ops.reshape(w, (-1, ho, wo, g))))
                w_full = ops.reshape(w_full, (k2, -1, *w_full.shape[1:3], g))
                dx = None
                for t, dy_tap in self._taps(dy_full, height, width, 1):
                    i, j = divmod(t, k)
                    w_tap = ops.expand_dims(w_full[k2 - 1 - t, :, i : i + height, j : j + width], -1)
                    term = ops.reshape(dy_tap, (-1, height, width, g, gc)) * w_tap
                    dx = term if dx is None else dx + term
                return ops.reshape(dx, (-1, height, width, g * gc)), dw

            return self._apply(self._pad(x), w, ho, wo, self.strides), grad

        weights = ops.reshape(weights, (-1, ho, wo, g, k2))
        return involve(inputs, ops.transpose(weights, (4, 0, 1, 2, 3)))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h // self.strides, w // self.strides, c)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "group_channels": self.group_channels,
            "reduction_ratio": self.reduction_ratio,
        }
