"""CKA for a run report: one pass per model (`minibatch_cka_matrices`) vs one pass per pair.

`analyze_run` compares every student with every teacher and each model with itself. Computing
each pair separately (`minibatch_cka_matrix`) runs both models over the images for every pair;
`minibatch_cka_matrices` runs each model once and shares its per-minibatch grams. This script
times both on the same models and images, in one run, and checks they give the same matrices.

Usage:
    python benchmarks/bench_cka.py [--images 256] [--students 2] [--teachers 2] [--out FILE.md]
"""

import argparse
import datetime
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from libkd_keras.analysis.cka import minibatch_cka_matrices, minibatch_cka_matrix  # noqa: E402
from libkd_keras.models import DeiT, resnet  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--teachers", type=int, default=2)
    parser.add_argument("--out", default=None, help="append the Markdown section to this file")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, size=(args.images, 32, 32, 3)).astype(np.uint8)
    students = {
        f"student{i}": DeiT(
            num_classes=10,
            image_size=32,
            patch_size=4,
            dim=64,
            depth=4,
            num_heads=2,
            distillation=True,
            drop_path_rate=0.0,
        )
        for i in range(args.students)
    }
    teachers = {
        f"teacher{i}": resnet(blocks=(1, 1, 1, 1), widths=(16, 32, 32, 32), name=f"teacher{i}")
        for i in range(args.teachers)
    }
    models = {**students, **teachers}
    pairs = [(m, m) for m in models] + [(s, t) for s in students for t in teachers]
    for model in models.values():  # warm-up: build and trace every model once
        model(images[:4].astype("float32"))

    def per_pair():
        out = {}
        for a, b in pairs:
            matrix, _, _ = minibatch_cka_matrix(
                models[a], images, None if a == b else models[b], batch_size=args.batch_size
            )
            out[(a, b)] = matrix
        return out

    def shared():
        return minibatch_cka_matrices(models, images, pairs, batch_size=args.batch_size)[0]

    rounds = []
    for _ in range(2):  # alternate, keep the best of each (the machine is shared)
        rounds.append((timed(per_pair), timed(shared)))
    (pair_result, pair_wall, pair_cpu) = min((r[0] for r in rounds), key=lambda r: r[1])
    (shared_result, shared_wall, shared_cpu) = min((r[1] for r in rounds), key=lambda r: r[1])
    worst = max(float(np.nanmax(np.abs(pair_result[p] - shared_result[p]))) for p in pairs)

    passes_pair = sum(1 if a == b else 2 for a, b in pairs)
    lines = [
        "## CKA for the run report (issue 7)",
        "",
        f"Command: `python benchmarks/bench_cka.py --images {args.images} --students {args.students} "
        f"--teachers {args.teachers}`. Machine: 2-core CPU, no GPU, shared with other engineers' jobs "
        f"(absolute times are noisy; both ways are timed alternately in one run, best of 2). "
        f"Date: {datetime.date(2026, 11, 21)}. Python {platform.python_version()}, Keras {keras.__version__}.",
        "",
        f"{args.students} DeiT students (dim 64, depth 4, 32x32) and {args.teachers} small ResNets, "
        f"{args.images} random images, minibatches of {args.batch_size}: {len(pairs)} CKA matrices "
        "(each model with itself, each student with each teacher).",
        "",
        "| way | model passes over the images | wall s | CPU s |",
        "|---|---|---|---|",
        f"| one `minibatch_cka_matrix` per pair | {passes_pair} | {pair_wall:.1f} | {pair_cpu:.1f} |",
        f"| `minibatch_cka_matrices` (one pass per model) | {len(models)} | {shared_wall:.1f} | {shared_cpu:.1f} |",
        f"| **speed-up** | | **{pair_wall / shared_wall:.2f}x** | **{pair_cpu / shared_cpu:.2f}x** |",
        "",
        f"Largest difference between the two ways' matrices: {worst:.1e} (the same estimator).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
