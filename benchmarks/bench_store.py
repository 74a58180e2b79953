"""Teacher-store speed: precompute vs `teacher.predict`, and store reading vs a DeiT-Tiny training step.

Goals (issue 3):
- precompute throughput >= 0.9x `teacher.predict` on the same images and batch size (ResNet-26);
- reading the store into batches (parse, PNG decode, ensemble, augmentation) >= 20x the images/s
  that one DeiT-Tiny (patch 4, 32x32, distillation token) training step consumes.

Run (a few minutes on 2 shared CPU cores):
    python benchmarks/bench_store.py --out benchmarks/results/store.md
"""

import argparse
import datetime
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from libkd_keras.data import Split, load_split, teacher_augmentation  # noqa: E402
from libkd_keras.distill import HardDistillation  # noqa: E402
from libkd_keras.models import deit_tiny, resnet, resnet26  # noqa: E402
from libkd_keras.store import precompute  # noqa: E402

CIFAR_TARBALL = os.path.join(os.path.dirname(__file__), "../../shared/datasets/cifar10-jpeg.tar.gz")
CIFAR_SOURCES = ("/tmp/cifar10-jpeg", CIFAR_TARBALL)


def cifar_images(split, limit):
    """Real CIFAR-10 images when available, else random pixels (reported in the output)."""
    for source in CIFAR_SOURCES:
        if os.path.exists(source):
            return load_split(source, split, limit=limit), source
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (limit, 32, 32, 3), dtype=np.uint8)
    names = [f"c{i}" for i in range(10)]
    return Split(images, np.arange(limit) % 10, np.arange(limit), names, "random", split), "random"


