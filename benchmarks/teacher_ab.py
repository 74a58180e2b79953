"""A/B of one ResNet-26 teacher setting on real CIFAR-10: precision, and zero-init of residual branches.

    python benchmarks/teacher_ab.py --dataset /tmp/cifar10-jpeg --precision mixed_bfloat16 --zero-init-residual true
    python benchmarks/teacher_ab.py --dataset /tmp/cifar10-jpeg --precision float32 --zero-init-residual true
    python benchmarks/teacher_ab.py --dataset /tmp/cifar10-jpeg --precision mixed_bfloat16 --zero-init-residual false

Trains ResNet-26 with the paper's teacher recipe (SGD 0.1, cosine, 1 warm-up epoch) for
`--epochs` on the first `--train` training images (class-balanced) and prints the per-epoch
training loss, training accuracy and test top-1 on `--test` images. Same seed in every run, so
two runs differ only in the setting under test.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from libkd_keras.data import load_split  # noqa: E402
from libkd_keras.models import resnet26  # noqa: E402
from libkd_keras.teachers import TeacherRecipe, train_teacher  # noqa: E402
from libkd_keras.training import FitOptions  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="CIFAR-10 class-folder tree or tarball")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--zero-init-residual", choices=("true", "false"), default="false")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    train = load_split(args.dataset, "train", limit=args.train)
    test = load_split(args.dataset, "test", limit=args.test)
    keras.mixed_precision.set_dtype_policy(args.precision)
    zero = args.zero_init_residual == "true"

    def build(num_classes, input_shape):
        return resnet26(num_classes=num_classes, input_shape=input_shape, zero_init_residual=zero)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        meta = train_teacher(
            build,
            train,
            test,
            out,
            seed=0,
            recipe=TeacherRecipe(epochs=args.epochs, warmup_epochs=1),
            name="resnet26",
            options=FitOptions(verbose=0),
        )
    history = meta["history"]
    print(
        f"precision={args.precision} zero_init_residual={zero} epochs={args.epochs} train={len(train)} "
        f"test={len(test)} wall={time.perf_counter() - started:.0f}s"
    )
    for key in ("loss", "acc", "val_acc"):  # the engine's metric names (teachers before it: accuracy, val_accuracy)
        print(f"  {key:13s}", " ".join("-" if v is None else f"{v:.3f}" for v in history[key]))


if __name__ == "__main__":
    main()
