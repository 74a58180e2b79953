import keras
import numpy as np
import pytest

from libkd_keras.layers import (
    ClassDistTokens,
    DropPath,
    LayerNormalization,
    PatchEmbedding,
    PixelNormalization,
    TransformerBlock,
)


def test_patch_embedding_rejects_indivisible_image():
    with pytest.raises(ValueError, match="patch_size"):
        PatchEmbedding(patch_size=5, dim=8)(keras.ops.ones((1, 32, 32, 3)))


def test_tokens_prepend_cls_and_dist():
    layer = ClassDistTokens(distillation=True)
    x = keras.ops.zeros((2, 4, 8))
    out = keras.ops.convert_to_numpy(layer(x))
    pos = keras.ops.convert_to_numpy(layer.position_embedding)[0]
    np.testing.assert_allclose(out[0, 0], keras.ops.convert_to_numpy(layer.cls_token)[0, 0] + pos[0], atol=1e-6)
    np.testing.assert_allclose(out[1, 1], keras.ops.convert_to_numpy(layer.dist_token)[0, 0] + pos[1], atol=1e-6)
    assert out.shape == (2, 6, 8)
    assert ClassDistTokens(distillation=False)(x).shape == (2, 5, 8)


def test_drop_path_drops_whole_samples_and_keeps_expectation():
    x = keras.ops.ones((4000, 3, 2))
    out = keras.ops.convert_to_numpy(DropPath(0.25, seed=1)(x, training=True))
    per_sample = out.reshape(4000, -1)
    assert np.all(np.isclose(per_sample, 0.0) | np.isclose(per_sample, 1 / 0.75))
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    assert abs(out.mean() - 1.0) < 0.05
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(DropPath(0.25)(x, training=False)), 1.0)


def test_transformer_block_validates_heads():
    with pytest.raises(ValueError, match="num_heads"):
        TransformerBlock(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="drop_path_rate"):
        TransformerBlock(dim=12, num_heads=3, drop_path_rate=1.5)


def test_pixel_normalization_maps_mean_to_zero():
    layer = PixelNormalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    x = np.array([[[[127.5, 63.75, 0.0]]]], dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="std"):
        PixelNormalization(std=(0.0, 1.0, 1.0))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_centered_layer_norm_equals_keras_layer_norm(policy):
    rng = np.random.default_rng(0)
    x = (3.0 + 2.0 * rng.standard_normal((2, 7, 16))).astype("float32")
    ours = LayerNormalization(epsilon=1e-6, dtype=policy)
    theirs = keras.layers.LayerNormalization(epsilon=1e-6, dtype=policy)
    ours.build(x.shape)
    theirs.build(x.shape)
    weights = [rng.standard_normal(16).astype("float32") for _ in range(2)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    got, want = (keras.ops.convert_to_numpy(keras.ops.cast(layer(x), "float32")) for layer in (ours, theirs))
    assert got.dtype == want.dtype and ours(x).dtype == theirs(x).dtype
    np.testing.assert_allclose(got, want, atol=1e-4 if policy == "float32" else 5e-2)


def test_centered_layer_norm_falls_back_for_other_axes():  # its .keras round trip: tests/test_round_trips.py
    inputs = keras.Input((4, 6))
    model = keras.Model(inputs, LayerNormalization(axis=1, name="ln")(inputs))
    x = np.random.default_rng(1).standard_normal((3, 4, 6)).astype("float32")
    model.get_layer("ln").set_weights([np.full(4, 2.0, "float32"), np.full(4, 0.5, "float32")])
    reference = keras.layers.LayerNormalization(axis=1)
    reference.build(x.shape)
    reference.set_weights(model.get_layer("ln").get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), keras.ops.convert_to_numpy(reference(x)), atol=1e-5)
