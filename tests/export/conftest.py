"""Shared fixtures: a tiny DeiT, RedNet and ResNet that separate generated images of 4 classes.

This makes their predictions non-trivial (a random-init model predicts nearly one class),
so "int8 agrees with Keras" is a real check. Each model is exported once per quantization
and shared by the tests of the session.
"""

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from libkd_keras.export import QUANTIZATIONS, to_litert
from tests.builders import tiny_deit, tiny_rednet, tiny_resnet

NUM_CLASSES = 4
IMAGE_SIZE = 16
CLASS_NAMES = ["top_left", "top_right", "bottom_left", "bottom_right"]


TINTS = np.array([[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.25, 0.25, 1.0], [1.0, 1.0, 0.25]])


def make_images(n, seed):
    """Class k: a bright quadrant k tinted with colour k on a dim noisy background.

    Raw pixels, float32 in [0, 255]; the quadrant suits the CNN, the colour suits a DeiT
    whose tokens are still close to an average over patches.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    images = rng.uniform(0, 80, (n, IMAGE_SIZE, IMAGE_SIZE, 3))
    half = IMAGE_SIZE // 2
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 2)
        images[i, r * half : (r + 1) * half, c * half : (c + 1) * half] += rng.uniform(130, 175) * TINTS[k]
    images[0, 0, 0], images[1, 0, 0] = 0.0, 255.0  # the full pixel range, so uint8 inputs map 1:1
    return images.clip(0, 255).astype("float32"), labels.astype("int64")


# The exported models: the shared tiny builders (tests/builders.py), named after them.
BUILDERS = {
    "deit": functools.partial(tiny_deit, drop_path_rate=0.1, name="tiny_deit"),
    "rednet": functools.partial(tiny_rednet, zero_init_residual=True, name="tiny_rednet"),
    "resnet": functools.partial(tiny_resnet, name="tiny_resnet"),
}


def train_deit(model, images, labels):
    """A few quick epochs on both heads (training mode returns `(cls_logits, dist_logits)`)."""
    keras.utils.set_random_seed(0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(3e-3), loss=[loss, loss], jit_compile=False)
    model.fit(images, (labels, labels), batch_size=32, epochs=4, verbose=0)
    return model


def fit_head_probe(model, images, labels, margin=4.0):
    """Sets a CNN's head to a ridge-regression probe on its frozen random features.

    Closed form and fast: RedNet's 7x7 involutions (49 strided slices each) make a training
    graph that takes minutes to build on a shared CPU. The probe gives it real decisions.
    """
    pooled = np.asarray(keras.Model(model.input, model.get_layer("pool").output)(images))
    mean = pooled.mean(0)
    z = pooled - mean
    targets = margin * (2.0 * np.eye(NUM_CLASSES)[labels] - 1.0)
    ridge = 0.1 * np.trace(z.T @ z) / z.shape[1]
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ targets)
    model.get_layer("head").set_weights([w.astype("float32"), (-mean @ w).astype("float32")])
    return model


@pytest.fixture(scope="session")
def train_data():
    return make_images(256, seed=1)


@pytest.fixture(scope="session")
def test_data():
    return make_images(64, seed=2)


@pytest.fixture(scope="session")
def models(train_data):
    keras.utils.set_random_seed(0)
    return {
        "deit": train_deit(BUILDERS["deit"](), *train_data),
        "rednet": fit_head_probe(BUILDERS["rednet"](), *train_data),
        "resnet": fit_head_probe(BUILDERS["resnet"](), *train_data),
    }


# int8 files: DeiT with int8 input/output, RedNet with uint8; RedNet float32 with any batch size.
EXPORT_OPTIONS = {
    ("deit", "int8"): {"io_dtype": "int8"},
    ("rednet", "int8"): {"io_dtype": "uint8"},
    ("rednet", "float32"): {"batch_size": None},
}


# RedNet's float16 and dynamic exports cost ~15 s of CPU each (its 7x7 involutions are ~400
# strided slices for the converter); they are marked slow: `pytest -m "not slow"` skips them.
SLOW_EXPORTS = {("rednet", "float16"), ("rednet", "dynamic")}


def variants(*keys):
    """pytest params `(model, quantization)` for every quantization, the slow ones marked."""
    return [
        pytest.param(key, q, id=f"{key}-{q}", marks=[pytest.mark.slow] if (key, q) in SLOW_EXPORTS else [])
        for key in keys
        for q in QUANTIZATIONS
    ]


class Exports(dict):
    """`exports[model, quantization]` -> to_litert's metadata, converted on first use, then cached."""

    def __init__(self, models, calibration, folder):
        super().__init__()
        self.models, self.calibration, self.folder = models, calibration, folder

    def __missing__(self, key):
        name, quantization = key
        self[key] = to_litert(
            self.models[name],
            self.folder / f"{name}_{quantization}.tflite",
            quantization,
            representative_data=self.calibration,
            class_names=CLASS_NAMES,
            metadata={"note": "test"},
            **EXPORT_OPTIONS.get(key, {}),
        )
        return self[key]


@pytest.fixture(scope="session")
def exported(models, train_data, tmp_path_factory):
    return Exports(models, train_data[0][:128], tmp_path_factory.mktemp("exported"))
