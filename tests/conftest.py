import getpass
import importlib.metadata
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# XLA executables (the fused involution taps, students with jit_compile) go to an on-disk cache that
# every xdist worker and every process a test starts reads, so each tiny model's kernels compile once
# per session instead of once per process. TensorFlow writes an entry to a temporary file and renames
# it, and loads it only if its HLO equals the computation's; the folder is per user and TensorFlow version.
if "tf_xla_persistent_cache_directory" not in os.environ.get("TF_XLA_FLAGS", ""):
    try:
        _user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's bare uid)
        _user = "user"
    _version = importlib.metadata.version("tensorflow")
    _cache = os.path.join(tempfile.gettempdir(), f"libkd_keras-tests-xla-cache-{_user}-tf{_version}")
    _flags = [os.environ.get("TF_XLA_FLAGS", ""), f"--tf_xla_persistent_cache_directory={_cache}"]
    os.environ["TF_XLA_FLAGS"] = " ".join(_flags).strip()

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
