"""XLA's CPU backend flags for the DeiT student step: images/s and numbers, one child process each.

    python benchmarks/bench_xla_flags.py --students deit_tiny deit_micro --rounds 3

XLA reads `XLA_FLAGS` once per process, at its first compilation, so every variant runs in its own
child process and the children take turns for `--rounds` rounds. A child builds the seeded
student, batch and optimizer of `bench_training.py` (`Distiller`, hard targets, float32), traces
its training step, and times `--steps` steps (median step time). It also computes the loss, the
logits and the gradients of one fixed batch (inference mode, so no drop-path) with the variant's
compilation; the parent compares them with the uncompiled step's. The `vs` columns are against
the uncompiled step (Keras' default on a CPU) and against XLA with its default flags, both
measured in the same rounds.

Prints a Markdown section; `--write FILE` saves it.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

VARIANTS = {  # name: (jit_compile, XLA_FLAGS)
    "no XLA": (False, ""),
    "XLA": (True, ""),
    "XLA + XNNPACK": (True, "--xla_cpu_use_xnnpack=true"),
    "XLA + oneDNN dot fusion": (True, "--xla_cpu_experimental_onednn_fusion_type=dot"),
    "XLA + oneDNN": (True, "--xla_cpu_use_onednn=true"),
}


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    import tensorflow as tf
    from bench_training import StepTimer, build

    model, data = build(args.student, "float32", args.jit, args.batch_size, args.patch_size)
    images, targets = next(iter(data))

    def loss_and_grads(images, targets):
        with tf.GradientTape() as tape:
            cls, dist = model.student.heads(images, training=False)
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(targets["label"], cls, from_logits=True)
            ) + tf.reduce_mean(tf.keras.losses.categorical_crossentropy(targets["teacher"], dist, from_logits=True))
        return loss, cls, tape.gradient(loss, model.student.trainable_variables)

    loss, logits, grads = tf.function(loss_and_grads, jit_compile=args.jit)(images, targets)
    np.savez(args.numbers, loss=loss.numpy(), logits=logits.numpy(), grads=np.concatenate([np.ravel(g) for g in grads]))
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # traces (and compiles) the train step
    timer = StepTimer()
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[timer])
    print(json.dumps({"images_per_s": args.batch_size / statistics.median(timer.durations)}))


def run_child(student, variant, args, numbers):
    jit, flags = VARIANTS[variant]
    env = {**os.environ, "XLA_FLAGS": flags, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, __file__, "--child", "--student", student, "--numbers", numbers]
    command += ["--batch-size", str(args.batch_size), "--patch-size", str(args.patch_size), "--steps", str(args.steps)]
    command += ["--jit"] if jit else []
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{variant} ({student}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def compare(numbers, reference):
    import numpy as np

    a, b = np.load(numbers), np.load(reference)
    logits = float(np.max(np.abs(a["logits"] - b["logits"])))
    grads = float(np.linalg.norm(a["grads"] - b["grads"]) / np.linalg.norm(b["grads"]))
    return logits, grads


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=["deit_tiny", "deit_micro"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per child")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", default="not recorded", help="machine state to print, e.g. 'idle'")
    parser.add_argument("--write", default=None, help="also write the Markdown section to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--student", help=argparse.SUPPRESS)
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--numbers", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    variants = ["no XLA", "XLA"] + [v for v in args.variants if v not in ("no XLA", "XLA")]
    speeds = {(s, v): [] for s in args.students for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for student in args.students:
                for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
                    numbers = os.path.join(tmp, f"{student}-{variants.index(variant)}.npz")
                    speeds[student, variant].append(run_child(student, variant, args, numbers))
        diffs = {
            (s, v): compare(os.path.join(tmp, f"{s}-{i}.npz"), os.path.join(tmp, f"{s}-0.npz"))
            for s in args.students
            for i, v in enumerate(variants)
        }
    import tensorflow as tf
    from bench_models import publish

    lines = [
        f"## XLA CPU flags for the student step (issue 17, {datetime.date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/bench_xla_flags.py --students {' '.join(args.students)} --variants "
        f"{' '.join(repr(v) for v in args.variants)} --batch-size {args.batch_size} --patch-size {args.patch_size} "
        f"--steps {args.steps} --rounds {args.rounds}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, {args.load}; TensorFlow {tf.__version__}; "
        f"float32, batch {args.batch_size}, patch {args.patch_size}; median images/s of {args.rounds} "
        "interleaved rounds "
        "(one child process per variant and round). Numbers: one fixed batch in inference mode, against the "
        "uncompiled step.",
        "",
        "| student | variant | XLA_FLAGS | images/s (rounds) | vs no XLA | vs XLA | max logit diff "
        "| gradient rel. diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in args.students:
        none, xla = (statistics.median(speeds[s, v]) for v in ("no XLA", "XLA"))
        for v in variants:
            ips = statistics.median(speeds[s, v])
            rounds = ", ".join(f"{x:.1f}" for x in speeds[s, v])
            logits, grads = diffs[s, v]
            flags = VARIANTS[v][1] and f"`{VARIANTS[v][1]}`"
            lines.append(
                f"| {s} | {v} | {flags} | **{ips:.1f}** ({rounds}) | {ips / none:.2f}x | {ips / xla:.2f}x "
                f"| {logits:.1e} | {grads:.1e} |"
            )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
