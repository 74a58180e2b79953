"""float32 vs mixed_bfloat16 training steps of the three model families, in one run (ratios).

    python benchmarks/bench_precision.py --batch-size 64 --steps 3 --rounds 3 --write benchmarks/results/precision.md
    python benchmarks/bench_precision.py --models cifar --batch-size 125   # a section of results/precision.md

Backs `run.precision = "auto"` (libkd_keras/precision.py, `BF16_PAYS_ON`): per model family, bf16
on the hardware where it measured at least as fast as float32.
Every (model, precision) pair is built and compiled once, then they take turns for `rounds`
rounds of `steps` timed steps each (median of the rounds), so the machine's load hits them alike.
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
from bench_models import publish, train_step_fn  # noqa: E402

from libkd_keras.models import deit_micro, deit_tiny, rednet26, rednet_cifar, resnet26, resnet_cifar  # noqa: E402
from libkd_keras.precision import BF16_CPU_FLAGS, cpu_flags, resolve_precision  # noqa: E402

MODELS = {  # name: (model family for "auto", builder)
    "paper": {
        "ResNet-26": ("resnet", lambda: resnet26(num_classes=10)),
        "RedNet-26": ("rednet", lambda: rednet26(num_classes=10)),
        "DeiT-Tiny (patch 4, no distillation token)": ("deit", lambda: deit_tiny(num_classes=10, distillation=False)),
    },
    "cifar": {
        "ResNet-20 (resnet_cifar)": ("resnet", lambda: resnet_cifar(depth=20, num_classes=10)),
        "RedNet-20 (rednet_cifar)": ("rednet", lambda: rednet_cifar(depth=20, num_classes=10)),
        "DeiT-Micro (patch 8, no distillation token)": ("deit", lambda: deit_micro(patch_size=8, distillation=False)),
        "DeiT-Micro (patch 4, no distillation token)": ("deit", lambda: deit_micro(patch_size=4, distillation=False)),
    },
}
PRECISIONS = ("float32", "mixed_bfloat16")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="paper", choices=sorted(MODELS), help="which model family")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    builders = MODELS[args.models]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)

    steps = {}
    for name, (_, build) in builders.items():
        for precision in PRECISIONS:
            keras.mixed_precision.set_dtype_policy(precision)
            step = train_step_fn(build(), x, y)
            step(), step()  # warm-up: tracing and the first allocations
            steps[name, precision] = step
    keras.mixed_precision.set_dtype_policy("float32")
    seconds = {key: [] for key in steps}
    for _ in range(args.rounds):
        for key, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[key].append((time.perf_counter() - start) / args.steps)
    speed = {key: args.batch_size / statistics.median(s) for key, s in seconds.items()}

    flags = sorted(cpu_flags() & set(BF16_CPU_FLAGS)) or ["none"]
    lines = [
        f'## Training precision: float32 vs mixed_bfloat16, {args.models} models (`run.precision = "auto"`)',
        "",
        f"Command: `python benchmarks/bench_precision.py --models {args.models} --batch-size {args.batch_size} "
        f"--steps {args.steps} --rounds {args.rounds}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, bf16 CPU flags: {', '.join(flags)}; "
        f"{datetime.date.today().isoformat()}; Keras {keras.__version__}. "
        "Random weights and images, SGD training steps, no XLA; "
        f"median of {args.rounds} interleaved rounds; run time {time.perf_counter() - started:.0f} s.",
        "",
        '| model | float32 images/s | mixed_bfloat16 images/s | bf16 speed-up | "auto" picks here |',
        "|---|---|---|---|---|",
        *[
            f"| {name} | {speed[name, 'float32']:.1f} | {speed[name, 'mixed_bfloat16']:.1f} | "
            f"{speed[name, 'mixed_bfloat16'] / speed[name, 'float32']:.2f}x | {resolve_precision('auto', family)} |"
            for name, (family, _) in builders.items()
        ],
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
