"""Online teachers in `tf.data` (`distill/online.py`): the targets, and the student, of the in-step mode."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.distill import (
    Distiller,
    HardDistillation,
    OnlineTargets,
    SoftDistillation,
    baseline,
    online,
    train_student,
)
from libkd_keras.distill import sources as sources_module
from libkd_keras.ensembles import teacher_target
from libkd_keras.layers import involution_xla
from libkd_keras.models import rednet_cifar, resnet_cifar
from libkd_keras.training import FitOptions
from tests.builders import toy_split
from tests.distill.helpers import tiny_student
from tests.distill.test_training import _build


def _teachers(num_classes=4, size=16):
    keras.utils.set_random_seed(0)
    shape = (size, size, 3)
    return [
        resnet_cifar(depth=8, num_classes=num_classes, input_shape=shape),
        rednet_cifar(depth=8, num_classes=num_classes, input_shape=shape),
    ]


def _batches(n=32, size=16, mixed=False, num_classes=4):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, n)
    if mixed:  # MixUp/CutMix-style label rows
        labels = 0.7 * np.eye(num_classes, dtype="float32")[labels] + 0.3 / num_classes
    return images, labels, tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)


@pytest.mark.parametrize(
    "rule, kd, temperature", [("soft", SoftDistillation(4.0), 4.0), ("vote", HardDistillation(), 1.0)]
)
@pytest.mark.parametrize("mixed", [False, True])
def test_labelled_batches_hold_the_teachers_ensemble_target(rule, kd, temperature, mixed):
    teachers = _teachers()
    images, labels, data = _batches(mixed=mixed)
    labelled = list(online.label_online(data, teachers, 4, kd, rule=rule))
    got = np.concatenate([y["teacher"].numpy() for _, y in labelled])
    logits = np.stack([t.predict(images, verbose=0) for t in teachers], axis=1)
    if rule == "soft":
        probs = np.exp(logits / temperature - (logits / temperature).max(-1, keepdims=True))
        expected = (probs / probs.sum(-1, keepdims=True)).mean(1)
    else:  # the majority vote, one-hot (two teachers: a tie goes to the larger soft average)
        votes = np.eye(4)[logits.argmax(-1)].sum(1)
        soft = np.exp(logits - logits.max(-1, keepdims=True))
        expected = np.eye(4)[np.argmax(votes + 0.5 * (soft / soft.sum(-1, keepdims=True)).mean(1), -1)]
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in labelled]), images)
    np.testing.assert_allclose(np.concatenate([y["label"].numpy() for _, y in labelled]), labels)
    kinds = np.concatenate([y["target_kind"].numpy() for _, y in labelled])
    np.testing.assert_allclose(kinds, np.tile(kd.describe(rule), (len(images), 1)))


def test_rednet_teachers_take_the_fused_taps_in_the_map(monkeypatch):
    calls = []
    real = involution_xla.involve
    monkeypatch.setattr(involution_xla, "involve", lambda *a, **k: calls.append(1) or real(*a, **k))
    teachers = _teachers()
    _, _, data = _batches()
    fused = next(iter(online.label_online(data, teachers, 4, SoftDistillation())))[1]["teacher"].numpy()
    assert calls  # traced with the XLA-fused taps
    with involution_xla.fused_taps(False):  # the portable taps give the same rows
        portable = teacher_target(teachers, next(iter(data))[0], 4, SoftDistillation()).numpy()
    np.testing.assert_allclose(fused, portable, atol=1e-5)


def test_the_stored_mode_step_on_labelled_batches_equals_the_online_step():
    """One training step on the same batch: the same loss and the same updated student."""
    teachers = _teachers()
    _, _, data = _batches()
    results = []
    for in_pipeline in (False, True):
        student = tiny_student()
        model = Distiller(student, SoftDistillation(4.0), teachers=None if in_pipeline else teachers)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        batches = online.label_online(data, teachers, 4, SoftDistillation(4.0)) if in_pipeline else data
        history = model.fit(batches.take(1), epochs=1, verbose=0).history
        results.append((history["loss"][0], [w.numpy() for w in student.weights]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for before, after in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(before, after, atol=1e-5)


def test_the_rule_puts_the_teachers_in_tf_data_on_one_cpu_replica():
    assert online.in_input_pipeline(replicas=1)  # this test machine has no GPU
    assert not online.in_input_pipeline(replicas=2)
    assert online.in_input_pipeline()  # the default strategy: one replica


def test_bad_teachers_and_class_counts_are_refused():
    _, _, data = _batches()
    with pytest.raises(ValueError, match=r"non-empty list \(or dict\) of keras.Model"):
        online.label_online(data, [], 4, HardDistillation())
    with pytest.raises(ValueError, match="predicts 4 classes but the student predicts 3"):
        online.label_online(data, _teachers(), 3, HardDistillation())


def test_train_student_gives_the_same_student_with_the_teachers_in_either_place(tmp_path, monkeypatch):
    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    teacher = resnet_cifar(depth=8, num_classes=3, input_shape=(8, 8, 3))
    recipe = baseline(
        distillation="soft", temperature=2.0, batch_size=12, warmup_epochs=0, precision="float32", epochs=2
    )
    common = dict(recipe=recipe, targets=OnlineTargets({"t": teacher}))
    seen, records = [], {}
    from libkd_keras.distill import training as training_module

    real_distiller_for = training_module.distiller_for

    def recording(recipe, student, teachers=None, **kwargs):
        seen.append(bool(teachers))
        return real_distiller_for(recipe, student, teachers, **kwargs)

    monkeypatch.setattr(training_module, "distiller_for", recording)
    for in_pipeline in (True, False):
        monkeypatch.setattr(sources_module, "in_input_pipeline", lambda: in_pipeline)
        name = f"in_pipeline_{in_pipeline}"
        records[in_pipeline] = train_student(
            _build(),
            train,
            test,
            tmp_path,
            name=name,
            options=FitOptions(verbose=0, compile_options={"jit_compile": False}),
            **common,
        )
    assert seen == [False, True]  # stored-mode Distiller with tf.data labelling, then teachers in the step
    np.testing.assert_allclose(records[True]["history"]["loss"], records[False]["history"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(records[True]["history"]["val_acc"], records[False]["history"]["val_acc"])
