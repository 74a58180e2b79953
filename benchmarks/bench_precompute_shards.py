"""Sharded precompute: 2 worker processes vs 1 process, and the merge (finalise) overhead.

A tiny-ish teacher (`resnet_cifar` depth 20, fixed seed, untrained: the cost does not depend on the
weights) labels N CIFAR-10 training images. Rows:
- 1 process: `write_store(...)` over the whole split;
- 2 processes: `write_share(..., worker_index=i, num_workers=2)` started together, the last one
  finalising (writing the manifest);
- merge: `finalize_store` alone on the 2-worker store (manifest deleted first), i.e. reading the
  shares, checking coverage and shard sizes, writing the manifest.
Wall times are process start to exit (TensorFlow import and data loading included) and, separately,
the precompute call alone. The 2-worker store is checked against the 1-process one (ids, labels, logits).

Run (about 2 minutes on 2 shared CPU cores; results go to benchmarks/results/precompute-shards.md by hand):
    python benchmarks/bench_precompute_shards.py --images 5000 --data /tmp/cifar
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    """One process: load the images, build the teacher, precompute (its share); print timings as JSON."""
    import keras

    from libkd_keras.data import load_split
    from libkd_keras.models import resnet_cifar
    from libkd_keras.store import write_share, write_store

    split = load_split(args.data, "train", limit=args.images)
    keras.utils.set_random_seed(0)
    teacher = resnet_cifar(depth=20, num_classes=split.num_classes)
    teachers, options = {"resnet20": teacher}, {"shard_size": args.shard_size, "batch_size": 256}
    start = time.perf_counter()
    if args.workers == 1:
        store = write_store(teachers, split, args.path, **options)
    else:
        store = write_share(teachers, split, args.path, args.index, args.workers, **options)
    print(
        json.dumps({"index": args.index, "precompute_s": time.perf_counter() - start, "finalised": store is not None})
    )


def spawn(args, path, index, workers):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--index",
        str(index),
        "--workers",
        str(workers),
        "--path",
        path,
        "--images",
        str(args.images),
        "--data",
        args.data,
        "--shard-size",
        str(args.shard_size),
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_processes(args, path, workers):
    """Start `workers` processes together; (wall seconds to the last exit, their JSON reports)."""
    start = time.perf_counter()
    processes = [spawn(args, path, index, workers) for index in range(workers)]
    reports = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"worker failed:\n{err[-3000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return time.perf_counter() - start, reports


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--data", default="/tmp/cifar", help="class-folder tree <root>/train/<class>/*.jpg")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import numpy as np

    from libkd_keras.store import TeacherStore, finalize_store

    with tempfile.TemporaryDirectory() as tmp:
        one, two = os.path.join(tmp, "one"), os.path.join(tmp, "two")
        load_before = os.getloadavg()
        wall_1, [report_1] = run_processes(args, one, 1)
        wall_2, reports_2 = run_processes(args, two, 2)
        load_after = os.getloadavg()
        single, sharded = TeacherStore.open(one), TeacherStore.open(two, verify=True)
        same = (
            np.array_equal(single.ids, sharded.ids)
            and np.array_equal(single.labels, sharded.labels)
            and np.allclose(single.logits(), sharded.logits(), atol=1e-2)
        )
        os.remove(os.path.join(two, "manifest.json"))
        start = time.perf_counter()
        finalize_store(two)
        merge = time.perf_counter() - start
    result = {
        "images": args.images,
        "shards": -(-args.images // args.shard_size),
        "one_process_wall_s": round(wall_1, 2),
        "one_process_precompute_s": round(report_1["precompute_s"], 2),
        "two_process_wall_s": round(wall_2, 2),
        "two_process_precompute_s": [round(r["precompute_s"], 2) for r in reports_2],
        "finalised_by": [r["index"] for r in reports_2 if r["finalised"]],
        "merge_s": round(merge, 4),
        "same_data": bool(same),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
