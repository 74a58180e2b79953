"""`HardDistillation` / `SoftDistillation`: each one's target row, description, kind check and loss term.

Every value is checked against a NumPy computation written here; the objects also work as
`keras.distillation.DistillationLoss`es in Keras' own Distiller.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.distill import Distiller, HardDistillation, SoftDistillation, losses, targets
from tests.builders import tiny_resnet
from tests.distill.helpers import NUM_CLASSES, SIZE, colour_data, tiny_student
from tests.distill.test_losses import DIST, np_log_softmax, np_softmax, value

# (batch 3, teachers 3, classes 4): row 0 has a 2-1 vote the soft average disagrees with.
LOGITS = np.array(
    [
        [[0.5, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 9.0, 0.0, 0.0]],
        [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 2.0, 0.5], [0.0, 0.0, 0.0, 3.0]],
        [[1.0, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 0.0]],
    ],
    "float32",
)


def np_soft_average(logits, t=1.0):
    return np_softmax(logits / t).mean(axis=1)


def np_votes(logits):
    return np.eye(4)[logits.argmax(-1)].sum(axis=1)


@pytest.mark.parametrize("rule", ["soft", "vote"])
def test_hard_target_is_the_one_hot_decision_and_says_so(rule):
    kd = HardDistillation()
    if rule == "soft":
        winner = np_soft_average(LOGITS).argmax(-1)
    else:  # most votes, ties to the larger soft average (row 2: one vote each)
        winner = (np_votes(LOGITS) + 0.5 * np_soft_average(LOGITS)).argmax(-1)
    np.testing.assert_array_equal(value(kd.target(LOGITS, rule)), np.eye(4)[winner])
    assert kd.describe(rule) == [0.0, 0.0, float(rule == "vote")]
    assert winner.tolist() == ([1, 3, 1] if rule == "soft" else [0, 2, 1])  # the rules differ on row 0


@pytest.mark.parametrize("rule,temperature", [("soft", 1.0), ("soft", 4.0), ("vote", 4.0)])
def test_soft_target_is_the_probabilities_at_its_temperature_and_says_so(rule, temperature):
    kd = SoftDistillation(temperature)
    expected = np_soft_average(LOGITS, temperature) if rule == "soft" else np_votes(LOGITS) / 3
    np.testing.assert_allclose(value(kd.target(LOGITS, rule)), expected, rtol=1e-6, atol=1e-7)
    # vote fractions depend on no temperature: described with T = 0
    assert kd.describe(rule) == [1.0, temperature if rule == "soft" else 0.0, float(rule == "vote")]


def test_the_loss_terms_match_numpy():
    teacher_hard = np.eye(4, dtype="float32")[[3, 2, 0]]
    np.testing.assert_allclose(
        value(HardDistillation().loss(DIST, teacher_hard)), -np_log_softmax(DIST)[np.arange(3), [3, 2, 0]], rtol=1e-5
    )
    t = 3.0
    teacher = np_soft_average(LOGITS, t)
    kl = t**2 * (teacher * (np.log(teacher) - np_log_softmax(DIST / t))).sum(-1)
    np.testing.assert_allclose(value(SoftDistillation(t).loss(DIST, teacher)), kl, rtol=1e-5)


KINDS = np.array(
    [
        [0.0, 0.0, 0.0],  # hard, rule soft
        [0.0, 0.0, 1.0],  # hard, vote
        [1.0, 4.0, 0.0],  # soft at T=4
        [1.0, 4.0002, 0.0],  # the same T within 1e-4 (a float16 round trip)
        [1.0, 2.0, 0.0],  # soft at T=2
        [1.0, 0.0, 1.0],  # vote fractions: any T
    ],
    "float32",
)


@pytest.mark.parametrize(
    "kd,expected",
    [
        (HardDistillation(), [True, True, False, False, False, False]),
        (SoftDistillation(4.0), [False, False, True, True, False, True]),
        (SoftDistillation(2.0), [False, False, False, False, True, True]),
    ],
)
def test_the_kind_check_on_numpy_and_tensorflow_rows(kd, expected):
    assert kd.matches(KINDS).tolist() == expected
    assert kd.matches(tf.constant(KINDS)).numpy().tolist() == expected


def test_a_mismatched_store_row_is_refused_naming_both_kinds_and_the_fix():
    images, labels, teacher = colour_data(8)
    rows = np.tile(SoftDistillation(2.0).describe("soft"), (8, 1)).astype("float32")
    y = {"label": labels, "teacher": teacher, "target_kind": rows}
    with pytest.raises(ValueError) as error:
        targets.check_kind_arrays(y, SoftDistillation(4.0))
    assert str(error.value).startswith(
        "The Distiller's SoftDistillation(temperature=4) trains on soft targets at T=4, but the batches hold soft "
        'targets at T=2 (rule "soft"). Read them with the same object: `store.dataset(SoftDistillation(temperature=4)'
    )
    targets.check_kind_arrays(y, SoftDistillation(2.0))  # the same kind passes
    checked = targets.kind_checked(tf.data.Dataset.from_tensor_slices((images, y)).batch(4), HardDistillation())
    with pytest.raises(ValueError, match=r"HardDistillation\(\) trains on hard targets, but the batches hold soft"):
        with targets.kind_errors(HardDistillation()):
            list(checked)


def test_config_names_map_to_the_objects_and_bad_values_are_refused():
    assert losses.distillation_for("hard", 4.0) == HardDistillation()
    assert losses.distillation_for("soft", 4) == SoftDistillation(4.0)
    assert losses.distillation_for("none") is None
    with pytest.raises(ValueError, match="`distillation` must be one of"):
        losses.distillation_for("medium")
    for bad in (0, -1.0, True, "4"):
        with pytest.raises(ValueError, match="`temperature` must be a positive number"):
            SoftDistillation(bad)
    with pytest.raises(ValueError, match="`ensemble` must be one of"):
        HardDistillation().describe("median")
    with pytest.raises(ValueError, match=r"`kd` must be HardDistillation\(\), SoftDistillation"):
        Distiller(tiny_student(), "soft")
    with pytest.raises(TypeError, match="one object now"):
        Distiller(tiny_student(), distillation="soft", temperature=4.0)


def test_a_distiller_saves_its_object_and_loads_one_saved_with_the_old_keys():
    distiller = Distiller(tiny_student(), SoftDistillation(2.0), alpha=0.3)
    config = distiller.get_config()
    assert Distiller.from_config(config).kd == SoftDistillation(2.0)
    old = {k: v for k, v in config.items() if k != "kd"}
    assert Distiller.from_config({**old, "distillation": "soft", "temperature": 2.0}).kd == SoftDistillation(2.0)
    assert Distiller.from_config({**old, "distillation": "none"}).kd is None
    saved = keras.saving.serialize_keras_object(SoftDistillation(4.0))
    assert keras.saving.deserialize_keras_object(saved) == SoftDistillation(4.0)


# -- keras.distillation ----------------------------------------------------------------------------


@pytest.mark.parametrize("kd", [HardDistillation(), SoftDistillation(3.0)])
def test_the_objects_are_distillation_losses_of_keras_own_distiller(kd):
    images, labels, _ = colour_data(16)
    teacher, student = tiny_resnet(NUM_CLASSES, SIZE), tiny_student(distillation=False)
    distiller = keras.distillation.Distiller(teacher, student, distillation_losses=kd, student_loss_weight=0.25)
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    predicted = student(images, training=False)
    loss = distiller.compute_loss(images, labels, predicted, training=False)

    student_logits, teacher_logits = value(predicted), value(teacher(images, training=False))
    label_term = -np_log_softmax(student_logits)[np.arange(16), labels].mean()
    if isinstance(kd, HardDistillation):
        kd_term = -np_log_softmax(student_logits)[np.arange(16), teacher_logits.argmax(-1)].mean()
    else:
        p = np_softmax(teacher_logits / 3.0)
        kd_term = 9.0 * (p * (np.log(p) - np_log_softmax(student_logits / 3.0))).sum(-1).mean()
    assert value(loss) == pytest.approx(0.25 * label_term + 0.75 * kd_term, rel=1e-5)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_keras_own_distiller_refuses_a_student_with_a_distillation_token_saying_why():
    with pytest.raises(ValueError, match="has a distillation token.*libkd_keras.distill.Distiller"):
        keras.distillation.Distiller(
            tiny_resnet(NUM_CLASSES, SIZE), tiny_student(), distillation_losses=HardDistillation()
        )
