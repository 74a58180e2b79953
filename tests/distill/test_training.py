"""`train_student`: resumable student training with a record keyed like the teachers'."""

import json

import keras
import numpy as np
import pytest

from libkd_keras.data import Split
from libkd_keras.distill import baseline, scaled_base_learning_rate, student_builder, train_student


def toy_split(n, split, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = (rng.integers(0, 80, (n, 8, 8, 3)) + 80 * labels[:, None, None, None]).astype(np.uint8)
    return Split(images, labels, np.arange(n), ("a", "b", "c"), "toy", split)


class Stop(keras.callbacks.Callback):
    def __init__(self, at=None):
        super().__init__()
        self.at, self.begun = at, []

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt
        self.begun.append(epoch)


def _build():
    return student_builder("deit_tiny", 3, 8, patch_size=4, model={"dim": 16, "depth": 1, "num_heads": 2})


def test_train_student_resumes_and_writes_a_teacher_like_record(tmp_path):
    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32")
    with pytest.raises(KeyboardInterrupt):
        train_student(
            _build(), train, test, tmp_path, recipe=recipe, epochs=2, name="b", callbacks=[Stop(1)], verbose=0
        )
    assert not (tmp_path / "b.keras").exists() and (tmp_path / "b.backup" / "training_metadata.json").exists()
    resumed = Stop()
    record = train_student(
        _build(),
        train,
        test,
        tmp_path,
        recipe=recipe,
        epochs=2,
        name="b",
        callbacks=[resumed],
        evaluate=True,
        verbose=0,
    )
    assert resumed.begun == [1] and record["history"]["epoch"] == [0, 1]
    assert json.loads((tmp_path / "b.json").read_text()) == record
    model = keras.saving.load_model(tmp_path / "b.keras")
    assert record["trainable_parameters"] == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert record["size_mb"] == pytest.approx(record["trainable_parameters"] * 4 / 2**20)
    assert record["top1_test_accuracy"] == record["evaluation"]["top1"] and record["evaluation"]["dist_top1"] is None
    assert record["distillation"] == "none" and record["teachers"] == [] and record["recipe"]["name"] == "baseline"
    assert not (tmp_path / "b.backup").exists()
    assert train_student(_build(), train, test, tmp_path, recipe=recipe, epochs=2, name="b", verbose=0) == record


def test_train_student_refuses_mismatched_teachers_and_sizes(tmp_path):
    train = toy_split(6, "train", 0)
    with pytest.raises(ValueError, match="distillation='none' goes with no teachers"):
        train_student(_build(), train, train, tmp_path, recipe=baseline(), epochs=1)
    with pytest.raises(ValueError, match="need the `store`"):
        train_student(_build(), train, train, tmp_path, recipe=baseline(), epochs=1, teachers=["t"])
    with pytest.raises(ValueError, match="does not divide the image size 8x8"):
        student_builder("deit_tiny", 3, 8, patch_size=3)
    with pytest.raises(ValueError, match="deit_micro"):
        student_builder("deit_huge", 3, 8)
    assert scaled_base_learning_rate(1e-3, 128) == pytest.approx(4e-3) and scaled_base_learning_rate(0, 128) is None
