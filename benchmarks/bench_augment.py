"""Images/s of the student's augmentation (`distill/augment.py`) against another version of that file, in one run.

    git show <commit>:libkd_keras/distill/augment.py > /tmp/augment_before.py
    python benchmarks/bench_augment.py --before /tmp/augment_before.py --rounds 4

Both versions augment the same cached batches of random 32x32 images (flip and pad-4 crop, the
baseline recipe, seeded), taking turns for `--rounds` rounds; prints the median images/s of each.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="another version of libkd_keras/distill/augment.py")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=125)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    versions = {
        "before": load(args.before, "augment_before"),
        "now": load(Path(__file__).parents[1] / "libkd_keras" / "distill" / "augment.py", "augment_now"),
    }
    images = np.random.default_rng(0).uniform(0, 255, (args.images, 32, 32, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(args.images))).batch(args.batch_size).cache()
    speeds = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, module in versions.items():
            batches = module.student_augmentation(data, 10, args.batch_size, seed=0)
            start = time.perf_counter()
            count = sum(int(x.shape[0]) for x, _ in batches)
            speeds[name].append(count / (time.perf_counter() - start))
    for name, values in speeds.items():
        print(f"{name}: {statistics.median(values):,.0f} images/s (rounds: {', '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
