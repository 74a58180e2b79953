import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from libkd_keras.models import DeiT, deit_base, deit_small, deit_tiny, rednet26, resnet26
from tests.builders import TINY_BUILDERS, tiny_deit


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_exact_parameter_counts_from_the_paper():
    assert trainable(resnet26(num_classes=10)) == 8_740_682
    assert trainable(rednet26(num_classes=10, include_top=False)) == 7_184_166
    assert trainable(rednet26(num_classes=10)) == 7_204_656
    student = deit_tiny(num_classes=10, image_size=32, patch_size=4, distillation=True)
    assert student.count_params() == trainable(student) == 5_365_076


def test_deit_variants_dims_and_plain_baseline():
    assert deit_small().dim == 384 and deit_small().num_heads == 6
    assert deit_base(image_size=16, patch_size=8).dim == 768
    plain = deit_tiny(distillation=False)
    assert not plain.distillation
    # one distillation token and its head: 192 (token) + 192 (pos) + 192*10 + 10 (head)
    assert deit_tiny().count_params() - plain.count_params() == 192 + 192 + 1930


@pytest.mark.parametrize("size,stem,expected_hw", [(32, None, 4), (224, None, 7), (64, "imagenet", 2)])
def test_stem_variants(size, stem, expected_hw):
    model = rednet26(input_shape=(size, size, 3), stem=stem)
    assert model.get_layer("stage4_block1_out").output.shape[1] == expected_hw
    model = resnet26(input_shape=(size, size, 3), stem=stem)
    assert model.get_layer("stage4_block1_out").output.shape[1] == expected_hw


@pytest.mark.parametrize("build,last_bn,default", [(resnet26, "_2_bn", False), (rednet26, "_3_bn", True)])
def test_residual_branches_can_start_at_zero(rng, build, last_bn, default):
    # RedNet's default: without it, a RedNet-26 trained for a few steps produced NaN logits in
    # inference (CI run). ResNet's option: off by default, it slowed short trainings (resnet.py).
    assert inspect.signature(build).parameters["zero_init_residual"].default is default
    model = build(zero_init_residual=True)
    last = [layer for layer in model.layers if layer.name.startswith("stage") and layer.name.endswith(last_bn)]
    assert len(last) == 8 and all(np.all(layer.gamma.numpy() == 0) for layer in last)
    assert np.all(model.get_layer("stage1_block1_1_bn").gamma.numpy() == 1)
    # each block then passes on relu(shortcut): with an identity shortcut, the input itself
    probe = keras.Model(
        model.input, [model.get_layer("stage3_block1_out").output, model.get_layer("stage3_block2_out").output]
    )
    before, after = probe(rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32"), training=False)
    np.testing.assert_allclose(after.numpy(), before.numpy(), atol=1e-6)
    plain = build(zero_init_residual=False)
    assert all(np.all(plain.get_layer(layer.name).gamma.numpy() == 1) for layer in last)


def test_deit_training_returns_both_heads_inference_their_mean(rng):
    model = tiny_deit()
    x = rng.uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    cls, dist = model.heads(x)
    np.testing.assert_allclose(model(x), (np.asarray(cls) + np.asarray(dist)) / 2, rtol=1e-5, atol=1e-6)
    out = model(x, training=True)
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (3, 4)
    plain = tiny_deit(distillation=False)
    assert plain(x, training=True).shape == (3, 4)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: DeiT(image_size=30, patch_size=4), "patch_size"),
        (lambda: DeiT(image_size=None), "image_size"),
        (lambda: DeiT(num_classes=1), "num_classes"),
        (lambda: DeiT(dim=100, num_heads=3), "num_heads"),
        (lambda: resnet26(input_shape=(None, None, 3)), "input_shape"),
        (lambda: rednet26(input_shape=(32, 32, 3), stem="tiny"), "stem"),
        (lambda: resnet26(num_classes=0), "num_classes"),
    ],
)
def test_bad_model_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_deit_saved_with_keras_layer_norm_still_loads(tmp_path, rng, monkeypatch):
    """Students saved before DeiT used libkd_keras' LayerNormalization (int8-friendly) load unchanged."""
    import libkd_keras.layers.vit as vit
    import libkd_keras.models.deit as deit

    with monkeypatch.context() as patch:
        patch.setattr(vit, "LayerNormalization", keras.layers.LayerNormalization)
        patch.setattr(deit, "LayerNormalization", keras.layers.LayerNormalization)
        old = tiny_deit()
        assert type(old.norm) is keras.layers.LayerNormalization
        old.save(tmp_path / "old.keras")
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    assert type(loaded.norm) is not keras.layers.LayerNormalization  # the int8-friendly subclass
    x = rng.uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), old.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", sorted(TINY_BUILDERS))
def test_one_epoch_lowers_the_loss(rng, family):
    keras.utils.set_random_seed(0)
    model = (
        TINY_BUILDERS[family](num_classes=2)
        if family != "deit"
        else tiny_deit(distillation=False, num_classes=2, drop_path_rate=0.1)
    )
    x = rng.uniform(0, 255, (32, 16, 16, 3)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 127.5).astype("int64")
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)  # one epoch of 16 steps
    assert model.evaluate(x, y, verbose=0) < before


JAX_SCRIPT = """
import json, sys, numpy as np, keras
assert keras.backend.backend() == "jax"
import libkd_keras.models  # registers the custom objects
args = json.loads(sys.argv[1])
out = {}
for name, path in args["models"].items():
    model = keras.saving.load_model(path)
    out[name] = np.asarray(model.predict(np.load(args["inputs"]), verbose=0)).tolist()
json.dump(out, open(args["result"], "w"))
"""


def test_jax_backend_gives_the_same_outputs(tmp_path, rng):
    pytest.importorskip("jax")
    x = rng.uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected, paths = {}, {}
    for family, build in TINY_BUILDERS.items():
        model = build()
        paths[family] = str(tmp_path / f"{family}.keras")
        model.save(paths[family])
        expected[family] = model.predict(x, verbose=0)
    args = dict(models=paths, inputs=str(tmp_path / "x.npy"), result=str(tmp_path / "out.json"))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(args)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.load(open(tmp_path / "out.json"))
    for family in TINY_BUILDERS:
        np.testing.assert_allclose(np.array(got[family]), expected[family], rtol=1e-4, atol=1e-4, err_msg=family)
