"""Shared fixtures of the CLI tests: a generated class-folder data set, a tiny-model config, a stand-in teacher."""

import json
import os
import zipfile

import numpy as np
import pytest
from matplotlib.image import imsave

TINY_CONFIG = """
[run]
precision = "float32"  # the same numbers on every machine ("auto" picks bf16 on AMX CPUs)
jit_compile = false  # no XLA compile of each tiny student ("auto" compiles students; tests/test_xla.py)

[data]
image_size = 16
train_limit = 0
test_limit = 0

[teachers]
resnet_arch = "resnet26"  # tiny builder arguments below (the quick preset's CIFAR archs take depth/width)
rednet_arch = "rednet26"
resnet_seeds = [0]
rednet_seeds = [0]
epochs = 1
resnet_epochs = 0  # = teachers.epochs
rednet_epochs = 0
batch_size = 32
learning_rate = 0.02  # one epoch of a tiny RedNet at 0.1 can blow its logits past float16

[store]
dtype = "float32"

[teachers.resnet]
blocks = [1, 1, 1, 1]
widths = [8, 16, 16, 16]

[teachers.rednet]
blocks = [1, 1, 1, 1]
base_channels = 16
stem_channels = 32

[student]
epochs = 1
batch_size = 32
patch_size = 4
warmup_epochs = 0
distillation = "hard"
temperature = 1.0
learning_rate = 0.0  # the recipe's rate

[student.model]
dim = 32
depth = 2
num_heads = 2

[export]
representative_images = 32
latency_runs = 3
"""


def write_image_tree(root, classes=3, train=40, test=10, size=16, seed=0, sizes=None):
    """PNGs in `<root>/<split>/<class>/`, each class a colour over noise (learnable in one epoch).

    `sizes`: optional list of sides cycled over the images (mixed sizes).
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                side = sizes[i % len(sizes)] if sizes else size
                image = rng.integers(0, 80, (side, side, 3)).astype(np.uint8)
                image[..., c % 3] += 150
                imsave(folder / f"{i:03d}.png", image)
    return root


@pytest.fixture
def image_tree(tmp_path):
    return write_image_tree(tmp_path / "data")


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture
def trained_by(monkeypatch):
    """Replaces `train_teacher` by a recorder that writes a teacher record; yields the names it trained."""
    import keras

    from libkd_keras import distribute
    from libkd_keras.pipeline import teachers as pipeline_teachers

    trained = []

    def fake_train_teacher(build, train, test, out_dir, *, name, **kwargs):
        out_dir = distribute.worker_dir(out_dir)  # where the real one writes on this worker
        trained.append((out_dir, name))
        os.makedirs(out_dir, exist_ok=True)
        record = {
            "dataset": {"fingerprint": train.fingerprint},
            "test_dataset": {"fingerprint": test.fingerprint},
            "precision": keras.mixed_precision.dtype_policy().name,
            "top1_test_accuracy": 0.75,
            "name": name,
        }
        with open(f"{out_dir}/{name}.json", "w") as f:
            json.dump(record, f)
        with zipfile.ZipFile(f"{out_dir}/{name}.keras", "w") as f:  # a .keras file is a zip (checked when copied)
            f.writestr("model.weights.h5", f"weights of {name} in {out_dir}")
        return record

    monkeypatch.setattr(pipeline_teachers, "train_teacher", fake_train_teacher)
    return trained


@pytest.fixture
def options(tmp_path):
    """CLI options of a tiny run: the tiny config and a 2-class image tree."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    data = write_image_tree(tmp_path / "data", classes=2, train=4, test=2)
    return ["--config", str(config), "--dataset", str(data)]
