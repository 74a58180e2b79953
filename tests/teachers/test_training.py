import json
import os

import keras
import numpy as np
import pytest

from libkd_keras.teachers import L2SGD, TeacherRecipe, teacher_schedule, train_teacher
from libkd_keras.training import FitOptions
from tests.builders import tiny_cnn, toy_split


class CountEpochs(keras.callbacks.Callback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.started, self.stop_at = [], stop_at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at:
            raise KeyboardInterrupt("simulated interruption")
        self.started.append(epoch)


def test_recipe_scales_the_learning_rate_and_decays_it_by_cosine():
    recipe = TeacherRecipe(epochs=10, batch_size=256)
    assert recipe.scaled_learning_rate == pytest.approx(0.2)
    schedule = teacher_schedule(recipe, steps_per_epoch=5)
    assert float(schedule(0)) == pytest.approx(0.2) and float(schedule(25)) == pytest.approx(0.1)
    assert float(schedule(50)) == pytest.approx(0.0, abs=1e-7)
    warm = teacher_schedule(TeacherRecipe(epochs=10, warmup_epochs=2), steps_per_epoch=5)
    assert float(warm(0)) == 0.0 and float(warm(10)) == pytest.approx(0.1)
    capped = teacher_schedule(TeacherRecipe(epochs=2, warmup_epochs=5), steps_per_epoch=5)  # warm-up: 1 epoch
    assert float(capped(5)) == pytest.approx(0.1) and float(capped(10)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="epochs"):
        TeacherRecipe(epochs=0)
    with pytest.raises(ValueError, match="random_erasing"):
        TeacherRecipe(epochs=10, random_erasing=-0.1)


def test_l2sgd_adds_weight_decay_to_the_gradient_before_momentum():
    w = keras.Variable(np.array([2.0, -1.0], "float32"))
    optimizer = L2SGD(learning_rate=0.1, momentum=0.9, l2=0.5)
    g = np.array([0.3, 0.3], "float32")
    optimizer.apply([g], [w])  # velocity = -lr (g + l2 w); w += velocity
    v1 = -0.1 * (g + 0.5 * np.array([2.0, -1.0]))
    np.testing.assert_allclose(w.numpy(), [2.0, -1.0] + v1, rtol=1e-6)
    w_before = w.numpy().copy()
    optimizer.apply([g], [w])
    v2 = 0.9 * v1 - 0.1 * (g + 0.5 * w_before)
    np.testing.assert_allclose(w.numpy(), w_before + v2, rtol=1e-6)
    assert L2SGD.from_config(optimizer.get_config()).l2 == 0.5


def test_train_teacher_resumes_saves_model_and_metadata_and_skips_when_done(tmp_path):
    train, test = toy_split(36, "train", 0), toy_split(12, "test", 1)
    recipe = TeacherRecipe(epochs=2, batch_size=12)
    interrupted = CountEpochs(stop_at=1)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(
            tiny_cnn,
            train,
            test,
            tmp_path,
            seed=3,
            recipe=recipe,
            options=FitOptions(callbacks=[interrupted], verbose=0),
        )
    assert interrupted.started == [0]
    assert not {"tiny_cnn_seed3.keras", "tiny_cnn_seed3.json"} & set(os.listdir(tmp_path))

    resumed = CountEpochs()
    meta = train_teacher(
        tiny_cnn, train, test, tmp_path, seed=3, recipe=recipe, options=FitOptions(callbacks=[resumed], verbose=0)
    )
    assert resumed.started == [1]  # epoch 0 came from the BackupAndRestore checkpoint
    assert meta["history"]["epoch"] == [0, 1] and len(meta["history"]["val_acc"]) == 2
    assert not os.path.exists(tmp_path / "tiny_cnn_seed3.backup")
    assert os.listdir(tmp_path / "logs" / "tiny_cnn_seed3")  # TensorBoard logs

    with open(tmp_path / "tiny_cnn_seed3.json") as f:
        assert json.load(f) == meta
    for key in (
        "architecture",
        "seed",
        "dataset",
        "top1_test_accuracy",
        "top5_test_accuracy",
        "train_accuracy",
        "training_time_s",
        "trainable_parameters",
        "size_mb",
        "epochs",
        "history",
    ):
        assert key in meta
    assert meta["seed"] == 3 and meta["dataset"]["fingerprint"] == train.fingerprint and meta["epochs"] == 2
    model = keras.models.load_model(tmp_path / "tiny_cnn_seed3.keras")
    assert meta["trainable_parameters"] == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert meta["size_mb"] == pytest.approx(meta["trainable_parameters"] * 4 / 2**20)
    predictions = model.predict(test.images.astype("float32"), verbose=0)
    assert meta["top1_test_accuracy"] == pytest.approx(np.mean(predictions.argmax(1) == test.labels))
    assert meta["top5_test_accuracy"] == 1.0  # 3 classes: top-k with k = 3

    skipped = CountEpochs()
    assert (
        train_teacher(
            tiny_cnn, train, test, tmp_path, seed=3, recipe=recipe, options=FitOptions(callbacks=[skipped], verbose=0)
        )
        == meta
    )
    assert skipped.started == []
    with pytest.raises(ValueError, match="trained on"):
        train_teacher(
            tiny_cnn, toy_split(36, "train", 5), test, tmp_path, seed=3, recipe=recipe, options=FitOptions(verbose=0)
        )


def test_unknown_architecture_is_refused(tmp_path):
    split = toy_split(6, "train", 0)
    with pytest.raises(ValueError, match="resnet26"):
        train_teacher("vgg16", split, split, tmp_path)


def test_validate_every_scores_the_teacher_on_those_epochs_and_the_last(tmp_path):
    train, test = toy_split(36, "train", 0), toy_split(12, "test", 1)
    recipe = TeacherRecipe(epochs=4, batch_size=12, validate_every=3)
    meta = train_teacher(tiny_cnn, train, test, tmp_path, recipe=recipe, options=FitOptions(verbose=0))
    accuracy = meta["history"]["val_acc"]
    assert [a is not None for a in accuracy] == [False, False, True, True]
    assert meta["top1_test_accuracy"] == pytest.approx(accuracy[-1])
    with pytest.raises(ValueError, match="validate_every"):
        TeacherRecipe(epochs=4, validate_every=0)


def test_a_teacher_stopped_and_resumed_trains_to_the_weights_of_the_run_never_stopped(tmp_path):
    """Issue 36 (5): each epoch's order and crop/flip come from (seed, epoch), not from the process's history."""
    train, test = toy_split(30, "train", 0), toy_split(6, "test", 1)
    recipe = TeacherRecipe(epochs=3, batch_size=12)
    assert recipe.augment
    common = dict(seed=3, recipe=recipe)
    train_teacher(tiny_cnn, train, test, tmp_path / "straight", options=FitOptions(verbose=0), **common)
    with pytest.raises(KeyboardInterrupt):
        stop = FitOptions(callbacks=[CountEpochs(stop_at=1)], verbose=0)
        train_teacher(tiny_cnn, train, test, tmp_path / "resumed", options=stop, **common)
    resumed = CountEpochs()
    train_teacher(
        tiny_cnn, train, test, tmp_path / "resumed", options=FitOptions(callbacks=[resumed], verbose=0), **common
    )
    assert resumed.started == [1, 2]
    weights = [
        keras.models.load_model(tmp_path / f / "tiny_cnn_seed3.keras").get_weights() for f in ("straight", "resumed")
    ]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
