"""Multi-view store cost: precompute time and bytes for V views, and reading speed with views vs clean rows.

    python benchmarks/bench_views.py --run saved_models/quick --views 16 --limit 2500

Takes the trained teachers of a run folder (`<run>/teachers/*.keras`), the CIFAR-10 sample's
first `--limit` training images, and writes two stores in a temporary folder: clean rows only and
clean + `--views` views. Reports each store's bytes and precompute seconds, the bytes of
`views="all"` (162 views at pad 4, computed from the per-view size), and the images/s of
`store.dataset(...)` batches (soft targets, batch 125) with and without replayed views, over
three passes each after one warm-up pass. Prints Markdown; `--write FILE` saves it.
"""

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import libkd_keras.models  # noqa: E402,F401  (registers the layers the teachers need)
from libkd_keras.data import load_split  # noqa: E402
from libkd_keras.distill import SoftDistillation  # noqa: E402
from libkd_keras.store import precompute  # noqa: E402
from libkd_keras.store.read import ViewRecipe  # noqa: E402


def folder_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def read_speed(store, split, views, passes=3):
    ds = store.dataset(SoftDistillation(4.0), batch_size=125, split=split, views=views)
    for _ in ds:  # warm-up: traces the map functions
        pass
    started = time.perf_counter()
    for _ in range(passes):
        for _ in ds:
            pass
    return passes * len(split) / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder with trained teachers (e.g. saved_models/quick)")
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--limit", type=int, default=2500, help="training images of the sample to store")
    parser.add_argument("--write", default=None)
    args = parser.parse_args()

    teachers = {
        p.stem: keras.saving.load_model(p, compile=False) for p in sorted(Path(args.run, "teachers").glob("*.keras"))
    }
    split = load_split("cifar10-sample", "train", limit=args.limit)
    rows, stores = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, views in (("clean", None), (f"{args.views} views", args.views)):
            started = time.perf_counter()
            stores[name] = precompute(teachers, split, f"{tmp}/{name}", dtype="float16", views=views, batch_size=250)
            rows.append((name, time.perf_counter() - started, folder_bytes(f"{tmp}/{name}")))
        per_view = (rows[1][2] - rows[0][2]) / args.views
        speeds = {name: read_speed(stores[name], split, views=name != "clean") for name in stores}
    total = ViewRecipe(4, tuple(split.image_shape)).num_distinct
    lines = [
        f"`python benchmarks/bench_views.py --run {args.run} --views {args.views} --limit {args.limit}` "
        f"({datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"teachers: {', '.join(teachers)}; {len(split):,} images, float16 logits)",
        "",
        "| store | precompute s | bytes | reader img/s (soft, batch 125) |",
        "|---|---|---|---|",
    ]
    for (name, seconds, size), speed in zip(rows, speeds.values()):
        lines.append(f"| {name} | {seconds:.1f} | {size:,} | {speed:,.0f} |")
    lines.append(f"| all {total} views (from the per-view size) | | {rows[0][2] + per_view * total:,.0f} | |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
