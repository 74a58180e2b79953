"""Round trips of every libkd_keras layer and model family, through one harness (`tests/harness.py`).

Every layer of `libkd_keras.layers` and every tiny or CIFAR-scale model: registered, config round trip,
`.keras` save and load with the same weights and outputs. The paper-scale builders (`resnet26`,
`rednet26`, `deit_tiny/small/base`, millions of weights) get the registration and config round trip only:
they are the same classes and layers at other sizes. LiteRT conversion is slow, so two models convert,
which between them hold every layer of `libkd_keras.layers` (the completeness tests check both claims);
`tests/export` converts the tiny ResNet, RedNet and DeiT in every quantization.
"""

import functools

import keras
import numpy as np
import pytest

from libkd_keras.layers import (
    ClassDistTokens,
    DropPath,
    Involution2D,
    LayerNormalization,
    PatchEmbedding,
    PixelNormalization,
    TransformerBlock,
)
from libkd_keras.models import (
    STUDENT_BUILDERS,
    TEACHER_BUILDERS,
    DeiT,
    deit_base,
    deit_micro,
    deit_small,
    deit_tiny,
    rednet26,
    resnet26,
)
from tests.builders import tiny_deit, tiny_rednet, tiny_rednet_cifar, tiny_resnet, tiny_resnet_cifar
from tests.harness import (
    libkd_classes,
    run_litert_export_test,
    run_registration_test,
    run_saving_test,
    run_serialization_test,
)

# (layer class, constructor arguments, input shape with a batch of 2). Arguments away from their defaults,
# so that a get_config that drops one shows.
LAYER_CASES = {
    "involution": (Involution2D, dict(kernel_size=3, strides=2, group_channels=4, reduction_ratio=2), (2, 8, 8, 8)),
    "involution-7x7": (
        Involution2D,
        dict(kernel_size=7, strides=1, group_channels=8, reduction_ratio=4),
        (2, 8, 8, 16),
    ),
    "pixel-normalization": (PixelNormalization, dict(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4)), (2, 4, 4, 3)),
    "layer-normalization": (LayerNormalization, dict(epsilon=1e-5), (2, 5, 6)),
    "layer-normalization-axis1": (LayerNormalization, dict(axis=1, epsilon=1e-5), (2, 4, 6)),  # Keras' computation
    "patch-embedding": (PatchEmbedding, dict(patch_size=2, dim=8), (2, 4, 4, 3)),
    "tokens": (ClassDistTokens, dict(distillation=True), (2, 4, 8)),
    "tokens-no-distillation": (ClassDistTokens, dict(distillation=False), (2, 4, 8)),
    "transformer-block": (
        TransformerBlock,
        dict(dim=8, num_heads=2, mlp_ratio=2.0, qkv_bias=False, drop_path_rate=0.1, layer_norm_epsilon=1e-5),
        (2, 5, 8),
    ),
    "drop-path": (DropPath, dict(rate=0.2, seed=3), (2, 3, 4)),
}

SIZE = 16


def _deit_case(build, **kwargs):
    """A DeiT builder and the arguments its config must keep."""
    return functools.partial(build, **kwargs), kwargs


