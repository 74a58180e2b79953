"""Distiller speed and memory: stored teacher labels vs the student alone vs online teachers.

Same student (DeiT-Tiny, patch 4, 32x32, 10 classes), same batch (64), float32:

    a   student alone: plain `keras.Model.fit` of DeiT-Tiny without distillation token, sparse CE
    a2  Distiller(distillation="none") with the distillation-token student (both heads on labels)
    b   Distiller(distillation="hard") with stored labels: batches (image, {"label", "teacher"})
        from an in-memory dataset of the store reader's format (the store's reading speed is
        benchmarked separately in bench_store.py)
    c1  Distiller with 1 online teacher (ResNet-26)
    c2  ... 2 online teachers (ResNet-26, RedNet-26)
    c3  ... 3 online teachers (ResNet-26, RedNet-26, ResNet-26)

Speed: all configurations live in ONE process and take turns (`--rounds` rounds of `--steps`
training steps each, the order rotated every round), after `--warmup` steps that trace the graph;
steps/s come from each configuration's median step time. Taking turns keeps the ratios honest on
a machine whose load drifts (a shared CPU). Memory: each configuration also runs alone in its own
process for `--warmup` steps, whose peak RSS is reported (weights, optimizer state, traced
graph, activations, TensorFlow runtime).

Goals (issue 4): b / a >= 0.95 and b >= 2x c3.

Run (about 10 minutes on 2 idle CPU cores; longer when other jobs share them):
    python benchmarks/bench_distill.py --out benchmarks/results/distill.md
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONFIGS = {
    "a": "student alone (plain Keras fit, no distillation token)",
    "a2": 'Distiller(distillation="none"), distillation-token student',
    "b": 'Distiller(distillation="hard"), stored labels',
    "c1": "Distiller, 1 online teacher (ResNet-26)",
    "c2": "Distiller, 2 online teachers (ResNet-26, RedNet-26)",
    "c3": "Distiller, 3 online teachers (ResNet-26, RedNet-26, ResNet-26)",
}
NUM_CLASSES, IMAGE_SIZE, PATCH = 10, 32, 4


class StepTimer:
    """Per-batch durations after `warmup` batches (the first ones trace the graph).

    The median step is reported: it ignores the bursts of other jobs on a shared machine.
    """

    def __init__(self, warmup):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(cb, batch, logs=None):
                self.began = time.perf_counter()

            def on_train_batch_end(cb, batch, logs=None):
                if batch >= warmup:
                    self.durations.append(time.perf_counter() - self.began)

        self.callback, self.durations, self.began = Callback(), [], None

    def steps_per_second(self):
        durations = sorted(self.durations)
        return 1.0 / durations[len(durations) // 2]


def build(config, batch_size, precision):
    """The model (compiled) and an endless dataset of one configuration."""
    import keras
    import numpy as np
    import tensorflow as tf

    from libkd_keras.distill import Distiller, HardDistillation
    from libkd_keras.models import deit_tiny, rednet26, resnet26

    keras.mixed_precision.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = batch_size * 4
    images = rng.uniform(0, 255, (n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, n).astype("int64")
    teacher = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, n)]
    optimizer = keras.optimizers.AdamW(5e-4 * batch_size / 512, weight_decay=0.05)

    if config == "a":
        model = deit_tiny(NUM_CLASSES, IMAGE_SIZE, PATCH, distillation=False)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        data = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        student = deit_tiny(NUM_CLASSES, IMAGE_SIZE, PATCH, distillation=True)
        builders = [resnet26, rednet26, resnet26]
        count = int(config[1]) if config.startswith("c") else 0
        teachers = [builders[i](NUM_CLASSES, (IMAGE_SIZE, IMAGE_SIZE, 3)) for i in range(count)] or None
        model = Distiller(student, None if config == "a2" else HardDistillation(), teachers=teachers)
        model.compile(optimizer=optimizer)
        targets = {"label": labels, "teacher": teacher} if config == "b" else labels
        data = tf.data.Dataset.from_tensor_slices((images, targets))
    return model, data.batch(batch_size, drop_remainder=True).cache().repeat().prefetch(2)


def weights_held(model):
    """Parameters the training process holds: the model's, plus online teachers' (not in its weights)."""
    import numpy as np

    held = list(model.weights) + [w for t in getattr(model, "teachers", ()) for w in t.weights]
    return int(sum(np.prod(w.shape) for w in held))


def memory_of(config, args):
    """Run one configuration alone for the warmup steps; its process's peak RSS."""
    model, data = build(config, args.batch_size, args.precision)
    model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return dict(config=config, peak_rss_mib=peak_kib / 1024, params=weights_held(model))


