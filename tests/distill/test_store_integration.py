"""End to end through the real store: precompute teacher logits, read them back, distil."""

import numpy as np
import pytest

from libkd_keras.data import Split
from libkd_keras.distill import (
    Distiller,
    HardDistillation,
    SoftDistillation,
    distiller_for,
    student_augmentation,
    student_optimizer,
    superior,
)
from libkd_keras.store import TeacherStore, precompute
from tests.builders import tiny_resnet
from tests.distill.helpers import NUM_CLASSES, SIZE, colour_data, tiny_student


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    images, labels, _ = colour_data(32)
    split = Split(images.astype(np.uint8), labels, np.arange(len(labels)), tuple("abcd"), "colours", "train")
    teachers = {"resnet": tiny_resnet(NUM_CLASSES, SIZE), "resnet_b": tiny_resnet(NUM_CLASSES, SIZE)}
    path = tmp_path_factory.mktemp("store") / "teachers"
    precompute(teachers, split, path, dtype="float32", batch_size=32)
    return TeacherStore.open(path, expect=split)


def test_distiller_trains_from_the_store_through_the_superior_augmentation(store):
    recipe = superior(batch_size=16)
    train = student_augmentation(
        store.dataset(recipe.kd, teachers=["resnet", "resnet_b"], batch_size=16), recipe, NUM_CLASSES, seed=0
    )
    distiller = distiller_for(recipe, tiny_student())
    distiller.compile(optimizer=student_optimizer(recipe, steps_per_epoch=2, epochs=1), run_eagerly=True)
    history = distiller.fit(train, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["distill_loss"][0] > 0


def test_a_store_with_other_classes_fails_at_the_start_of_fit(store):
    distiller = Distiller(tiny_student(num_classes=NUM_CLASSES + 1), HardDistillation())
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match=f"student predicts {NUM_CLASSES + 1} classes.*have {NUM_CLASSES}"):
        distiller.fit(store.dataset(HardDistillation(), teachers=["resnet"], batch_size=16), verbose=0)


def test_soft_distillation_on_hard_store_rows_fails_through_the_recipe_augmentation(store):
    recipe = superior(batch_size=16, distillation="soft", temperature=4.0)
    train = student_augmentation(
        store.dataset(HardDistillation(), teachers=["resnet"], batch_size=16), recipe, NUM_CLASSES, seed=0
    )  # MixUp/CutMix, repeats: the kind row survives
    distiller = distiller_for(recipe, tiny_student())
    distiller.compile(optimizer="adam", run_eagerly=True)
    with pytest.raises(ValueError, match=r"temperature=4\) trains on soft targets at T=4, but the batches hold hard"):
        distiller.fit(train, epochs=1, verbose=0)
    data = store.dataset(SoftDistillation(4.0), teachers=["resnet"], batch_size=16)
    distiller = distiller_for(recipe, tiny_student())
    distiller.compile(optimizer="adam", run_eagerly=True)
    history = distiller.fit(student_augmentation(data, recipe, NUM_CLASSES, seed=0), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
