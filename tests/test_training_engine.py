"""The one training engine (`libkd_keras.training`): teachers and students share its steps, files and keys."""

import json

import keras
import pytest

from libkd_keras.distill import baseline, train_student
from libkd_keras.teachers import TeacherRecipe, train_teacher
from libkd_keras.training import RECORD_KEYS, Artifact, FitOptions, FitSettings, current_metric
from tests.distill.test_training import _build as tiny_deit
from tests.teachers.test_training import tiny_cnn, toy_split


class Steps(keras.callbacks.Callback):
    """The optimizer's step count at the end of every epoch, and whether the train step was XLA-compiled."""

    def __init__(self):
        super().__init__()
        self.iterations, self.jit = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.iterations.append(int(self.model.optimizer.iterations))
        self.jit.append(self.model.jit_compile)


def test_one_epoch_without_xla_makes_ceil_n_over_batch_optimizer_steps(tmp_path):
    """Issue 34: a pipeline that lost its length made Keras run one step past every epoch's end outside XLA."""
    train, test = toy_split(30, "train", 0), toy_split(6, "test", 1)  # 30 / 12: batches of 12, 12 and 6
    teacher, student = Steps(), Steps()
    options = FitOptions(callbacks=[teacher], verbose=0)
    train_teacher(tiny_cnn, train, test, tmp_path, recipe=TeacherRecipe(epochs=2, batch_size=12), options=options)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=2)
    options = FitOptions(callbacks=[student], compile_options={"jit_compile": False})
    train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, options=options)
    assert teacher.jit == student.jit == [False, False]  # a teacher on a CPU: Keras' "auto" is no XLA
    assert teacher.iterations == student.iterations == [3, 6]


def test_a_students_auto_xla_is_the_librarys_choice_in_the_api_as_in_the_pipeline(tmp_path):
    """Keras' own "auto" turns XLA off on a CPU-only machine; train_student's "auto" is `xla.student_jit_compile`'s:
    on for a student from stored targets or alone (which the pipeline measured faster on CPUs too), and False
    stays False."""
    train, test = toy_split(12, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=1)
    auto, off = Steps(), Steps()
    train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, name="auto", options=FitOptions(callbacks=[auto]))
    options = FitOptions(callbacks=[off], compile_options={"jit_compile": False})
    train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, name="off", options=options)
    assert auto.jit == [True] and off.jit == [False]


def test_teachers_and_students_write_one_history_file_and_the_same_record_keys(tmp_path):
    train, test = toy_split(12, "train", 0), toy_split(6, "test", 1)
    quiet = FitOptions(verbose=0)
    teacher = train_teacher(
        tiny_cnn, train, test, tmp_path, recipe=TeacherRecipe(epochs=1, batch_size=12), options=quiet
    )
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=1)
    student = train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, name="s", options=quiet)
    for record, kind in ((teacher, "teacher"), (student, "student")):
        assert set(RECORD_KEYS) <= set(record), kind
        assert {"acc", "top5", "val_acc", "val_top5", "loss", "time_s"} <= set(record["history"]), kind
        artifact = Artifact(tmp_path, record["name"], kind)
        assert json.loads(open(artifact.history).read())["0"]["acc"] == record["history"]["acc"][0]
        assert record["tensorboard_dir"] == f"logs/{record['name']}" and artifact.finished()
        assert record["top1_test_accuracy"] == record["history"]["val_acc"][-1]
        assert record["train_accuracy"] == record["history"]["acc"][-1]
    assert teacher["precision"] == student["precision"] == "float32"


def test_the_dtype_policy_is_put_back_and_bad_settings_are_refused(tmp_path):
    train, test = toy_split(12, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="mixed_bfloat16", epochs=1)
    before = keras.mixed_precision.dtype_policy().name
    record = train_student(
        tiny_deit(), train, test, tmp_path, recipe=recipe, name="bf16", options=FitOptions(verbose=0)
    )
    assert record["precision"] == "mixed_bfloat16" and keras.mixed_precision.dtype_policy().name == before
    assert current_metric("val_top5_accuracy") == "val_top5" and current_metric("accuracy") == "acc"
    assert current_metric("val_label_loss") == "val_label_loss"
    with pytest.raises(ValueError, match="epochs"):
        FitSettings(0)
    with pytest.raises(ValueError, match="validate_every"):
        FitSettings(3, validate_every=0)
    with pytest.raises(ValueError, match="jit_compile"):
        FitSettings(3, jit_compile="yes")


def test_a_keyword_of_before_names_where_its_setting_is_given_now(tmp_path):
    """`train_student(..., epochs=, callbacks=, ...)` and the like: a TypeError saying where each setting went."""
    train, test = toy_split(12, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12)
    with pytest.raises(TypeError, match=r"epochs= -> recipe=recipe.replace\(epochs=...\)"):
        train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, epochs=1)
    with pytest.raises(
        TypeError, match=r"backup_dir= -> out_dir=Artifact\(.*extra_record= -> options=FitOptions\(record"
    ):
        train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, backup_dir="b", extra_record={})
    with pytest.raises(TypeError, match=r"verbose= -> options=FitOptions\(verbose=...\)"):
        train_teacher(tiny_cnn, train, test, tmp_path, verbose=0)
    with pytest.raises(ValueError, match="differs from the Artifact's name"):
        train_student(tiny_deit(), train, test, Artifact(tmp_path, "a"), recipe=recipe, name="b")
    with pytest.raises(TypeError, match="FitOptions"):
        train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, options={"verbose": 0})
    with pytest.raises(ValueError, match=r"may not set \['optimizer'\]"):
        FitOptions(compile_options={"optimizer": "sgd"})
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_an_artifact_puts_the_backup_and_logs_where_it_names_and_fit_options_reach_the_record(tmp_path):
    train, test = toy_split(12, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=1)
    artifact = Artifact(tmp_path / "models", "s", backup_dir=tmp_path / "ckpt", log_dir=tmp_path / "logs")
    options = FitOptions(verbose=0, validate=False, record={"entry": "mine"})
    record = train_student(tiny_deit(), train, test, artifact, recipe=recipe, options=options)
    assert record["name"] == "s" and record["entry"] == "mine" and record["epochs"] == recipe.epochs == 1
    assert record["recipe"]["epochs"] == 1 and "val_acc" not in record["history"]  # validate=False
    assert (tmp_path / "logs" / "epochs.json").is_file() and not (tmp_path / "models" / "logs").exists()
    assert (tmp_path / "models" / "s.keras").is_file() and not (tmp_path / "ckpt").exists()  # backup discarded
    again = train_student(tiny_deit(), train, test, artifact, recipe=recipe, options=options)
    assert again == record  # finished: read back
    redone = train_student(
        tiny_deit(), train, test, artifact, recipe=recipe, options=FitOptions(verbose=0, overwrite=True)
    )
    assert redone["created"] >= record["created"] and "entry" not in redone  # trained again
