"""Speed of Involution2D and of RedNet-26 vs ResNet-26 training on this machine (one run, ratios).

    python benchmarks/bench_models.py --batch-size 32 --steps 3 --jit-compile false

`--jit-compile` applies to every measured function and both models' `compile()`; "auto" is
what `model.compile()` picks (no XLA on a CPU-only machine).

Prints a Markdown section; `--write benchmarks/results/models.md` saves it. Goal (issue 2): a
RedNet-26 training step costs at most 1.5x a ResNet-26 step.
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
    speed = dict(rows)
    ratio = speed["resnet26 training step"] / speed["rednet26 training step"]
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
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