# Model cases: a builder of a fresh model (seeded) and the arguments the model's own config must keep
# (None for functional models, whose config is their layers).
MODEL_CASES = {
    "resnet": (functools.partial(tiny_resnet, seed=0), None),
    "rednet": (functools.partial(tiny_rednet, seed=0), None),
    "deit": (functools.partial(tiny_deit, seed=0, drop_path_rate=0.1), None),
    "deit-no-distillation": (functools.partial(tiny_deit, False, seed=0), None),
    "resnet_cifar": (functools.partial(tiny_resnet_cifar, seed=0), None),
    "rednet_cifar": (functools.partial(tiny_rednet_cifar, seed=0), None),  # 3x3 involutions: quicker to convert
    "deit_micro": _deit_case(deit_micro, num_classes=4, image_size=(SIZE, SIZE), patch_size=4),
    # every DeiT argument away from its default, a non-square image included
    "deit-every-argument": _deit_case(
        DeiT,
        num_classes=3,
        image_size=(SIZE, SIZE // 2),
        patch_size=4,
        dim=16,
        depth=1,
        num_heads=4,
        mlp_ratio=2.0,
        distillation=True,
        drop_path_rate=0.2,
        qkv_bias=False,
        layer_norm_epsilon=1e-5,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    ),
}
PAPER_SCALE = {
    "resnet26": (functools.partial(resnet26, num_classes=4, input_shape=(SIZE, SIZE, 3)), None),
    "rednet26": (functools.partial(rednet26, num_classes=4, input_shape=(SIZE, SIZE, 3)), None),
    "deit_tiny": _deit_case(deit_tiny, num_classes=4, image_size=(SIZE, SIZE), patch_size=8),
    "deit_small": _deit_case(deit_small, num_classes=4, image_size=(SIZE, SIZE), patch_size=8, distillation=False),
    "deit_base": _deit_case(deit_base, num_classes=4, image_size=(SIZE, SIZE), patch_size=8),
}
SLOW = {"deit_base"}  # 85M weights: about 15 s of CPU to build it twice
# The fewest, cheapest models that hold every layer of libkd_keras.layers between them.
LITERT_CASES = ("rednet_cifar", "deit")


def _layer_model(case):
    cls, kwargs, shape = LAYER_CASES[case]
    inputs = keras.Input(shape[1:])
    return keras.Model(inputs, cls(name="layer", **kwargs)(inputs), name=f"{case}_model")


def _layer_classes(model):
    """The libkd_keras layer classes a model holds, its nested layers included."""
    return {type(layer) for layer in model._flatten_layers() if type(layer).__module__.startswith("libkd_keras.layers")}


def _images(rng, model, n=2):
    """Raw pixels of the model's image size."""
    height, width = model.image_size if isinstance(model, DeiT) else model.input_shape[1:3]
    return rng.uniform(0, 255, (n, height, width, 3)).astype("float32")


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_round_trips(case, rng, tmp_path):
    cls, kwargs, shape = LAYER_CASES[case]
    layer = cls(**kwargs)
    assert run_registration_test(layer) == {f"libkd_keras>{cls.__name__}"}
    run_serialization_test(layer, kwargs)
    model = _layer_model(case)
    loaded = run_saving_test(model, rng.normal(size=shape).astype("float32"), tmp_path)
    assert type(loaded.get_layer("layer")) is cls


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_model_round_trips(case, rng, tmp_path):
    build, kwargs = MODEL_CASES[case]
    model = build()
    names = run_registration_test(model)
    assert ("libkd_keras>DeiT" in names) == isinstance(model, DeiT)
    run_serialization_test(model, kwargs)
    loaded = run_saving_test(model, _images(rng, model), tmp_path)
    if isinstance(model, DeiT):  # both heads, not only their average
        x = _images(rng, model)
        for got, want in zip(loaded.heads(x), model.heads(x)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] * (c in SLOW)) for c in sorted(PAPER_SCALE)])
def test_paper_scale_builders_are_registered_and_rebuild_from_their_config(case):
    build, kwargs = PAPER_SCALE[case]
    model = build()
    assert ("libkd_keras>DeiT" in run_registration_test(model)) == isinstance(model, DeiT)
    clone = run_serialization_test(model, kwargs)
    assert clone.count_params() == model.count_params() and clone.name == model.name


@pytest.mark.parametrize("case", LITERT_CASES)
def test_litert_float32_is_builtin_only_and_matches_keras(case, rng, tmp_path):
    model = MODEL_CASES[case][0]()
    meta = run_litert_export_test(model, _images(rng, model), tmp_path)
    if _layer_classes(model) & {Involution2D}:
        assert {"PAD", "STRIDED_SLICE", "MUL", "ADD"} <= set(meta["op_types"])  # involution: slices and sums


def _registered(module):
    return {
        cls
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("libkd_keras>") and cls.__module__.startswith(module)
    }


def test_every_registered_layer_and_model_class_has_a_case():
    layers = _registered("libkd_keras.layers")
    assert layers == {cls for cls, _, _ in LAYER_CASES.values()}, "give each layer of libkd_keras.layers a case"
    assert _registered("libkd_keras.models") == {DeiT}
    models = {case: build() for case, (build, _) in MODEL_CASES.items()}
    assert {type(m) for m in models.values()} == {DeiT, type(models["resnet"])}  # DeiT and functional models
    # every layer class is inside a model case too, and inside one of the converted ones
    assert set().union(*(_layer_classes(m) for m in models.values())) == layers
    assert set().union(*(_layer_classes(models[case]) for case in LITERT_CASES)) == layers


def test_every_registered_builder_has_a_case():
    cases = {**MODEL_CASES, **PAPER_SCALE}
    assert set(TEACHER_BUILDERS) | set(STUDENT_BUILDERS) | {"resnet", "rednet", "deit"} <= set(cases)
    assert {build.func for build, _ in cases.values()} >= {tiny_resnet, tiny_rednet, tiny_deit}


def test_the_harness_finds_an_unregistered_class_and_a_dropped_argument(rng, tmp_path):
    """The checks above can fail: a layer that is not registered, one whose config drops an argument."""

    class Unregistered(PixelNormalization):
        pass

    Unregistered.__module__ = "libkd_keras.layers.normalization"
    with pytest.raises(AssertionError, match="not registered"):
        run_registration_test(Unregistered())

    class Forgetful(Involution2D):
        def get_config(self):
            config = super().get_config()
            del config["reduction_ratio"]
            return config

    with pytest.raises(AssertionError, match="lacks the argument 'reduction_ratio'"):
        run_serialization_test(Forgetful(reduction_ratio=2), dict(reduction_ratio=2))
    assert libkd_classes({"layers": [{"module": "keras.layers", "class_name": "Dense", "registered_name": None}]}) == {}
