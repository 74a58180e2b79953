"""DeiT training throughput through `Distiller.fit`, against this machine's measured matmul peak.

    python benchmarks/bench_training.py --students deit_tiny deit_micro --batch-size 64 --steps 3 --rounds 3
    python benchmarks/bench_training.py --students deit_tiny --precisions float32 --batch-size 64 128 256

Every variant (student x precision x `jit_compile` x batch size) trains with stored teacher labels
(`Distiller(distillation="hard")`, batches `(image, {"label", "teacher"})`), the variants taking
turns for `--rounds` rounds in one process; images/s come from the median step time. The same
run measures the float32 and bfloat16 peak of `tf.matmul` (2048 x 2048, in a `tf.function`), and
each variant's share of the peak of its precision: FLOPs per training image are counted as
3x the forward (matmuls, attention and patch embedding; softmax, norms and the optimizer not).
`--intra-op`/`--inter-op` set `tf.config.threading` for the whole process (TensorFlow fixes them
at its first op), so thread counts are compared across runs, not interleaved.

Prints a Markdown section; `--write benchmarks/results/training.md` saves it.
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

from libkd_keras import models  # noqa: E402
from libkd_keras.distill import Distiller, HardDistillation  # noqa: E402

IMAGE_SIZE, NUM_CLASSES = 32, 10


def matmul_peak(dtype, n=2048, reps=5):
    """GFLOP/s of an n x n matmul in `dtype`, best of `reps`."""
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        f(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def matmul_flops(student, batch=1):
    """Training FLOPs (3x the forward) of `batch` images in the matmuls: per block part, a block, the step.

    Keys: "projections" (qkv and output), "attention" (QK^T and AV), "mlp", "block", and "step"
    (every block plus the patch embedding; softmax, norms and the optimizer are not counted).
    """
    d, patch = student.dim, student.patch_size
    patches = (IMAGE_SIZE // patch) ** 2
    tokens = (2 if student.distillation else 1) + patches
    hidden = int(d * student.mlp_ratio)
    parts = {
        "projections": 3 * batch * tokens * 2 * (3 * d * d + d * d),
        "attention": 3 * batch * 2 * 2 * tokens * tokens * d,
        "mlp": 3 * batch * tokens * 2 * 2 * d * hidden,
    }
    block = sum(parts.values())
    embed = 3 * batch * patches * 2 * patch * patch * 3 * d
    return {**parts, "block": block, "step": student.depth * block + embed}


def training_flops(student):
    """FLOPs of one training image: 3x the forward's matmuls, attention and patch embedding."""
    return matmul_flops(student)["step"]


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self.start)


def build(student_name, precision, jit_compile, batch_size, patch_size=4):
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        n = batch_size * 4
        images = rng.uniform(0, 255, (n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
        targets = {
            "label": rng.integers(0, NUM_CLASSES, n).astype("int64"),
            "teacher": np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, n)],
        }
        student = models.STUDENT_BUILDERS[student_name](NUM_CLASSES, IMAGE_SIZE, patch_size, distillation=True)
        model = Distiller(student, HardDistillation())
        model.compile(
            optimizer=keras.optimizers.AdamW(5e-4 * batch_size / 512, weight_decay=0.05), jit_compile=jit_compile
        )
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    data = tf.data.Dataset.from_tensor_slices((images, targets))
    return model, data.batch(batch_size, drop_remainder=True).cache().repeat().prefetch(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--students", nargs="+", default=["deit_tiny", "deit_micro"], choices=sorted(models.STUDENT_BUILDERS)
    )
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--jit-compile", nargs="+", default=["false", "true"], choices=["false", "true"])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64])
    parser.add_argument("--intra-op", type=int, default=0, help="tf.config.threading intra-op threads (0 = TF's)")
    parser.add_argument("--inter-op", type=int, default=0, help="tf.config.threading inter-op threads (0 = TF's)")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", default="not recorded", help="machine state to print, e.g. 'shared, load 6'")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    variants = [
        (s, p, j == "true", b)
        for s in args.students
        for p in args.precisions
        for j in args.jit_compile
        for b in args.batch_size
    ]
    runs = {}
    for v in variants:
        model, data = build(*v, args.patch_size)
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # traces (and compiles) the train step
        runs[v] = (model, data, StepTimer())
    peaks = {"float32": matmul_peak(tf.float32), "mixed_bfloat16": matmul_peak(tf.bfloat16)}
    for r in range(args.rounds):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            model, data, timer = runs[v]
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[timer])
    peaks = {
        k: max(p, {"float32": matmul_peak(tf.float32), "mixed_bfloat16": matmul_peak(tf.bfloat16)}[k])
        for k, p in peaks.items()
    }
    lines = [
        f"## Training throughput: DeiT students through Distiller.fit (issue 17, {datetime.date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/bench_training.py --students {' '.join(args.students)} --precisions "
        f"{' '.join(args.precisions)} --jit-compile {' '.join(args.jit_compile)} "
        f"--batch-size {' '.join(map(str, args.batch_size))} --patch-size {args.patch_size} --steps {args.steps} "
        f"--rounds {args.rounds} --intra-op {args.intra_op} --inter-op {args.inter_op}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, {args.load}; TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}. Matmul peak measured in the same run: float32 {peaks['float32']:.0f} GFLOP/s, "
        f"bfloat16 {peaks['mixed_bfloat16']:.0f} GFLOP/s.",
        "",
        f"Patch size {args.patch_size}; threads intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, "
        f"inter-op {tf.config.threading.get_inter_op_parallelism_threads()} (0 = TensorFlow's choice); median step "
        "time of the interleaved rounds; the last column is against the first variant.",
        "",
        "| student | precision | jit_compile | batch | images/s | GFLOP/s | share of its precision's peak "
        "| share of bf16 peak | vs first |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first = None
    for (student, precision, jit, batch), (model, _, timer) in runs.items():
        ips = batch / statistics.median(timer.durations)
        first = first or ips
        gflops = ips * training_flops(model.student) / 1e9
        lines.append(
            f"| {student} | {precision} | {jit} | {batch} | {ips:.1f} | {gflops:.0f} | "
            f"{gflops / peaks[precision]:.0%} | {gflops / peaks['mixed_bfloat16']:.0%} | {ips / first:.2f}x |"
        )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