def speeds(configs, args):
    """All configurations in this process, taking turns; steps/s from the median step time."""
    runs = {c: build(c, args.batch_size, args.precision) for c in configs}
    for model, data in runs.values():
        model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)  # traces the train step
    timers = {c: StepTimer(warmup=0) for c in configs}
    for r in range(args.rounds):
        for config in configs[r % len(configs) :] + configs[: r % len(configs)]:
            model, data = runs[config]
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[timers[config].callback])
    return {c: dict(steps_per_s=timers[c].steps_per_second(), timed_steps=len(timers[c].durations)) for c in configs}


def child(args, *flags):
    command = [
        sys.executable,
        __file__,
        "--batch-size",
        str(args.batch_size),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--rounds",
        str(args.rounds),
        "--precision",
        args.precision,
        *flags,
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode:
        sys.exit(f"{' '.join(flags)} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def markdown(results, args, seconds):
    rate = {r["config"]: r["steps_per_s"] for r in results}
    lines = [
        "## Distiller: stored labels vs student alone vs online teachers (issue 4)",
        "",
        f"Command: `python benchmarks/bench_distill.py --batch-size {args.batch_size} --warmup {args.warmup} "
        f"--steps {args.steps} --rounds {args.rounds} --precision {args.precision}`  ",
        f"Machine: 2-core CPU, no GPU, shared with other engineers' jobs (the run was kept short: "
        f"{args.rounds} rounds x {args.steps} timed steps per configuration after {args.warmup} warmup steps, "
        f"{seconds / 60:.1f} min in all). Date: 2026-11-21. Python {platform.python_version()}.  ",
        f"Student DeiT-Tiny, patch 4, 32x32, 10 classes, batch {args.batch_size}, {args.precision}, "
        "AdamW; teachers full-size ResNet-26 / RedNet-26 (CIFAR stem), random weights (speed only). "
        "Speed: all configurations in one process taking turns (order rotated each round), median step "
        "time, so load drift on the shared machine hits them alike. Memory: each configuration alone in "
        "its own process for the warmup steps; peak RSS of that process (TensorFlow runtime included).",
        "",
        "| config | what | training steps/s (median step) | images/s | peak RSS (MiB) | weights held (M) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['config']} | {CONFIGS[r['config']]} | {r['steps_per_s']:.3f} | "
            f"{r['steps_per_s'] * args.batch_size:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['params'] / 1e6:.2f} |"
        )
    lines.append("")
    if "a" in rate and "b" in rate:
        ok = "met" if rate["b"] / rate["a"] >= 0.95 else "NOT met"
        lines.append(f"- (b) / (a) = {rate['b'] / rate['a']:.3f} (goal >= 0.95: {ok}).")
    if "a2" in rate and "b" in rate:
        lines.append(
            f"- (b) / (a2) = {rate['b'] / rate['a2']:.3f}: reading the teacher rows vs training "
            "both heads on labels, same student."
        )
    if "c3" in rate and "b" in rate:
        ok = "met" if rate["b"] / rate["c3"] >= 2 else "NOT met"
        lines.append(f"- (b) / (c3) = {rate['b'] / rate['c3']:.2f}x (goal >= 2x: {ok}).")
    for c in ("c1", "c2"):
        if c in rate and "b" in rate:
            lines.append(f"- (b) / ({c}) = {rate['b'] / rate[c]:.2f}x.")
    lines.append(
        "- Weights held: parameters in the training process (student, plus online teachers in c1-c3). "
        "Stored labels (b) hold no teacher weights."
    )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="a,b,c1,c2,c3", help=f"comma-separated, of {list(CONFIGS)}")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--out", default=None, help="Markdown file to write (default: print only)")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--speeds-of", default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()

    if args.memory_of:
        print(json.dumps(memory_of(args.memory_of, args)))
        return
    if args.speeds_of:
        print(json.dumps(speeds(args.speeds_of.split(","), args)))
        return

    start, configs = time.perf_counter(), args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        sys.exit(f"unknown configurations {unknown}; choose from {list(CONFIGS)}")
    results = []
    for config in configs:
        results.append(child(args, "--memory-of", config))
        print(json.dumps(results[-1]), flush=True)
    timing = child(args, "--speeds-of", ",".join(configs))
    for result in results:
        result.update(timing[result["config"]])
    print(json.dumps(timing), flush=True)
    text = markdown(results, args, time.perf_counter() - start)
    print(text)
    if args.out:
        temporary = args.out + ".tmp"
        with open(temporary, "w") as f:
            f.write(text)
        os.replace(temporary, args.out)


if __name__ == "__main__":
    main()
