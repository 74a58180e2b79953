"""XLA (`jit_compile`) on and off for each model family's training step, in one run (ratios).

    python benchmarks/bench_xla.py --batch-size 125 --steps 3 --rounds 4 --write benchmarks/results/xla.md
    python benchmarks/bench_xla.py --models students --rounds 6 --load idle   # the students' rows only

Backs `run.jit_compile = "auto"` (libkd_keras/xla.py): XLA for the students' steps, not the
teachers'. The CIFAR-scale teachers train with SGD on labels (`model.train_function`); the
students through `Distiller` on stored hard labels (bench_training.build). Every (model, XLA)
pair is built and compiled once (the first two steps, timed as "first steps"), then they take
turns for `rounds` rounds of `steps` timed steps (median of the rounds), so load hits them alike.
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
from bench_models import publish, train_step_fn  # noqa: E402
from bench_training import build as build_student  # noqa: E402

from libkd_keras.models import rednet_cifar, resnet_cifar  # noqa: E402

TEACHERS = {
    "ResNet-20 teacher (resnet_cifar)": lambda: resnet_cifar(depth=20, num_classes=10),
    "RedNet-20 teacher (rednet_cifar)": lambda: rednet_cifar(depth=20, num_classes=10),
}
STUDENTS = {"DeiT-Micro student, patch 8": 8, "DeiT-Micro student, patch 4": 4}


def teacher_step(build, jit_compile, batch_size):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, 32, 32, 3)).astype("float32")
    return train_step_fn(build(), x, rng.integers(0, 10, batch_size), jit_compile=jit_compile)


def student_step(patch_size, jit_compile, batch_size):
    model, data = build_student("deit_micro", "float32", jit_compile, batch_size, patch_size)
    model.make_train_function()
    batches = iter(data)
    return lambda: model.train_function(batches)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=125)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--load", default="not recorded", help="machine state to print, e.g. 'idle'")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    parser.add_argument("--models", choices=("all", "teachers", "students"), default="all", help="which rows to time")
    args = parser.parse_args()
    started = time.perf_counter()
    makers = {}
    if args.models in ("all", "teachers"):
        makers.update({name: (lambda jit, b=b: teacher_step(b, jit, args.batch_size)) for name, b in TEACHERS.items()})
    if args.models in ("all", "students"):
        makers.update({name: (lambda jit, p=p: student_step(p, jit, args.batch_size)) for name, p in STUDENTS.items()})
    steps, first = {}, {}
    for name, make in makers.items():
        for jit in (False, True):
            step = make(jit)
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), (step(), step()))  # tracing, XLA compilation
            first[name, jit] = time.perf_counter() - start
            steps[name, jit] = step
    seconds = {key: [] for key in steps}
    for _ in range(args.rounds):
        for key, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                out = step()
            tf.nest.map_structure(lambda t: t.numpy(), out)
            seconds[key].append((time.perf_counter() - start) / args.steps)
    speed = {key: args.batch_size / statistics.median(s) for key, s in seconds.items()}
    lines = [
        f"## XLA per model family: training steps with and without `jit_compile` ({datetime.date.today()})",
        "",
        f"Command: `python benchmarks/bench_xla.py --batch-size {args.batch_size} --steps {args.steps} "
        f"--rounds {args.rounds} --models {args.models}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, {args.load}; float32; TensorFlow "
        f"{tf.__version__}, Keras {keras.__version__}. Random weights and images; median of {args.rounds} "
        f"interleaved rounds; run time {time.perf_counter() - started:.0f} s.",
        "",
        "| training step | images/s without XLA | images/s with XLA | XLA speed-up | "
        "first two steps without / with XLA (s) |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {speed[name, False]:.0f} | {speed[name, True]:.0f} | "
            f"{speed[name, True] / speed[name, False]:.2f}x | {first[name, False]:.1f} / {first[name, True]:.1f} |"
            for name in makers
        ],
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
