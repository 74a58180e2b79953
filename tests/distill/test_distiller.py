"""The Distiller: training, metrics, validation, saving, online teachers, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import libkd_keras
from libkd_keras.distill import Distiller, HardDistillation, SoftDistillation, losses
from libkd_keras.models import DeiT
from tests.builders import tiny_resnet
from tests.distill.helpers import NUM_CLASSES, SIZE, colour_data, store_dataset, tiny_student

METRICS = {"loss", "label_loss", "distill_loss", "cls_acc", "dist_acc", "acc", "cls_top5", "dist_top5", "top5"}


class CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def compiled(distiller, learning_rate=3e-3, run_eagerly=False):
    # Tracing a train step costs more than a few eager steps of a tiny model: tests run eagerly
    # except the module's one graph-mode fit (`trained`) and the trace-time checks.
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), run_eagerly=run_eagerly)
    return distiller


@pytest.fixture(scope="module")
def trained():
    """A hard-distillation run in graph mode with validation on plain (image, label) data."""
    images, labels, teacher = colour_data(64)
    distiller = compiled(Distiller(tiny_student(), HardDistillation()))
    validation = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    history = distiller.fit(store_dataset(images, labels, teacher), epochs=4, verbose=0, validation_data=validation)
    return distiller, history.history, images, labels


def test_package_reexports_distiller():
    assert libkd_keras.Distiller is Distiller


def test_fit_lowers_the_loss_and_logs_every_metric_with_validation(trained):
    distiller, history, images, labels = trained
    assert history["loss"][-1] < history["loss"][0] - 0.05
    assert METRICS <= set(history)
    assert {f"val_{m}" for m in METRICS} <= set(history)
    # Validation on (image, label): the loss is the true-label term, `val_acc` the inference accuracy.
    assert history["val_loss"] == pytest.approx(history["val_label_loss"])
    predicted = distiller.student.predict(images, verbose=0).argmax(-1)
    assert history["val_acc"][-1] == pytest.approx(float((predicted == labels).mean()), abs=1e-6)


@pytest.mark.parametrize("kd", [SoftDistillation(2.0), None])
def test_a_few_steps_lower_the_loss_in_the_other_modes(kd):
    images, labels, teacher = colour_data(32)
    data = store_dataset(images, labels, teacher, batch_size=32)
    distiller = compiled(Distiller(tiny_student(), kd), run_eagerly=True)
    before = distiller.evaluate(data, return_dict=True, verbose=0)
    distiller.fit(data, epochs=4, verbose=0)
    after = distiller.evaluate(data, return_dict=True, verbose=0)
    assert after["loss"] < before["loss"] - 0.05
    assert after["distill_loss"] > 0


def test_evaluate_in_the_store_format_reports_the_weighted_loss():
    images, labels, teacher = colour_data(32)
    distiller = compiled(Distiller(tiny_student(), HardDistillation(), alpha=0.5), run_eagerly=True)
    plain = distiller.evaluate(images, labels, batch_size=32, return_dict=True, verbose=0)
    stored = distiller.evaluate(store_dataset(images, labels, teacher, 32), return_dict=True, verbose=0)
    assert plain["loss"] == pytest.approx(plain["label_loss"])
    assert stored["label_loss"] == pytest.approx(plain["label_loss"], rel=1e-5)
    assert stored["loss"] == pytest.approx(0.5 * stored["label_loss"] + 0.5 * stored["distill_loss"], rel=1e-5)
    assert plain["acc"] == pytest.approx(stored["acc"])


def test_plain_student_without_distillation_token_trains_through_the_same_entry_point():
    images, labels, _ = colour_data(32)
    distiller = compiled(Distiller(tiny_student(distillation=False), kd=None), run_eagerly=True)
    history = distiller.fit(images, labels, batch_size=16, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["cls_acc"] == history["acc"]  # one head: the average is that head
    assert history["distill_loss"] == [0.0, 0.0, 0.0]


def test_student_saved_from_a_distiller_loads_alone_and_predicts_the_same(trained, tmp_path):
    distiller, _, images, _ = trained
    distiller.student.save(tmp_path / "student.keras")
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    assert type(loaded) is DeiT and len(loaded.weights) == len(distiller.student.weights)
    expected = distiller.student(images, training=False)
    np.testing.assert_allclose(loaded(images, training=False), expected, atol=1e-5)
    np.testing.assert_allclose(distiller.predict(images, verbose=0), expected, atol=1e-5)


def test_distiller_saves_student_and_settings_but_never_the_online_teachers(tmp_path):
    images, labels, _ = colour_data(16)
    student = tiny_student()
    teacher = tiny_resnet(NUM_CLASSES, SIZE)
    distiller = compiled(
        Distiller(student, SoftDistillation(2.0), alpha=0.3, teachers=[teacher], teacher_ensemble="vote"),
        run_eagerly=True,
    )
    distiller.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    assert len(distiller.weights) == len(student.weights)  # the teacher is not tracked
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.saving.load_model(tmp_path / "distiller.keras")
    assert isinstance(loaded, Distiller) and loaded.teachers == ()
    settings = (loaded.alpha, loaded.kd, loaded.teacher_ensemble)
    assert settings == (0.3, SoftDistillation(2.0), "vote")
    assert len(loaded.weights) == len(student.weights)
    np.testing.assert_allclose(loaded.student(images), distiller.student(images), atol=1e-5)


@pytest.mark.parametrize("kd,rule", [(HardDistillation(), "soft"), (SoftDistillation(2.0), "vote")])
def test_online_teachers_give_the_loss_of_their_ensemble_target_and_stay_frozen(kd, rule):
    images, labels, _ = colour_data(16)
    teachers = [tiny_resnet(NUM_CLASSES, SIZE), tiny_resnet(NUM_CLASSES, SIZE)]
    frozen = [[w.numpy().copy() for w in t.weights] for t in teachers]
    distiller = compiled(Distiller(tiny_student(), kd, teachers=teachers, teacher_ensemble=rule), run_eagerly=True)
    logits = np.stack([t(images, training=False) for t in teachers], axis=1)
    target = kd.target(logits, rule)
    online = distiller.evaluate(images, labels, batch_size=16, return_dict=True, verbose=0)
    stored_mode = compiled(Distiller(distiller.student, kd), run_eagerly=True)
    stored = stored_mode.evaluate(
        store_dataset(images, labels, keras.ops.convert_to_numpy(target)), return_dict=True, verbose=0
    )
    assert online["loss"] == pytest.approx(stored["loss"], rel=1e-5)
    distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)  # BatchNorm would move in training mode
    for teacher, before in zip(teachers, frozen):
        for weight, value in zip(teacher.weights, before):
            np.testing.assert_array_equal(weight.numpy(), value)


def test_mixed_bfloat16_student_keeps_float32_heads_and_losses():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    images, labels, teacher = colour_data(32)
    distiller = compiled(Distiller(tiny_student(), SoftDistillation()), run_eagerly=True)
    cls, dist = distiller(images[:2], training=True)
    assert keras.backend.standardize_dtype(cls.dtype) == keras.backend.standardize_dtype(dist.dtype) == "float32"
    history = distiller.fit(store_dataset(images, labels, teacher), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(alpha=-0.1), "alpha"),
        (dict(alpha=1.5), "alpha"),
        (dict(kd="medium"), "kd"),
        (dict(kd=losses.HardDistillation), "kd"),  # the class, not an object
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(teacher_ensemble="median"), "teacher_ensemble"),
        (dict(teachers=[]), "teachers"),
        (dict(teachers=["resnet26"]), "teachers"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        Distiller(tiny_student(), **kwargs)


@pytest.mark.parametrize("kd", [HardDistillation(), SoftDistillation(4.0)])
def test_student_without_distillation_token_is_refused_for_distillation(kd):
    with pytest.raises(ValueError, match="`student` has no distillation token"):
        Distiller(tiny_student(distillation=False), kd)


def test_online_teacher_with_other_class_count_and_teachers_in_none_mode_are_refused():
    with pytest.raises(ValueError, match="predicts 5 classes.*student predicts 4"):
        Distiller(tiny_student(), teachers=[tiny_resnet(5, SIZE)])
    with pytest.raises(ValueError, match="`teachers`"):
        Distiller(tiny_student(), kd=None, teachers=[tiny_resnet(NUM_CLASSES, SIZE)])


def test_compile_refuses_a_loss_or_metrics():
    with pytest.raises(ValueError, match="computes its own loss"):
        Distiller(tiny_student()).compile(optimizer="adam", loss="categorical_crossentropy")


def test_batch_without_teacher_in_stored_mode_says_how_to_build_the_dataset():
    images, labels, _ = colour_data(16)
    distiller = compiled(Distiller(tiny_student(), HardDistillation()))
    counter = CountBatches()
    with pytest.raises(ValueError, match=r"no 'teacher' entry.*TeacherStore\.open\(path\)\.dataset"):
        distiller.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(8), callbacks=[counter], verbose=0)
    assert counter.batches == 0
    with pytest.raises(ValueError, match="TeacherStore"):  # numpy input: caught when the step is traced
        distiller.fit(images, labels, batch_size=8, verbose=0)


def test_class_count_mismatch_fails_at_the_start_of_fit_naming_both():
    images, labels, _ = colour_data(16)
    teacher = np.eye(10, dtype="float32")[labels]
    distiller = compiled(Distiller(tiny_student(), HardDistillation()))
    counter = CountBatches()
    with pytest.raises(ValueError, match="student predicts 4 classes but the teacher targets .* have 10"):
        distiller.fit(store_dataset(images, labels, teacher), callbacks=[counter], verbose=0)
    assert counter.batches == 0
    with pytest.raises(ValueError, match="student predicts 4 classes but the teacher targets .* have 10"):
        distiller.fit(images, {"label": labels, "teacher": teacher}, batch_size=8, verbose=0)
