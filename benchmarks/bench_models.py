"""Speed of Involution2D (XLA-fused vs portable taps) and of RedNet-26 vs ResNet-26, in one run.

    python benchmarks/bench_models.py --batch-size 32 --steps 3 --repeats 3

Every row is timed once per repeat, the rows interleaved (so a machine load hits them alike);
the table gives the median images/s and the ratios are medians of the per-repeat ratios.
"fused" is what `fit` / `predict` use on the TensorFlow backend; "portable" is the keras.ops
path (forced with `fused_taps(False)`), what every call used before issue 17 and what LiteRT
export still traces. Inference is `model.predict` (the teacher-store precompute path) over
`--predict-batches` batches. `--floor` adds RedNet-26 with its taps replaced by a free
stand-in: the cost of the rest of the network, which no involution kernel can remove.

Prints a Markdown section; `--write benchmarks/results/involution-fused.md` saves it. Goals
(issue 17): RedNet-26 training step <= 2.0x ResNet-26; RedNet-26 inference >= 2x portable.
"""

import argparse
import datetime
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from libkd_keras.layers import Involution2D  # noqa: E402
from libkd_keras.layers.involution_xla import fused_taps  # noqa: E402
from libkd_keras.models import rednet26, resnet26  # noqa: E402


def seconds(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def free_taps(self, inputs, weights):
    """Stand-in for `Involution2D._involve`: one elementwise op instead of the K*K taps."""
    x = self.pool(inputs) if self.pool is not None else inputs
    return x + keras.ops.repeat(keras.ops.sum(weights, axis=-1), self.group_channels, axis=-1)


def publish(lines, path=None):
    """Prints a Markdown section and, given `path`, writes it there (the `--write` option)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text)


def in_mode(fused, fn):
    """`fn` run with the taps forced fused or portable (tracing happens inside, on the first call)."""

    def run():
        with fused_taps(fused):
            return fn()

    return run


def train_step_fn(model, x, y, jit_compile=False):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    model.make_train_function()
    data = iter(lambda: (x, y), None)
    return lambda: model.train_function(data)


def layer_rows(b, rng):
    feats = tf.constant(rng.normal(size=(b, 32, 32, 64)).astype("float32"))
    layer = Involution2D(kernel_size=7)
    layer.build(feats.shape)
    conv = keras.layers.Conv2D(64, 3, padding="same")
    conv.build(feats.shape)

    def grad_step(fn, weights):
        @tf.function
        def run(t):
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_sum(fn(t) ** 2)
            return tape.gradient(loss, [t, *weights])

        return lambda: run(feats)

    def forward(fn):
        f = tf.function(fn)
        return lambda: f(feats)

    rows = {}
    for fused, name in ((True, "fused"), (False, "portable")):
        rows[f"Involution2D(7) forward, 32x32x64, {name}"] = in_mode(fused, forward(lambda t: layer(t, training=False)))
        rows[f"Involution2D(7) forward+backward, 32x32x64, {name}"] = in_mode(
            fused, grad_step(lambda t: layer(t, training=True), layer.trainable_weights)
        )
    rows["Conv2D(3x3) forward, 32x32x64"] = forward(conv)
    rows["Conv2D(3x3) forward+backward, 32x32x64"] = grad_step(conv, conv.trainable_weights)
    return rows


def model_rows(b, rng, predict_batches, floor):
    x = rng.uniform(0, 255, (b, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, b)
    images = rng.uniform(0, 255, (b * predict_batches, 32, 32, 3)).astype("float32")
    rows = {}
    resnet = resnet26(num_classes=10)
    rows["resnet26 inference (predict)"] = lambda: resnet.predict(images, batch_size=b, verbose=0)
    rows["resnet26 training step"] = train_step_fn(resnet, x, y)
    for fused, name in ((True, "fused"), (False, "portable")):
        red = rednet26(num_classes=10)
        rows[f"rednet26 inference (predict), {name}"] = in_mode(
            fused, lambda m=red: m.predict(images, batch_size=b, verbose=0)
        )
        rows[f"rednet26 training step, {name}"] = in_mode(fused, train_step_fn(red, x, y))
    if floor:
        original = Involution2D._involve
        Involution2D._involve = free_taps
        try:
            step = train_step_fn(rednet26(num_classes=10), x, y)
            step()  # traced now, with the stand-in
        finally:
            Involution2D._involve = original
        rows["rednet26 training step, taps free (floor)"] = step
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed calls per row and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds over all rows")
    parser.add_argument("--predict-batches", type=int, default=4, help="batches per timed `predict` call")
    parser.add_argument("--floor", action="store_true", help="add the RedNet-26 row with free taps")
    parser.add_argument("--load", default="not recorded", help="machine state to print, e.g. 'shared, load 6'")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    args = parser.parse_args()
    b, rng = args.batch_size, np.random.default_rng(0)
    rows = {**layer_rows(b, rng), **model_rows(b, rng, args.predict_batches, args.floor)}
    images = {name: b * (args.predict_batches if "predict" in name else 1) for name in rows}
    for fn in rows.values():  # trace, compile, warm up
        fn(), fn()
    times = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            times[name].append(seconds(fn, args.steps))

    def ratio(slow, fast):  # median over repeats of time(slow) / time(fast), per image
        return statistics.median((s / images[slow]) / (f / images[fast]) for s, f in zip(times[slow], times[fast]))

    train = ratio("rednet26 training step, fused", "resnet26 training step")
    train_before = ratio("rednet26 training step, portable", "resnet26 training step")
    infer = ratio("rednet26 inference (predict), portable", "rednet26 inference (predict), fused")
    lines = [
        f"## Models: fused involution taps, RedNet-26 vs ResNet-26 (issue 17, {datetime.date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/bench_models.py --batch-size {b} --steps {args.steps} --repeats {args.repeats} "
        f"--predict-batches {args.predict_batches}{' --floor' if args.floor else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, {args.load}; TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}; float32; `jit_compile=False` on the models (only the taps are XLA).",
        "",
        "| what | images/s (median of repeats) |",
        "|---|---|",
        *[f"| {name} | {images[name] / statistics.median(t):.1f} |" for name, t in times.items()],
        "",
        f"RedNet-26 training step / ResNet-26 step: **{train:.2f}x** fused (goal <= 2.0x: "
        f"{'met' if train <= 2.0 else 'NOT met'}), {train_before:.2f}x portable (before).  ",
        f"RedNet-26 inference, fused vs portable (before): **{infer:.2f}x** as fast (goal >= 2x: "
        f"{'met' if infer >= 2.0 else 'NOT met'}).",
    ]
    if args.floor:
        lines[-1] += "  "
        lines.append(
            "With the taps free RedNet-26 costs "
            f"{ratio('rednet26 training step, taps free (floor)', 'resnet26 training step'):.2f}x "
            "ResNet-26: the rest of the network."
        )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
