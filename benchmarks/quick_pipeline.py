"""Wall time of `libkd pipeline --preset quick`, step by step (the README's main job; goal: < 15 min on 2 cores).

Runs the quick preset once into a fresh run folder and prints a Markdown table of every step's
time, read back from the run's step markers (`steps/*.json`), with the total wall time.

    python benchmarks/quick_pipeline.py --dataset /path/to/cifar10-jpeg   # offline: class folders or tarball
    python benchmarks/quick_pipeline.py                                  # CIFAR-10 through tfds
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="data source passed to libkd (default: the preset's cifar10)")
    parser.add_argument("--out", default=None, help="run folder (default: a new temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="libkd-quick-")) / "run"
    command = [sys.executable, "-m", "libkd_keras", "pipeline", "--preset", "quick", "--out", str(out)]
    if args.dataset:
        command += ["--dataset", args.dataset]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"libkd failed with exit code {done.returncode}: {' '.join(command)}")
    steps = sorted((json.loads(p.read_text()) for p in (out / "steps").glob("*.json")), key=lambda s: s["finished_at"])
    print(
        f"`{' '.join(command[1:])}` ({os.cpu_count()} CPUs visible, load average at the end {os.getloadavg()[0]:.1f})\n"
    )
    print("| step | seconds |\n|---|---|")
    for step in steps:
        print(f"| {step['step']} | {step['seconds']:.1f} |")
    print(f"| **total wall time (with start-up, data loading, report)** | **{wall:.1f}** |")


if __name__ == "__main__":
    main()
