"""Student recipes: schedule, optimizer, precision switch, student and Distiller from a recipe."""

import keras
import numpy as np
import pytest

from libkd_keras.distill import (
    RECIPES,
    Distiller,
    SoftDistillation,
    baseline,
    distiller_for,
    make_student,
    student_optimizer,
    student_schedule,
    superior,
)


def lr_at(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_baseline_hyper_parameters_and_deit_learning_rate_scaling():
    recipe = baseline()
    assert (recipe.batch_size, recipe.weight_decay, recipe.drop_path_rate, recipe.label_smoothing) == (
        128,
        0.05,
        0.1,
        0.1,
    )
    assert recipe.peak_learning_rate == pytest.approx(5e-4 * 128 / 512)
    assert baseline(batch_size=512).peak_learning_rate == pytest.approx(5e-4)
    sup = superior()
    assert (sup.mixup_alpha, sup.cutmix_alpha, sup.mix_switch_prob, sup.repeats) == (0.8, 1.0, 0.5, 3)
    assert (sup.color_jitter, sup.random_erasing, sup.rand_augment_ops) == (0.3, 0.25, 2)
    mix = RECIPES["mix"]()  # MixUp/CutMix on flip/crop only: all of it follows a replayed store view
    assert (mix.recipe, mix.mixup_alpha, mix.cutmix_alpha, mix.mix_switch_prob, mix.repeats) == (
        "mix",
        0.8,
        1.0,
        0.5,
        1,
    )
    assert (mix.flip_crop, mix.color_jitter, mix.random_erasing, mix.rand_augment_ops) == (True, 0.0, 0.0, 0)
    assert set(RECIPES) == {"baseline", "superior", "mix"}


def test_schedule_warms_up_then_decays_by_cosine_to_the_minimum():
    recipe = baseline()
    schedule = student_schedule(recipe, steps_per_epoch=10, epochs=20)  # 50 warmup steps, 150 cosine steps
    assert lr_at(schedule, 0) == pytest.approx(1e-6)
    assert lr_at(schedule, 25) == pytest.approx((1e-6 + recipe.peak_learning_rate) / 2, rel=1e-3)
    assert lr_at(schedule, 50) == pytest.approx(recipe.peak_learning_rate, rel=1e-5)
    assert lr_at(schedule, 125) == pytest.approx((recipe.peak_learning_rate + 1e-5) / 2, rel=1e-3)
    assert lr_at(schedule, 200) == pytest.approx(1e-5, rel=1e-3)
    short = student_schedule(recipe, steps_per_epoch=10, epochs=2)  # warmup capped at half the run
    assert lr_at(short, 10) == pytest.approx(recipe.peak_learning_rate, rel=1e-5)


def test_optimizer_decays_weights_but_not_biases_norms_or_tokens():
    student = make_student(baseline(), 4, image_size=16, variant=None, dim=32, depth=1, num_heads=2)
    optimizer = student_optimizer(baseline(base_learning_rate=0.5, warmup_epochs=0), steps_per_epoch=1, epochs=10)
    before = {v.path: v.numpy().copy() for v in student.trainable_variables}
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in student.trainable_variables])
    changed = {v.path for v in student.trainable_variables if not np.array_equal(v.numpy(), before[v.path])}
    assert any("kernel" in p for p in changed)
    assert not any(name in p for p in changed for name in ("bias", "gamma", "beta", "token", "position_embedding"))


def test_clip_grad_norm_clips_the_global_gradient_norm_and_is_off_by_default():
    assert student_optimizer(baseline(), steps_per_epoch=1, epochs=2).global_clipnorm is None
    optimizer = student_optimizer(baseline(clip_grad_norm=1.0, warmup_epochs=0), steps_per_epoch=1, epochs=2)
    variables = [keras.Variable(np.zeros(4, "float32")), keras.Variable(np.zeros(4, "float32"))]
    gradient = keras.ops.convert_to_tensor(np.full(4, 100.0, "float32"))
    optimizer.apply_gradients([(gradient, v) for v in variables])
    assert optimizer.global_clipnorm == 1.0
    # Adam's first step moves by the learning rate whatever the gradient's size; the clipped gradient's
    # norm over both variables is what the moments saw: 1.0 (not 283), so m = (1 - beta_1) * clipped.
    moments = np.concatenate([v.numpy() for v in optimizer.variables if "momentum" in v.path])  # Adam's first
    np.testing.assert_allclose(np.linalg.norm(moments / (1 - optimizer.beta_1)), 1.0, rtol=1e-5)


def test_precision_switch_builds_a_bfloat16_student_with_float32_heads():
    student = make_student(
        baseline(precision="mixed_bfloat16"), 4, image_size=16, variant=None, dim=32, depth=1, num_heads=2
    )
    assert student.blocks[0].compute_dtype == "bfloat16"
    assert student.head.compute_dtype == student.head_dist.compute_dtype == "float32"
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"


def test_make_student_sizes_and_recipe_distiller_settings():
    recipe = superior(drop_path_rate=0.2, alpha=0.25, distillation="soft", temperature=3.0, label_smoothing=0.0)
    student = make_student(recipe, 10, image_size=32, variant="tiny")
    assert student.count_params() == 5_365_076 and student.drop_path_rate == 0.2
    distiller = distiller_for(recipe, student)
    assert isinstance(distiller, Distiller)
    assert (distiller.alpha, distiller.kd, distiller.label_smoothing) == (0.25, SoftDistillation(3.0), 0.0)
    assert recipe.kd == SoftDistillation(3.0) and recipe.replace(distillation="none").kd is None


@pytest.mark.parametrize(
    "overrides,argument",
    [
        (dict(precision="float16"), "precision"),
        (dict(alpha=2.0), "alpha"),
        (dict(distillation="sharp"), "distillation"),
        (dict(temperature=0), "temperature"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_recipe_values(overrides, argument):
    with pytest.raises(ValueError, match=argument):
        baseline(**overrides)


def test_bad_schedule_lengths_and_variant():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        student_optimizer(baseline(), steps_per_epoch=0, epochs=3)
    with pytest.raises(ValueError, match="variant"):
        make_student(baseline(), 10, variant="huge")
