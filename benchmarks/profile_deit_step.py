"""Where one DeiT training step spends its time, and what the candidate rewrites would save (issue 17).

    python benchmarks/profile_deit_step.py --student deit_tiny --batch-size 64 --rounds 5 \
        --write benchmarks/results/deit-profile.md

Times, forward + backward (`tf.GradientTape`, in a `tf.function`, no XLA unless `--jit-compile`), the
parts of one encoder block at the student's shapes: the qkv and output projections, the attention
core (QK^T, softmax, AV), the MLP (fc1, exact GELU, fc2), the two LayerNorms; then a whole block,
the AdamW update of all the student's weights, and the whole `Distiller` train step on stored
labels. Beside them the candidates at the same shapes: `keras.ops.dot_product_attention` for the
attention core, GELU's tanh approximation, and Keras' own LayerNormalization. Every part runs
`--rounds` interleaved rounds of `--steps` calls; the table gives medians and each part's share of
the whole step (blocks x depth).
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
from bench_models import publish  # noqa: E402
from bench_training import matmul_flops, matmul_peak  # noqa: E402
from keras import ops  # noqa: E402

from libkd_keras import models  # noqa: E402
from libkd_keras.distill import Distiller, HardDistillation  # noqa: E402
from libkd_keras.layers import LayerNormalization, TransformerBlock  # noqa: E402

IMAGE_SIZE, NUM_CLASSES = 32, 10


def grad_fn(layers, fn, inputs, jit_compile):
    """A tf.function computing d(sum fn(inputs))/d(inputs, weights of `layers`)."""
    weights = [w for layer in layers for w in layer.trainable_weights]

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = fn(*inputs)
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        return tape.gradient(loss, [*inputs, *weights])

    return step


# The rows of the table that are matmuls, and their key in `bench_training.matmul_flops`.
MATMUL_ROWS = {
    "qkv + output projections": "projections",
    "attention core (QK^T, softmax, AV)": "attention",
    "MLP: fc1, exact GELU, fc2": "mlp",
    "whole block": "block",
    "whole Distiller train step": "step",
}


def parts(student, batch, jit_compile):
    """`{name: (callable, times per step)}`: the block's parts and the candidates at the student's shapes."""
    d, heads, depth = student.dim, student.num_heads, student.depth
    tokens = (2 if student.distillation else 1) + (IMAGE_SIZE // student.patch_size) ** 2
    hidden, head_dim = int(d * student.mlp_ratio), d // heads
    rng = np.random.default_rng(0)

    def tensor(*shape):
        return tf.constant(rng.normal(size=shape).astype("float32"))

    x = tensor(batch, tokens, d)
    q, k, v = (tensor(batch, heads, tokens, head_dim) for _ in range(3))
    qkv, proj = keras.layers.Dense(3 * d), keras.layers.Dense(d)
    fc1, fc2 = keras.layers.Dense(hidden), keras.layers.Dense(d)
    ours, theirs = LayerNormalization(epsilon=1e-6), keras.layers.LayerNormalization(epsilon=1e-6)
    block = TransformerBlock(dim=d, num_heads=heads, mlp_ratio=student.mlp_ratio)
    for layer, shape in ((qkv, x.shape), (proj, x.shape), (fc1, x.shape), (ours, x.shape), (theirs, x.shape)):
        layer.build(shape)
    fc2.build((batch, tokens, hidden))
    block.build(x.shape)

    def core(q, k, v):
        attn = ops.softmax(ops.matmul(q * head_dim**-0.5, ops.transpose(k, (0, 1, 3, 2))), axis=-1)
        return ops.matmul(attn, v)

    def fused_core(q, k, v):  # (B, N, heads, head_dim) layout, as keras.ops.dot_product_attention takes
        t = (0, 2, 1, 3)
        q, k, v = (ops.transpose(a, t) for a in (q, k, v))
        return ops.transpose(ops.dot_product_attention(q, k, v), t)

    table = {
        "qkv + output projections": ([qkv, proj], lambda x: proj(qkv(x)[:, :, :d])),
        "attention core (QK^T, softmax, AV)": ([], core),
        "MLP: fc1, exact GELU, fc2": ([fc1, fc2], lambda x: fc2(ops.gelu(fc1(x), approximate=False))),
        "2 LayerNorms (ours)": ([ours], lambda x: ours(ours(x))),
        "whole block": ([block], lambda x: block(x, training=True)),
        "candidate: dot_product_attention core": ([], fused_core),
        "candidate: MLP with tanh GELU": ([fc1, fc2], lambda x: fc2(ops.gelu(fc1(x), approximate=True))),
        "candidate: 2 Keras LayerNorms": ([theirs], lambda x: theirs(theirs(x))),
    }
    out = {}
    for name, (layers, fn) in table.items():
        inputs = [q, k, v] if "core" in name else [x]
        out[name] = (grad_fn(layers, fn, inputs, jit_compile), depth)
    return out


def whole_step(student_name, patch_size, batch, jit_compile):
    """The Distiller's train step on stored labels, and the AdamW update alone, as callables."""
    keras.utils.set_random_seed(0)
    student = models.STUDENT_BUILDERS[student_name](NUM_CLASSES, IMAGE_SIZE, patch_size, distillation=True)
    model = Distiller(student, HardDistillation())
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.05), jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    targets = {
        "label": rng.integers(0, NUM_CLASSES, batch).astype("int64"),
        "teacher": np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, batch)],
    }
    data = iter(tf.data.Dataset.from_tensors((images, targets)).repeat().prefetch(2))
    model.make_train_function()
    weights = student.trainable_weights
    grads = [tf.ones_like(w) * 1e-3 for w in weights]
    optimizer = model.optimizer

    @tf.function(jit_compile=jit_compile)
    def update():
        optimizer.apply(grads, weights)

    return student, (lambda: model.train_function(data)), update


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="deit_tiny", choices=sorted(models.STUDENT_BUILDERS))
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed calls per part and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jit-compile", action="store_true", help="XLA for every part and the whole step")
    parser.add_argument("--load", default="not recorded", help="machine state to print, e.g. 'idle'")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    student, train_step, update = whole_step(args.student, args.patch_size, args.batch_size, args.jit_compile)
    table = parts(student, args.batch_size, args.jit_compile)
    table["AdamW update, all weights"] = (update, 1)
    table["whole Distiller train step"] = (train_step, 1)
    for fn, _ in table.values():
        fn(), fn()  # tracing and the first allocations
    seconds = {name: [] for name in table}
    names = list(table)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = table[name][0]
            start = time.perf_counter()
            for _ in range(args.steps):
                out = fn()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            seconds[name].append((time.perf_counter() - start) / args.steps)
    ms = {name: 1e3 * statistics.median(s) for name, s in seconds.items()}
    total = ms["whole Distiller train step"]
    peak = matmul_peak(tf.float32)
    counted = matmul_flops(student, args.batch_size)
    flops = {row: counted[key] for row, key in MATMUL_ROWS.items()}

    def rate(name):
        gflops = flops[name] / ms[name] / 1e6 if name in flops else None
        return "" if gflops is None else f"{gflops:.0f} ({gflops / peak:.0%})"

    lines = [
        f"## Where a DeiT training step goes: {args.student}, patch {args.patch_size}, batch {args.batch_size} "
        f"(issue 17, {datetime.date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/profile_deit_step.py --student {args.student} --patch-size {args.patch_size} "
        f"--batch-size {args.batch_size} --steps {args.steps} --rounds {args.rounds}"
        f"{' --jit-compile' if args.jit_compile else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, {args.load}; float32; "
        f"{datetime.date.today().isoformat()}; TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"median of {args.rounds} interleaved rounds; run time {time.perf_counter() - started:.0f} s. "
        f"Student: dim {student.dim}, depth {student.depth}, {student.num_heads} heads, "
        f"{(IMAGE_SIZE // args.patch_size) ** 2 + 2} tokens; whole step {1e3 * args.batch_size / total:.0f} images/s. "
        f"float32 matmul peak in the same run (2048 x 2048): {peak:.0f} GFLOP/s.",
        "",
        "| part (forward + backward) | ms per call | calls per step | share of the whole step | "
        "matmul GFLOP/s (share of peak) |",
        "|---|---|---|---|---|",
        *[f"| {n} | {ms[n]:.2f} | {table[n][1]} | {ms[n] * table[n][1] / total:.0%} | {rate(n)} |" for n in names],
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
