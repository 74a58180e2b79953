"""The LIB-KD loss against a NumPy computation on fixed logits."""

import keras
import numpy as np
import pytest

from libkd_keras.distill import Distiller, HardDistillation, SoftDistillation, losses
from tests.distill.helpers import tiny_student

C = 4
CLS = np.array([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0], [-1.0, 1.5, 0.0, 0.3]], "float32")
DIST = np.array([[0.3, 1.0, -0.5, 2.0], [1.0, 0.0, 0.0, 0.0], [2.5, -0.5, 0.1, -1.0]], "float32")
LABELS = np.array([0, 2, 3])
TEACHER_HARD = np.eye(C, dtype="float32")[[3, 2, 0]]
TEACHER_LOGITS = np.array([[1.0, 0.0, -1.0, 2.0], [0.0, 0.5, 2.0, 0.0], [3.0, 0.0, 0.0, 1.0]], "float32")


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_softmax(z):
    return np.exp(np_log_softmax(z))


def np_ce(logits, rows):
    return -(rows * np_log_softmax(logits)).sum(-1)


def np_smooth(rows, eps):
    return rows * (1 - eps) + eps / rows.shape[-1]


def value(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_hard_loss_matches_numpy(alpha, label_smoothing):
    terms = losses.distillation_loss(
        CLS, DIST, LABELS, TEACHER_HARD, kd=HardDistillation(), alpha=alpha, label_smoothing=label_smoothing
    )
    label = np_ce(CLS, np_smooth(np.eye(C)[LABELS], label_smoothing))
    distill = -np_log_softmax(DIST)[np.arange(3), [3, 2, 0]]  # CE on the teacher's argmax, no smoothing
    np.testing.assert_allclose(value(terms["label_loss"]), label, rtol=1e-5)
    np.testing.assert_allclose(value(terms["distill_loss"]), distill, rtol=1e-5)
    np.testing.assert_allclose(value(terms["loss"]), alpha * label + (1 - alpha) * distill, rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_soft_loss_matches_numpy(alpha, temperature):
    teacher = np_softmax(TEACHER_LOGITS / temperature)  # as the store reads it at T
    terms = losses.distillation_loss(
        CLS, DIST, LABELS, teacher, kd=SoftDistillation(temperature), alpha=alpha, label_smoothing=0.1
    )
    student = np_softmax(DIST / temperature)
    kl = (teacher * (np.log(teacher) - np.log(student))).sum(-1) * temperature**2
    label = np_ce(CLS, np_smooth(np.eye(C)[LABELS], 0.1))
    np.testing.assert_allclose(value(terms["distill_loss"]), kl, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(value(terms["loss"]), alpha * label + (1 - alpha) * kl, rtol=1e-4, atol=1e-6)


def test_soft_loss_is_zero_when_student_matches_teacher_and_handles_zero_probabilities():
    t = 2.0
    same = losses.soft_distillation_loss(TEACHER_LOGITS, np_softmax(TEACHER_LOGITS / t), temperature=t)
    np.testing.assert_allclose(value(same), 0.0, atol=1e-5)
    mixed_one_hots = np.array([[0.7, 0.0, 0.3, 0.0]] * 3, "float32")  # exact zeros: 0 * log 0 = 0
    kl = value(losses.soft_distillation_loss(DIST, mixed_one_hots, temperature=1.0))
    expected = (mixed_one_hots * (np.log(np.maximum(mixed_one_hots, 1e-30)) - np_log_softmax(DIST))).sum(-1)
    np.testing.assert_allclose(kl, expected, rtol=1e-5)


def test_probability_row_labels_equal_integer_labels_and_mixed_rows_are_soft_targets():
    as_int = losses.distillation_loss(CLS, DIST, LABELS, TEACHER_HARD, alpha=0.5)
    as_rows = losses.distillation_loss(CLS, DIST, np.eye(C, dtype="float32")[LABELS], TEACHER_HARD, alpha=0.5)
    np.testing.assert_allclose(value(as_int["loss"]), value(as_rows["loss"]), rtol=1e-6)
    mixed = 0.6 * np.eye(C)[LABELS] + 0.4 * np.eye(C)[[1, 1, 1]]
    terms = losses.distillation_loss(CLS, DIST, mixed, TEACHER_HARD, alpha=1.0, label_smoothing=0.1)
    np.testing.assert_allclose(value(terms["loss"]), np_ce(CLS, np_smooth(mixed, 0.1)), rtol=1e-5)


def test_none_mode_trains_the_distillation_head_on_true_labels():
    terms = losses.distillation_loss(CLS, DIST, LABELS, None, kd=None, alpha=0.3, label_smoothing=0.1)
    rows = np_smooth(np.eye(C)[LABELS], 0.1)
    np.testing.assert_allclose(value(terms["loss"]), 0.3 * np_ce(CLS, rows) + 0.7 * np_ce(DIST, rows), rtol=1e-5)
    no_head = losses.distillation_loss(CLS, None, LABELS, None, kd=None, alpha=0.3, label_smoothing=0.1)
    np.testing.assert_allclose(value(no_head["loss"]), np_ce(CLS, rows), rtol=1e-5)


def test_bfloat16_logits_give_a_float32_loss():
    terms = losses.distillation_loss(
        keras.ops.cast(CLS, "bfloat16"), keras.ops.cast(DIST, "bfloat16"), LABELS, TEACHER_HARD
    )
    assert {keras.backend.standardize_dtype(v.dtype) for v in terms.values()} == {"float32"}


@pytest.mark.parametrize("alpha,temperature", [(0.5, 1.0), (0.25, 4.0)])
def test_distiller_compute_loss_is_the_batch_mean(alpha, temperature):
    distiller = Distiller(tiny_student(), SoftDistillation(temperature), alpha=alpha)
    teacher = np_softmax(TEACHER_LOGITS / temperature)
    loss = distiller.compute_loss(y={"label": LABELS, "teacher": teacher}, y_pred=(CLS, DIST), training=True)
    kl = (teacher * (np.log(teacher) - np_log_softmax(DIST / temperature))).sum(-1) * temperature**2
    expected = alpha * np_ce(CLS, np_smooth(np.eye(C)[LABELS], 0.1)) + (1 - alpha) * kl
    np.testing.assert_allclose(value(loss), expected.mean(), rtol=1e-5)
    weights = np.array([1.0, 0.0, 2.0], "float32")
    weighted = distiller.compute_loss(
        y={"label": LABELS, "teacher": teacher}, y_pred=(CLS, DIST), sample_weight=weights, training=True
    )
    np.testing.assert_allclose(value(weighted), (expected * weights).mean(), rtol=1e-5)
