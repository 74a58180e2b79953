import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

CIFAR_TARBALL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "cifar10-jpeg.tar.gz")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
