import keras
import numpy as np
import pytest

from libkd_keras.layers import Involution2D
from libkd_keras.layers.involution_xla import fused_taps


def reference_involution(x, layer):
    """Direct loop implementation of LIB-KD eq. (8)-(9) from the layer's weights (inference BN)."""
    k, s, gc = layer.kernel_size, layer.strides, layer.group_channels
    b, h, w, c = x.shape
    ho, wo = h // s, w // s
    pooled = x.reshape(b, ho, s, wo, s, c).mean(axis=(2, 4)) if s > 1 else x
    reduce_w = keras.ops.convert_to_numpy(layer.reduce.kernel)[0, 0]
    bn = layer.reduce_norm
    gamma, beta, mean, var = (
        keras.ops.convert_to_numpy(v) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    )
    span_w = keras.ops.convert_to_numpy(layer.span.kernel)[0, 0]
    span_b = keras.ops.convert_to_numpy(layer.span.bias)
    hidden = np.maximum((pooled @ reduce_w - mean) / np.sqrt(var + bn.epsilon) * gamma + beta, 0.0)
    kernels = hidden @ span_w + span_b  # (b, ho, wo, G*K*K), laid out (G, K*K)
    pad = (k - 1) // 2
    out = np.zeros((b, ho, wo, c))
    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    g = ch // gc
                    total = 0.0
                    for u in range(k):
                        for v in range(k):
                            yi, xj = i * s + u - pad, j * s + v - pad
                            if 0 <= yi < h and 0 <= xj < w:
                                total += kernels[n, i, j, g * k * k + u * k + v] * x[n, yi, xj, ch]
                    out[n, i, j, ch] = total
    return out


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "portable"])
@pytest.mark.parametrize("strides,kernel_size", [(1, 3), (2, 3), (1, 5), (2, 7)])
def test_matches_loop_reference(rng, strides, kernel_size, fused):
    x = rng.normal(size=(2, 8, 8, 32)).astype("float32")
    layer = Involution2D(kernel_size=kernel_size, strides=strides, group_channels=8, reduction_ratio=4)
    layer.build(x.shape)
    for v in layer.weights:  # random weights, BN statistics included
        v.assign(rng.normal(scale=0.5, size=v.shape).astype("float32") + (1.5 if "variance" in v.path else 0.0))
    with fused_taps(fused):
        got = keras.ops.convert_to_numpy(layer(x, training=False))
    assert got.shape == (2, 8 // strides, 8 // strides, 32)
    np.testing.assert_allclose(got, reference_involution(x.astype("float64"), layer), rtol=1e-4, atol=1e-4)


def test_kernel_is_shared_within_a_group_only(rng):
    # Channels of one group see the same per-pixel kernel: a constant input per group gives equal outputs.
    x = np.repeat(rng.normal(size=(1, 6, 6, 2, 1)), 4, axis=-1).reshape(1, 6, 6, 8).astype("float32")
    layer = Involution2D(kernel_size=3, group_channels=4, reduction_ratio=2)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out[..., 0], out[..., 3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[..., 0], out[..., 4])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kernel_size=4), "kernel_size"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(kernel_size=-3), "kernel_size"),
        (dict(strides=0), "strides"),
        (dict(group_channels=0), "group_channels"),
        (dict(reduction_ratio=0), "reduction_ratio"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Involution2D(**kwargs)


def test_channels_not_divisible_by_group_channels():
    with pytest.raises(ValueError, match="group_channels.*accepted values"):
        keras.Sequential([keras.Input((8, 8, 24)), Involution2D(group_channels=16)])


def test_unknown_spatial_dimensions_rejected():
    with pytest.raises(ValueError, match="static spatial"):
        keras.Sequential([keras.Input((None, None, 32)), Involution2D(kernel_size=3)])


def slice_involution(x, kernels, layer):
    """Plain forward from generated kernels (B, Ho, Wo, G, K*K), differentiated automatically."""
    k, s, gc = layer.kernel_size, layer.strides, layer.group_channels
    pad = (k - 1) // 2
    ho, wo, c = x.shape[1] // s, x.shape[2] // s, x.shape[3]
    xp = keras.ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    out = 0.0
    for i in range(k):
        for j in range(k):
            patch = xp[:, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s, :]
            patch = keras.ops.reshape(patch, (-1, ho, wo, c // gc, gc))
            out = out + patch * kernels[..., i * k + j : i * k + j + 1]
    return keras.ops.reshape(out, (-1, ho, wo, c))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "portable"])
@pytest.mark.parametrize("strides", [1, 2])
def test_hand_written_gradient_matches_automatic_gradient(rng, strides, fused):
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(2, 8, 8, 16)).astype("float32"))
    layer = Involution2D(kernel_size=3, strides=strides, group_channels=8, reduction_ratio=4)
    layer.build(x.shape)
    upstream = tf.constant(rng.normal(size=(2, 8 // strides, 8 // strides, 16)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape, fused_taps(fused):
        tape.watch(x)
        got = tf.reduce_sum(layer(x, training=False) * upstream)
        expected = tf.reduce_sum(slice_involution(x, layer.kernel(x, training=False), layer) * upstream)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(
        tape.gradient(got, [x] + layer.trainable_weights), tape.gradient(expected, [x] + layer.trainable_weights)
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "strides,kernel_size,size",
    [(1, 7, (12, 12)), (2, 7, (12, 12)), (2, 3, (10, 10)), (1, 1, (6, 6))]
    + [(2, 5, (8, 12)), (2, 1, (6, 8)), (4, 3, (8, 8))],  # non-square, K < stride, stride 4
)
def test_fused_and_portable_taps_give_the_same_values_and_gradients(rng, strides, kernel_size, size):
    """The XLA-fused taps (fit/predict on TensorFlow) and the portable keras.ops taps (export, other
    backends): same output, same input gradient, same gradient for every weight of the layer."""
    import tensorflow as tf

    (height, width), s = size, strides
    x = tf.constant(rng.normal(size=(3, height, width, 32)).astype("float32"))
    layer = Involution2D(kernel_size=kernel_size, strides=s, group_channels=8, reduction_ratio=4)
    layer.build(x.shape)
    upstream = tf.constant(rng.normal(size=(3, height // s, width // s, 32)).astype("float32"))
    results = []
    for fused in (True, False):
        with tf.GradientTape() as tape, fused_taps(fused):
            tape.watch(x)
            y = layer(x, training=True)
        grads = tape.gradient(y, [x, *layer.trainable_weights], output_gradients=upstream)
        results.append([y, *grads])
    assert len(results[0]) == 2 + len(layer.trainable_weights) == 7  # y, x, reduce, BN gamma/beta, span kernel/bias
    for fused_value, portable_value in zip(*results):
        fused_value, portable_value = fused_value.numpy(), portable_value.numpy()
        assert np.abs(portable_value).max() > 0
        np.testing.assert_allclose(fused_value, portable_value, rtol=1e-4, atol=1e-5 * np.abs(portable_value).max())