def timed(fn):
    """(wall seconds, result); `timed.cpu` keeps the process CPU seconds of the last call."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    timed.cpu = time.process_time() - cpu
    return time.perf_counter() - start, result


def bench_precompute(split, batch_size, rounds):
    """Best-of-`rounds` seconds for predict on a NumPy array, predict on tf.data batches, and precompute."""
    teacher = resnet26(num_classes=split.num_classes)
    images = split.images.astype("float32")
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    teacher.predict(images[:batch_size], batch_size=batch_size, verbose=0)  # trace once for all
    seconds = {"numpy": [], "tf.data": [], "precompute": []}
    cpu_seconds = {k: [] for k in seconds}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):  # alternate, so load from other users hits all alike
            path = os.path.join(tmp, f"store{r}")
            for key, run in [
                ("numpy", lambda: teacher.predict(images, batch_size=batch_size, verbose=0)),
                ("tf.data", lambda: teacher.predict(batches, verbose=0)),
                ("precompute", lambda: precompute({"resnet26": teacher}, split, path, batch_size=batch_size)),
            ]:
                seconds[key].append(timed(run)[0])
                cpu_seconds[key].append(timed.cpu)
    return {k: min(v) for k, v in seconds.items()}, {k: min(v) for k, v in cpu_seconds.items()}


def tiny_teacher(seed):
    keras.utils.set_random_seed(seed)
    return resnet(blocks=(1, 1, 1, 1), widths=(8, 16, 16, 16), num_classes=10, name=f"tiny{seed}")


def images_per_second(ds, epochs):
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in ds:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def bench_reading(split, batch_size, epochs):
    with tempfile.TemporaryDirectory() as tmp:
        store = precompute({"a": tiny_teacher(1), "b": tiny_teacher(2)}, split, os.path.join(tmp, "s"), shard_size=1000)
        augment = teacher_augmentation(32, seed=0)
        kwargs = dict(ensemble="vote", batch_size=batch_size, augment=augment)
        ds = store.dataset(HardDistillation(), **kwargs)
        cold = images_per_second(ds, 1)  # reads shards, decodes PNGs, fills the cache
        warm = images_per_second(ds, epochs)
        in_memory = store.dataset(HardDistillation(), split=split, **kwargs)
        images_per_second(in_memory, 1)
        from_split = images_per_second(in_memory, epochs)
    return cold, warm, from_split


def bench_deit_step(batch_size, steps):
    student = deit_tiny(num_classes=10, image_size=32, patch_size=4, distillation=True)
    optimizer = keras.optimizers.AdamW(5e-4, weight_decay=0.05)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (batch_size, 32, 32, 3)).astype("float32"))
    label = tf.constant(rng.integers(0, 10, batch_size))
    teacher = tf.one_hot(rng.integers(0, 10, batch_size), 10)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cce = keras.losses.CategoricalCrossentropy(from_logits=True)

    @tf.function
    def step():  # hard distillation: 0.5 CE(cls, label) + 0.5 CE(dist, teacher)
        with tf.GradientTape() as tape:
            cls, dist = student(x, training=True)
            loss = 0.5 * ce(label, cls) + 0.5 * cce(teacher, dist)
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply(grads, student.trainable_variables)
        return loss

    step(), step()  # trace + warm up
    seconds, _ = timed(lambda: [float(step()) for _ in range(steps)])
    return steps * batch_size / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precompute-images", type=int, default=1000)
    parser.add_argument("--read-images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256, help="precompute / predict batch size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--read-epochs", type=int, default=2)
    parser.add_argument("--deit-steps", type=int, default=3)
    parser.add_argument("--out", default=None, help="Markdown file to write the results section to")
    args = parser.parse_args()

    started = time.perf_counter()
    test, source = cifar_images("test", args.precompute_images)
    seconds, cpu = bench_precompute(test, args.batch_size, args.rounds)
    predict_s, precompute_s = min(seconds["numpy"], seconds["tf.data"]), seconds["precompute"]
    cpu_ratio = min(cpu["numpy"], cpu["tf.data"]) / cpu["precompute"]
    n = len(test)
    train, _ = cifar_images("train", args.read_images)
    cold, warm, from_split = bench_reading(train, 128, args.read_epochs)
    deit = bench_deit_step(128, args.deit_steps)
    total = time.perf_counter() - started

    lines = [
        "## Teacher store (issue 3)",
        "",
        f"Command: `python benchmarks/bench_store.py --out benchmarks/results/store.md` "
        f"(precompute {n} images, {args.rounds} alternating rounds, best of each; read {len(train)} images, "
        f"{args.read_epochs} epochs). Machine: {os.cpu_count()}-core CPU, no GPU, load average "
        f"{os.getloadavg()[0]:.1f} at the end (other jobs make absolute numbers noisy; the ratios are "
        f"measured in the same run). Date: {datetime.date.today().isoformat()}. "
        f"Images: {source}. Total run time {total:.0f} s. Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}.",
        "",
        "| measurement | value | goal |",
        "|---|---|---|",
        f"| ResNet-26 `teacher.predict(array, batch_size={args.batch_size})` | {n / seconds['numpy']:.1f} img/s | |",
        f"| ResNet-26 `teacher.predict(tf.data batches of {args.batch_size})` | {n / seconds['tf.data']:.1f} img/s | |",
        f"| `precompute` (same teacher, images, batch; + PNG encode, shards, sha256, manifest) | "
        f"{n / precompute_s:.1f} img/s | |",
        f"| **precompute / faster predict, throughput (wall clock)** | **{predict_s / precompute_s:.2f}x** | >= 0.9x |",
        f"| precompute / faster predict, process CPU time (less sensitive to other users' load) | {cpu_ratio:.2f}x | |",
        f"| store reading, first epoch (read + parse + PNG decode + vote ensemble + pad-crop/flip), batch 128 | "
        f"{cold:.0f} img/s | |",
        f"| store reading, later epochs (decoded images cached in memory) | {warm:.0f} img/s | |",
        f"| store targets joined by id to an in-memory `split=` | {from_split:.0f} img/s | |",
        f"| DeiT-Tiny (patch 4, 32x32, distillation token) training step, batch 128 | {deit:.1f} img/s | |",
        f"| **store reading / DeiT-Tiny step, first epoch** | **{cold / deit:.0f}x** | >= 20x |",
        f"| **store reading / DeiT-Tiny step, cached epochs** | **{warm / deit:.0f}x** | >= 20x |",
        "",
        "ResNet-26 has random weights (throughput does not depend on them). The DeiT step is a plain "
        "`tf.function` hard-distillation step (0.5 CE(cls, label) + 0.5 CE(dist, teacher), AdamW) on one "
        "resident batch, i.e. the model's own cost with no input pipeline.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(f"[{datetime.datetime.now():%H:%M:%S}] done in {total:.0f} s")


if __name__ == "__main__":
    main()
