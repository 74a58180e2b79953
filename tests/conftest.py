import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

CIFAR_TARBALL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "cifar10-jpeg.tar.gz")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def float32_wherever_precision_is_auto(monkeypatch):
    """Tests compute the same numbers on every machine: "auto" precision means float32 here
    (it would pick mixed_bfloat16 on AMX CPUs); tests/test_precision.py checks the real choice."""
    from libkd_keras import precision

    real = precision.bf16_hardware
    monkeypatch.setattr(precision, "bf16_hardware", lambda: frozenset())
    return real
