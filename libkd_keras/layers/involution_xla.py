"""Involution taps fused by XLA (TensorFlow backend), and the rule deciding where they run.

`Involution2D` spends most of its time in its K*K tap sums: run op by op, each tap
materialises a full tensor. Compiled by XLA (`tf.function(jit_compile=True)`), the forward
becomes one loop over the output. The backward is written for XLA too: the input gradient as
a gather (each input pixel sums the products of the taps that read it, no scatter; with a
stride, one gather per stride phase), the kernel gradient as K*K group sums. The numbers equal
the portable keras.ops path to float tolerance.

Where the fused path runs (`fused_taps_enabled`): on the TensorFlow backend, in eager calls
and inside Keras' own `fit` / `evaluate` / `predict` step functions (Keras names them
`one_step_on_data*`), nowhere else. Every other trace (a user's `tf.function`,
`tf.saved_model.save`, `model.export`, hence LiteRT export) gets the portable keras.ops graph,
so an XLA-compiled function never reaches an exported file. Should a Keras release rename its
step functions, the layer silently takes the portable path (same numbers, slower);
`tests/layers/test_involution_fused.py` checks that `fit` and `predict` still fuse.
`fused_taps(True | False)` overrides the rule inside a `with` block (e.g. a custom training
loop, or to be explicit around an export).
"""

import contextlib
import functools
import threading

import keras

_OVERRIDE = threading.local()
KERAS_STEP_PREFIX = "one_step_on_data"  # Keras' train/test/predict step functions (TensorFlow trainer)


@contextlib.contextmanager
def fused_taps(enabled):
    """Within the block, Involution2D uses the XLA-fused taps if `enabled`, the portable ones if not.

    Args:
        enabled: bool or None. True: fused (TensorFlow backend only); False: portable; None: the
            default rule (see the module docstring).
    """
    if enabled not in (True, False, None):
        raise ValueError(f"`enabled` must be True, False or None (the default rule); got {enabled!r}.")
    previous = getattr(_OVERRIDE, "value", None)
    _OVERRIDE.value = enabled
    try:
        yield
    finally:
        _OVERRIDE.value = previous


def fused_taps_enabled():
    """Whether an Involution2D called here takes the XLA-fused taps (see the module docstring)."""
    if keras.backend.backend() != "tensorflow":
        return False
    override = getattr(_OVERRIDE, "value", None)
    if override is not None:
        return override
    import tensorflow as tf

    if tf.executing_eagerly():
        return True
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:  # the trace may be nested inside the step function
        if getattr(graph, "name", "").startswith(KERAS_STEP_PREFIX):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def _phase_taps(tensor, kernel_size, step, out_h, out_w):
    """The K*K views `tensor[:, i::step, j::step][:out_h, :out_w]` (i, j < K), tap-major, as unit-step slices."""
    import tensorflow as tf

    k = kernel_size
    if step == 1:
        return [tensor[:, i : i + out_h, j : j + out_w] for i in range(k) for j in range(k)]
    height, width = tensor.shape[1], tensor.shape[2]
    extra_h, extra_w = -height % step, -width % step
    tensor = tf.pad(tensor, [[0, 0], [0, extra_h], [0, extra_w]] + [[0, 0]] * (tensor.shape.rank - 3))
    rows, cols = (height + extra_h) // step, (width + extra_w) // step
    phased = tf.reshape(tensor, (-1, rows, step, cols, step, *tensor.shape[3:]))
    views = []
    for i in range(k):
        for j in range(k):
            (r, a), (c, b) = divmod(i, step), divmod(j, step)
            views.append(phased[:, r : r + out_h, a, c : c + out_w, b])
    return views


def _pad(tensor, pad):
    import tensorflow as tf

    return tf.pad(tensor, [[0, 0], [pad, pad], [pad, pad]] + [[0, 0]] * (tensor.shape.rank - 3))


@functools.lru_cache(maxsize=None)
def _compiled(kernel_size, strides, group_channels, input_shape, dtype):
    """(forward, backward): XLA-compiled tap sums for one layer configuration.

    One pair per configuration, input shape and dtype (the last two only key the cache), so each
    tf.function is traced once (XLA still compiles per batch size).
    """
    import tensorflow as tf

    k, s, gc = kernel_size, strides, group_channels
    pad = (k - 1) // 2

    def forward(x, w):  # x (B, H, W, C); w (B, Ho, Wo, G, K*K) -> (B, Ho, Wo, C)
        _, ho, wo, g, _ = w.shape
        xg = tf.reshape(x, (-1, *x.shape[1:3], g, gc))
        out = None
        for t, patch in enumerate(_phase_taps(_pad(xg, pad), k, s, ho, wo)):
            term = patch * w[..., t : t + 1]
            out = term if out is None else out + term
        return tf.reshape(out, (-1, ho, wo, g * gc))

    def input_gradient(w, dyg, height, width):
        """d/dx as a gather: input pixel (s*m + a, s*n + b) sums dy * w[t] over the taps t = (i, j)
        that read it, from output pixel (m + (a + pad - i) / s, n + (b + pad - j) / s); only taps
        with (a + pad - i) and (b + pad - j) divisible by s reach phase (a, b), so a stride-s
        layer does 1/s^2 of the dense work. The phases are interleaved back at the end."""
        _, ho, wo, _, _ = w.shape
        lo, hi = -((pad + 1 - k) // s), (s - 1 + pad) // s  # output-grid padding: -min, max offset

        def padded(t):
            return tf.pad(t, [[0, 0], [lo, hi], [lo, hi], [0, 0], [0, 0]])

        dy_p, w_p = padded(dyg), padded(w)
        offsets = [[(i, (a + pad - i) // s + lo) for i in range(k) if (a + pad - i) % s == 0] for a in range(s)]
        rows = []
        for a in range(s):
            phases = []
            for b in range(s):
                acc = tf.zeros_like(dyg)
                for i, r in offsets[a]:
                    for j, c in offsets[b]:
                        t = i * k + j
                        acc += dy_p[:, r : r + ho, c : c + wo] * w_p[:, r : r + ho, c : c + wo, :, t : t + 1]
                phases.append(acc)
            rows.append(tf.stack(phases, 3))  # (B, Ho, Wo, s, G, gc): column phase b
        return tf.reshape(tf.stack(rows, 2), (-1, height, width, dyg.shape[3] * gc))  # row phase a

    def backward(x, w, dy):
        _, ho, wo, g, _ = w.shape
        height, width = x.shape[1], x.shape[2]
        xg = tf.reshape(x, (-1, height, width, g, gc))
        dyg = tf.reshape(dy, (-1, ho, wo, g, gc))
        # d/dw[t]: the group sums of tap_t(x) * dy.
        dw = tf.stack([tf.reduce_sum(p * dyg, -1) for p in _phase_taps(_pad(xg, pad), k, s, ho, wo)], -1)
        return input_gradient(w, dyg, height, width), dw

    return tf.function(forward, jit_compile=True), tf.function(backward, jit_compile=True)


def involve(x, weights, kernel_size, strides, group_channels):
    """The involution of `x` (B, H, W, C) by `weights` (B, Ho, Wo, G, K*K), XLA-fused, with its gradient."""
    import tensorflow as tf

    forward, backward = _compiled(kernel_size, strides, group_channels, tuple(x.shape[1:]), x.dtype.name)

    @tf.custom_gradient
    def fused(x, w):
        return forward(x, w), lambda dy: backward(x, w, dy)

    return fused(x, weights)
