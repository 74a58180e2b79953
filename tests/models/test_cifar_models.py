"""The CIFAR-scale family: resnet_cifar, rednet_cifar, deit_micro; and the model registry."""

import keras
import numpy as np
import pytest

from libkd_keras.choices import STUDENT_ARCHS, TEACHER_ARCHS
from libkd_keras.layers import Involution2D
from libkd_keras.models import DEIT_VARIANTS, STUDENT_BUILDERS, TEACHER_BUILDERS, deit_micro, rednet_cifar, resnet_cifar
from tests.builders import tiny_rednet_cifar, tiny_resnet_cifar


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Small members at 16x16: depth 8 (one block per stage, RedNet with 3x3 involutions), DeiT-Micro at its
# real size. Their round trips and LiteRT conversion: tests/test_round_trips.py.
SMALL = {
    "resnet_cifar": tiny_resnet_cifar,
    "rednet_cifar": tiny_rednet_cifar,
    "deit_micro": lambda num_classes=4: deit_micro(num_classes=num_classes, image_size=16, patch_size=4),
}


def test_exact_parameter_counts():
    assert trainable(resnet_cifar(20)) == 272_474
    assert trainable(resnet_cifar(8)) == 78_042
    assert trainable(resnet_cifar(20, width=2)) == 1_084_586
    assert trainable(rednet_cifar(20)) == 144_899
    assert trainable(rednet_cifar(8)) == 35_517
    assert trainable(rednet_cifar(20, width=2)) == 571_892
    student = deit_micro(num_classes=10, image_size=32, patch_size=4)
    assert student.count_params() == trainable(student) == 684_404
    assert deit_micro(distillation=False).count_params() == 683_242


def test_topology_he_et_al():
    model = resnet_cifar(20)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    spatial = [c for c in convs if c.kernel_size == (3, 3)]
    assert len(spatial) == 19 and len(convs) == 21  # 6n+1 3x3 convs + the head = 20 layers; 2 projections
    assert [model.get_layer(f"stage{s}_block3_out").output.shape[1:] for s in (1, 2, 3)] == [
        (32, 32, 16),
        (16, 16, 32),
        (8, 8, 64),
    ]
    assert model.get_layer("head").dtype_policy.name == "float32" and model.name == "resnet_cifar20"
    assert resnet_cifar(20, input_shape=(96, 96, 3)).get_layer("stage1_block1_out").output.shape[1] == 96  # no /4
    assert resnet_cifar(8, width=2).get_layer("stage3_block1_out").output.shape[-1] == 128


def test_rednet_cifar_puts_a_7x7_involution_in_every_block():
    model = rednet_cifar(20)
    involutions = [layer for layer in model.layers if isinstance(layer, Involution2D)]
    assert len(involutions) == 9 and all(i.kernel_size == 7 and i.strides == 1 for i in involutions)
    assert [i.groups for i in involutions[::3]] == [1, 2, 4]
    last_bns = [model.get_layer(f"stage{s}_block{b}_2_bn") for s in (1, 2, 3) for b in (1, 2, 3)]
    assert all(np.all(bn.gamma.numpy() == 0) for bn in last_bns)  # RedNet's zero_init_residual
    assert [model.get_layer(f"stage{s}_block1_out").output.shape[1:] for s in (1, 2, 3)] == [
        (32, 32, 16),
        (16, 16, 32),
        (8, 8, 64),
    ]
    small_kernels = rednet_cifar(8, kernel_size=3)
    assert {layer.kernel_size for layer in small_kernels.layers if isinstance(layer, Involution2D)} == {3}
    assert trainable(small_kernels) < trainable(rednet_cifar(8))
    with pytest.raises(ValueError, match="kernel_size"):
        rednet_cifar(8, kernel_size=4)


@pytest.mark.parametrize("build", [resnet_cifar, rednet_cifar])
@pytest.mark.parametrize("depth", [18, 19, 2, 0, "20", 20.0, True])
def test_bad_depth_names_the_valid_ones(build, depth):
    with pytest.raises(ValueError, match=r"6n\+2.*20, 32, 44, 56, 110"):
        build(depth)


@pytest.mark.parametrize("build", [resnet_cifar, rednet_cifar])
def test_bad_width_and_classes(build):
    with pytest.raises(ValueError, match="width"):
        build(20, width=0)
    with pytest.raises(ValueError, match="num_classes"):
        build(20, num_classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        build(20, input_shape=(None, None, 3))


def test_deit_micro_is_a_registered_variant():
    assert DEIT_VARIANTS["micro"] == dict(dim=96, num_heads=3, depth=6)
    model = deit_micro()
    assert (model.dim, model.depth, model.num_heads, model.mlp_ratio) == (96, 6, 3, 4.0)
    assert model.name == "deit_micro_distilled" and deit_micro(distillation=False).name == "deit_micro"
    assert all(v["depth"] == 12 for k, v in DEIT_VARIANTS.items() if k != "micro")


def test_registry_matches_the_choice_lists():
    assert set(TEACHER_BUILDERS) == {arch for archs in TEACHER_ARCHS.values() for arch in archs}
    assert tuple(STUDENT_BUILDERS) == STUDENT_ARCHS
    assert {"resnet_cifar", "rednet_cifar"} <= set(TEACHER_BUILDERS) and "deit_micro" in STUDENT_BUILDERS


@pytest.mark.parametrize("arch", ["resnet_cifar", "rednet_cifar"])
def test_teacher_contract_pixels_in_logits_out(rng, arch):
    model = TEACHER_BUILDERS[arch](num_classes=7, input_shape=(16, 16, 3))
    x = rng.uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    logits = model(x, training=False)
    assert logits.shape == (3, 7) and logits.dtype == "float32" and np.all(np.isfinite(logits))


def test_student_contract_two_heads(rng):
    model = STUDENT_BUILDERS["deit_micro"](num_classes=7, image_size=16, patch_size=4)
    x = rng.uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    cls, dist = model.heads(x)
    assert cls.shape == dist.shape == (3, 7)
    np.testing.assert_allclose(model(x), (np.asarray(cls) + np.asarray(dist)) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_training_steps_lower_the_loss(rng, arch):
    keras.utils.set_random_seed(0)
    model = (
        SMALL[arch](num_classes=2)
        if arch != "deit_micro"
        else deit_micro(num_classes=2, image_size=16, patch_size=4, distillation=False)
    )
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 127.5).astype("int64")
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        jit_compile=False,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    losses = [float(model.train_on_batch(x, y)) for _ in range(6)]  # one batch: BatchNorm sees its own statistics
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
