"""Teacher training survives a kill while its backup is written, and refuses to record a NaN teacher."""

import os

import keras
import pytest

from libkd_keras.teachers import TeacherRecipe, train_teacher
from libkd_keras.training import FitOptions, TrainingDiverged
from tests.builders import tiny_cnn, toy_split
from tests.teachers.test_training import CountEpochs


def _train(tmp_path, train, test, recipe, callback, say=print):
    """The tiny teacher of these tests (seed 1) into `tmp_path`, with one callback."""
    options = FitOptions(callbacks=[callback], verbose=0, say=say)
    return train_teacher(tiny_cnn, train, test, tmp_path, seed=1, recipe=recipe, options=options)


def _interrupted_teacher(tmp_path, stop_at):
    train, test = toy_split(36, "train", 0), toy_split(12, "test", 1)
    recipe = TeacherRecipe(epochs=3, batch_size=12)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, train, test, recipe, CountEpochs(stop_at))
    return train, test, recipe, tmp_path / "tiny_cnn_seed1.backup"


def _cut_off(path):
    """What a kill in the middle of writing leaves: the first half of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_backup_cut_off_mid_write_resumes_from_the_previous_epoch(tmp_path):
    train, test, recipe, backup = _interrupted_teacher(tmp_path, stop_at=2)
    assert (backup / "latest.weights.h5.bkp").exists()  # double_checkpoint keeps the epoch before
    _cut_off(backup / "latest.weights.h5")
    notices, resumed = [], CountEpochs()
    meta = _train(tmp_path, train, test, recipe, resumed, say=notices.append)
    assert resumed.started == [1, 2]  # epoch 0 came from the previous backup
    assert len(notices) == 1 and "resuming from the epoch before" in notices[0]
    assert meta["history"]["epoch"] == [0, 1, 2]


def test_an_unreadable_backup_restarts_the_teacher_with_one_notice(tmp_path):
    train, test, recipe, backup = _interrupted_teacher(tmp_path, stop_at=1)
    assert not (backup / "latest.weights.h5.bkp").exists()  # one epoch: no previous state to fall back to
    _cut_off(backup / "latest.weights.h5")
    notices, resumed = [], CountEpochs()
    meta = _train(tmp_path, train, test, recipe, resumed, say=notices.append)
    assert resumed.started == [0, 1, 2] and meta["history"]["epoch"] == [0, 1, 2]
    assert len(notices) == 1 and "starts again from its first epoch" in notices[0]


def nan_cnn(num_classes, input_shape):
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(float("nan"))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name="nan_cnn")


def test_a_teacher_whose_loss_went_nan_is_not_saved(tmp_path):
    split = toy_split(12, "train", 0)
    with pytest.raises(TrainingDiverged, match="NaN|nan|None") as error:
        train_teacher(
            nan_cnn,
            split,
            split,
            tmp_path,
            recipe=TeacherRecipe(epochs=2, batch_size=12),
            options=FitOptions(verbose=0),
        )
    assert "learning rate" in str(error.value)
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".keras", ".json"))]


def test_a_teacher_interrupted_under_the_old_history_file_resumes_with_its_history_whole(tmp_path):
    """A teacher stopped by libkd <= 0.x kept `<name>.history.json` (names `accuracy`, ...) beside its backup."""
    import json

    train, test, recipe, backup = _interrupted_teacher(tmp_path, stop_at=2)
    new = tmp_path / "logs" / "tiny_cnn_seed1" / "epochs.json"
    epochs = json.loads(new.read_text())
    assert sorted(epochs) == ["0", "1"] and "acc" in epochs["0"] and "val_top5" in epochs["0"]
    old_names = {"acc": "accuracy", "top5": "top5_accuracy", "val_acc": "val_accuracy", "val_top5": "val_top5_accuracy"}
    old = {e: {old_names.get(k, k): v for k, v in entry.items()} for e, entry in epochs.items()}
    (tmp_path / "tiny_cnn_seed1.history.json").write_text(json.dumps(old))  # the layout today's main leaves
    new.unlink()
    resumed = CountEpochs()
    meta = _train(tmp_path, train, test, recipe, resumed)
    assert resumed.started == [2] and meta["history"]["epoch"] == [0, 1, 2]
    assert not (tmp_path / "tiny_cnn_seed1.history.json").exists() and new.is_file()
    assert meta["history"]["val_acc"][:2] == [epochs[e]["val_acc"] for e in ("0", "1")]  # the old epochs, renamed
    assert meta["history"]["time_s"][:2] == [epochs[e]["time_s"] for e in ("0", "1")]
    assert not {"accuracy", "val_accuracy", "top5_accuracy"} & set(meta["history"])
    assert meta["training_time_s"] == pytest.approx(sum(meta["history"]["time_s"]))


def test_a_fresh_start_drops_an_old_history_file(tmp_path):
    """Without a backup there is no epoch to resume, so a history left beside it is stale, old name or new."""
    train, test = toy_split(12, "train", 0), toy_split(6, "test", 1)
    (tmp_path / "tiny_cnn_seed0.history.json").write_text('{"0": {"loss": 9.0}, "1": {"loss": 9.0}}')
    meta = train_teacher(
        tiny_cnn, train, test, tmp_path, recipe=TeacherRecipe(epochs=1, batch_size=12), options=FitOptions(verbose=0)
    )
    assert meta["history"]["epoch"] == [0] and meta["history"]["loss"][0] != 9.0
    assert not (tmp_path / "tiny_cnn_seed0.history.json").exists()
