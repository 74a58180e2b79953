"""Online teachers: in the student's step, or in `tf.data` with an XLA student step, in one run (ratios).

    python benchmarks/bench_online.py --recipe superior --steps 16 --rounds 3 --write benchmarks/results/online.md

Backs `distill/online.py`: on a CPU, `train_student` lets `tf.data` label each augmented batch
with the teachers and trains a stored-mode Distiller with XLA, instead of running the teachers
inside a step XLA would slow down (`xla.py`). The budget's models: a ResNet-20 and a RedNet-20
teacher (random weights: the same work as trained ones; each in the precision "auto" gives its
family here) and a DeiT-Micro student (patch 8, float32) with soft targets at T = 4. The data
are 8 cached batches of random images, augmented on the fly by a student recipe with `--recipe`
(as in training). Each timed window opens a fresh iterator and takes `steps` steps, so the
prefetch overlap and the augmentation's share of the CPU are timed, and no variant's prefetch
runs ahead while another is timed. The variants take turns for `rounds` rounds (median of the
rounds), so load hits them alike.
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

from libkd_keras.distill import RECIPES, Distiller, SoftDistillation, online, student_augmentation  # noqa: E402
from libkd_keras.models import STUDENT_BUILDERS, rednet_cifar, resnet_cifar  # noqa: E402
from libkd_keras.precision import resolve_precision  # noqa: E402

TEMPERATURE = 4.0


def teachers():
    """The two teachers, each in the precision "auto" trains its family in here (as the pipeline's are)."""
    keras.utils.set_random_seed(0)
    built = []
    for family, build in (("resnet", resnet_cifar), ("rednet", rednet_cifar)):
        keras.mixed_precision.set_dtype_policy(resolve_precision("auto", family))
        built.append(build(depth=20, num_classes=10))
    keras.mixed_precision.set_dtype_policy("float32")
    return built


def student(teacher_models, jit_compile, patch_size):
    keras.utils.set_random_seed(0)
    model = Distiller(
        STUDENT_BUILDERS["deit_micro"](10, 32, patch_size, distillation=True),
        SoftDistillation(TEMPERATURE),
        teachers=teacher_models,
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.05), jit_compile=jit_compile)
    model.make_train_function()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument(
        "--recipe", choices=["none", *RECIPES], default="none", help="the student recipe's augmentation in tf.data"
    )
    parser.add_argument("--steps", type=int, default=16, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", default="not recorded", help="machine state to print, e.g. 'idle'")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    n = args.batch_size * 8
    images = rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, n).astype("int64")
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(args.batch_size).cache().repeat()
    if args.recipe != "none":  # augmented on every step, as in training (MixUp/CutMix: label rows)
        batches = student_augmentation(batches, RECIPES[args.recipe](batch_size=args.batch_size), 10, seed=0)
    frozen = teachers()
    labelled = online.label_online(batches, frozen, 10, SoftDistillation(TEMPERATURE))
    variants = {
        "teachers in the step, no XLA (Keras' CPU default)": (student(frozen, False, args.patch_size), batches),
        "teachers in the step, XLA on the whole step": (student(frozen, True, args.patch_size), batches),
        "teachers in tf.data, XLA student step (`label_online`)": (student(None, True, args.patch_size), labelled),
        "no teachers: stored soft targets, XLA (the student's part alone)": (
            student(None, True, args.patch_size),
            batches.map(lambda x, y: (x, {"label": y, "teacher": tf.fill([tf.shape(x)[0], 10], 0.1)})),
        ),
    }
    first = {}
    for name, (model, data) in variants.items():
        start = time.perf_counter()
        iterator = iter(data)
        tf.nest.map_structure(lambda t: t.numpy(), (model.train_function(iterator), model.train_function(iterator)))
        first[name] = time.perf_counter() - start  # tracing, compilation
        del iterator
    seconds = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (model, data) in variants.items():
            # A fresh iterator inside the timed window: no variant's prefetch runs ahead while another is timed.
            start = time.perf_counter()
            iterator = iter(data)
            for _ in range(args.steps):
                out = model.train_function(iterator)
            tf.nest.map_structure(lambda t: t.numpy(), out)
            seconds[name].append((time.perf_counter() - start) / args.steps)
            del iterator
    speed = {name: args.batch_size / statistics.median(s) for name, s in seconds.items()}
    today = speed[next(iter(speed))]
    lines = [
        f"## Online teachers: in the step or in the input pipeline ({datetime.date.today()})",
        "",
        f"Command: `python benchmarks/bench_online.py --batch-size {args.batch_size} --patch-size "
        f"{args.patch_size} --recipe {args.recipe} --steps {args.steps} --rounds {args.rounds}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, {args.load}; TensorFlow "
        f"{tf.__version__}, Keras {keras.__version__}. ResNet-20 ({frozen[0].dtype_policy.name}) + RedNet-20 "
        f"({frozen[1].dtype_policy.name}) teachers, random weights; "
        f"DeiT-Micro student (patch {args.patch_size}), soft targets at T = {TEMPERATURE:g}; augmentation: "
        f"{args.recipe if args.recipe != 'none' else 'none'}; median of "
        f"{args.rounds} interleaved rounds of {args.steps} steps; run time {time.perf_counter() - started:.0f} s.",
        "",
        "| online student step | images/s | vs. teachers in the step, no XLA | first two steps (s) |",
        "|---|---|---|---|",
        *[f"| {name} | {speed[name]:.0f} | {speed[name] / today:.2f}x | {first[name]:.1f} |" for name in variants],
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
