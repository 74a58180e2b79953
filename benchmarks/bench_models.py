"""Speed of Involution2D and of RedNet-26 vs ResNet-26 training on this machine (one run, ratios).

    python benchmarks/bench_models.py --batch-size 32 --steps 5 --jit-compile false

`--jit-compile` applies to every measured function and both models' `compile()`; "auto" is
what `model.compile()` picks (no XLA on a CPU-only machine).

Prints a Markdown section; `--write benchmarks/results/models.md` saves it. Goal (issue 2): a
RedNet-26 training step costs at most 1.5x a ResNet-26 step. Two more RedNet-26 rows replace
only the involution's K*K taps, by a free stand-in and by one fused 7x7 depthwise conv: what no
faster involution kernel could remove from the rest of the network.
"""

import argparse
import datetime
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from libkd_keras.layers import Involution2D  # noqa: E402
from libkd_keras.models import rednet26, resnet26  # noqa: E402


def images_per_second(fn, batch, steps, warmup=2):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return batch * steps / (time.perf_counter() - start)


FLOOR_ROW = "rednet26 training step, involution taps free (floor)"


def free_taps(self, inputs, weights):
    """Stand-in for `Involution2D._involve`: one elementwise op instead of the K*K taps."""
    x = self.pool(inputs) if self.pool is not None else inputs
    return x + keras.ops.repeat(keras.ops.sum(weights, axis=-1), self.group_channels, axis=-1)


FUSED_ROW = "rednet26 training step, taps as one 7x7 depthwise conv (fused-kernel proxy)"


def depthwise_taps(self, inputs, weights):
    """Stand-in for `Involution2D._involve`: a fixed 7x7 depthwise conv plus the kernel branch."""
    k, channels = self.kernel_size, inputs.shape[-1]
    kernel = keras.ops.full((k, k, channels, 1), 1.0 / (k * k))
    x = keras.ops.depthwise_conv(inputs, kernel, strides=self.strides, padding="same")
    return x + keras.ops.repeat(keras.ops.sum(weights, axis=-1), self.group_channels, axis=-1)


def publish(lines, path=None):
    """Prints a Markdown section and, given `path`, writes it there (the `--write` option)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text)


def train_step_fn(model, x, y, jit_compile):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    model.make_train_function()
    data = iter(lambda: (x, y), None)
    return lambda: model.train_function(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    args = parser.parse_args()
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    b = args.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (b, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, b)

    rows = []
    feats = keras.ops.convert_to_tensor(rng.normal(size=(b, 32, 32, 64)).astype("float32"))
    layer = Involution2D(kernel_size=7)
    layer.build(feats.shape)
    conv = keras.layers.Conv2D(64, 3, padding="same")
    conv.build(feats.shape)
    import tensorflow as tf

    inv_fwd = tf.function(lambda t: layer(t, training=False), jit_compile=jit is True)
    conv_fwd = tf.function(lambda t: conv(t), jit_compile=jit is True)
    rows.append(("Involution2D(7) forward, 32x32x64", images_per_second(lambda: inv_fwd(feats), b, args.steps)))
    rows.append(("Conv2D(3x3) forward, 32x32x64", images_per_second(lambda: conv_fwd(feats), b, args.steps)))

    # Training cost of the layer alone: its hand-written gradient vs TensorFlow's automatic
    # gradient of the same forward (the K*K slices), and a 3x3 conv for scale.
    def grad_fn(fn, weights):
        def run(t):
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_sum(fn(t) ** 2)
            return tape.gradient(loss, [t, *weights])
        return tf.function(run, jit_compile=jit is True)

    def involution_without_custom_gradient(t):
        """The previous implementation: per-tap kernel slices, TensorFlow's automatic gradient."""
        w = layer.kernel(t, training=True)
        k, out = layer.kernel_size, None
        padded = layer._pad(t)
        for i in range(k):
            for j in range(k):
                patch = keras.ops.reshape(padded[:, i : i + 32, j : j + 32, :], (-1, 32, 32, layer.groups, 16))
                term = patch * w[..., i * k + j : i * k + j + 1]
                out = term if out is None else out + term
        return keras.ops.reshape(out, (-1, 32, 32, 64))

    for name, fn, weights in (
        ("Involution2D(7) forward+backward, 32x32x64", lambda t: layer(t, training=True), layer.trainable_weights),
        ("  same, automatic gradient of the slices (before)", involution_without_custom_gradient, layer.trainable_weights),
        ("Conv2D(3x3) forward+backward, 32x32x64", lambda t: conv(t), conv.trainable_weights),
    ):
        step = grad_fn(fn, weights)
        rows.append((name, images_per_second(lambda: step(feats), b, args.steps)))
    for name, build in (("resnet26", resnet26), ("rednet26", rednet26)):
        model = build(num_classes=10)
        infer = tf.function(lambda t, m=model: m(t, training=False), jit_compile=jit is True)
        rows.append((f"{name} inference", images_per_second(lambda: infer(x), b, args.steps)))
        step = train_step_fn(model, x, y, jit)
        rows.append((f"{name} training step", images_per_second(step, b, args.steps)))
    # The floor: RedNet-26 with the K*K taps of every involution made nearly free (an elementwise
    # stand-in that keeps the kernel-generating branch and its gradient). What is left is what no
    # faster involution kernel can remove.
    # And a proxy for a fused involution kernel: the taps as one 7x7 depthwise convolution, the
    # cheapest fused op doing the same per-channel K*K multiply-adds (it reads no per-pixel kernels).
    original = Involution2D._involve
    for row, stand_in in ((FLOOR_ROW, free_taps), (FUSED_ROW, depthwise_taps)):
        Involution2D._involve = stand_in
        try:
            step = train_step_fn(rednet26(num_classes=10), x, y, jit)
            rows.append((row, images_per_second(step, b, args.steps)))
        finally:
            Involution2D._involve = original
    speed = dict(rows)
    ratio = speed["resnet26 training step"] / speed["rednet26 training step"]
    floor = speed["resnet26 training step"] / speed[FLOOR_ROW]
    taps = 1 / speed["rednet26 training step"] - 1 / speed[FLOOR_ROW]  # s per image in the taps
    budget = 1.5 / speed["resnet26 training step"] - 1 / speed[FLOOR_ROW]  # what 1.5x would leave them
    lines = [
        "## Models: Involution2D, RedNet-26 vs ResNet-26 (issue 2)",
        "",
        f"Command: `python benchmarks/bench_models.py --batch-size {b} --steps {args.steps} "
        f"--jit-compile {args.jit_compile}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU; "
        f"{datetime.date.today().isoformat()}; Keras {keras.__version__}",
        "",
        "| what | images/s |",
        "|---|---|",
        *[f"| {name} | {ips:.1f} |" for name, ips in rows],
        "",
        f"RedNet-26 training step cost / ResNet-26 step cost: **{ratio:.2f}x** (goal <= 1.5x: "
        f"{'met' if ratio <= 1.5 else 'NOT met'}).",
        "",
        f"With the involution taps free, RedNet-26 would cost {floor:.2f}x ResNet-26: the taps take "
        f"{1000 * taps:.1f} ms per image of the training step; the 1.5x goal leaves them "
        + (f"{1000 * budget:.1f} ms, {taps / budget:.1f}x less than now." if budget > 0 else "nothing.")
        + f" With the taps as one fused 7x7 depthwise convolution (no per-pixel kernels to read), RedNet-26 "
        f"costs {speed['resnet26 training step'] / speed[FUSED_ROW]:.2f}x ResNet-26.",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
