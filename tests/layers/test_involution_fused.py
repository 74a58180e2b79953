"""Where Involution2D takes the XLA-fused taps, and that they never reach an exported graph."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.layers import Involution2D, involution_xla
from libkd_keras.layers.involution_xla import fused_taps, fused_taps_enabled
from tests.builders import tiny_rednet


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the Involution2D calls (eager or traced) that take the fused taps."""
    calls = []
    real = involution_xla.involve

    def counting(*args, **kwargs):
        calls.append(tf.executing_eagerly())
        return real(*args, **kwargs)

    monkeypatch.setattr(involution_xla, "involve", counting)
    return calls


def test_rule_eager_fused_user_function_portable():
    assert fused_taps_enabled()  # eager: nothing is traced, nothing can be exported
    assert not _traced(fused_taps_enabled)  # a user's tf.function may be saved or exported: portable
    with fused_taps(True):
        assert _traced(fused_taps_enabled)
    with fused_taps(False):
        assert not fused_taps_enabled()
        with fused_taps(None):  # back to the rule
            assert fused_taps_enabled()
        assert not fused_taps_enabled()
    assert fused_taps_enabled()


def _traced(fn):
    """`fn()` evaluated while tracing a plain (user) tf.function."""
    seen = []
    tf.function(lambda: seen.append(fn()) or tf.constant(0))()
    return seen[0]


def test_bad_override_value():
    with pytest.raises(ValueError, match="True, False or None"):
        with fused_taps("yes"):
            pass


def test_fit_and_predict_take_the_fused_taps_user_function_does_not(rng, fused_calls):
    model = tiny_rednet(3, zero_init_residual=True, name="tiny_rednet")
    images = rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    labels = np.arange(8) % 3
    model.compile(
        keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False
    )
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    involutions = sum(isinstance(layer, Involution2D) for layer in model.layers)
    assert involutions == 5 and len(fused_calls) == involutions and not any(fused_calls)  # traced in the step
    predicted = model.predict(images, batch_size=8, verbose=0)
    assert len(fused_calls) == 2 * involutions
    del fused_calls[:]
    portable = tf.function(lambda t: model(t, training=False))(images).numpy()
    assert fused_calls == []
    np.testing.assert_allclose(predicted, portable, rtol=1e-4, atol=1e-4)


def test_rednet_trained_fused_exports_builtin_only_without_xla(rng, tmp_path, fused_calls):
    from libkd_keras.export import to_litert
    from libkd_keras.export.runtime import LiteRTModel

    model = tiny_rednet(3, zero_init_residual=True, name="tiny_rednet")
    images = rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    expected = model.predict(images[:1], verbose=0)
    assert fused_calls  # the model did train and predict on the fused taps
    del fused_calls[:]

    meta = to_litert(model, str(tmp_path / "rednet.tflite"))
    assert fused_calls == []
    assert meta["builtin_ops_only"] is True
    assert {"PAD", "STRIDED_SLICE", "MUL", "ADD"} <= set(meta["op_types"])
    assert all(op.isupper() and not op.startswith(("FLEX", "CUSTOM", "CALL")) for op in meta["op_types"])
    runner = LiteRTModel(meta["path"])
    got = runner.invoke(runner.prepare(images[:1]))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

    saved = tmp_path / "saved"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    with open(os.path.join(saved, "saved_model.pb"), "rb") as f:
        graph = f.read()
    assert b"XlaMustCompile" not in graph and b"stem_involution" in graph
