import keras
import pytest


@pytest.fixture(autouse=True)
def float32_policy():
    """Tests that switch to mixed precision must not leak the global policy."""
    yield
    keras.mixed_precision.set_dtype_policy("float32")
