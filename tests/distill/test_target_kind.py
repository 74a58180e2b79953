"""The Distiller refuses teacher rows of another kind than its loss (`target_kind`), unless told to mix."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.distill import Distiller, HardDistillation, SoftDistillation
from tests.builders import tiny_resnet
from tests.distill.helpers import NUM_CLASSES, SIZE, colour_data, tiny_student


class CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def kind_dataset(kd, rule="soft", n=16, batch_size=8):
    """Store-format batches whose rows say they are `kd.target(logits, rule)` rows."""
    images, labels, teacher = colour_data(n)
    kind = np.tile(kd.describe(rule), (n, 1)).astype("float32")
    y = {"label": labels, "teacher": teacher, "target_kind": kind}
    return tf.data.Dataset.from_tensor_slices((images, y)).batch(batch_size), images, y


def distiller(kd, run_eagerly=True, **kwargs):
    model = Distiller(tiny_student(), kd, **kwargs)
    model.compile(optimizer="adam", run_eagerly=run_eagerly)
    return model


@pytest.mark.parametrize(
    "kd,stored,found,eager",
    [
        (SoftDistillation(4.0), HardDistillation(), "hard targets", False),  # one compiled step: checked in tf.data
        (SoftDistillation(4.0), SoftDistillation(1.0), "soft targets at T=1", True),
        (HardDistillation(), SoftDistillation(4.0), "soft targets at T=4", True),
    ],
)
def test_a_target_of_the_wrong_kind_is_refused_before_any_step(kd, stored, found, eager):
    data, _, _ = kind_dataset(stored)
    counter = CountBatches()
    with pytest.raises(
        ValueError, match=rf"Distiller's {re.escape(repr(kd))} trains .*batches hold {found}.*check_target_kind=False"
    ) as error:
        distiller(kd, eager).fit(data, callbacks=[counter], verbose=0)
    assert f"store.dataset({kd!r}, ...)" in str(error.value) and counter.batches == 0


def test_evaluate_in_memory_targets_and_validation_data_are_checked_too():
    data, images, y = kind_dataset(HardDistillation())
    model = distiller(SoftDistillation(4.0))
    with pytest.raises(ValueError, match="batches hold hard targets"):
        model.evaluate(data, verbose=0)
    with pytest.raises(ValueError, match="batches hold hard targets"):
        model.fit(images, y, batch_size=8, verbose=0)
    good, _, _ = kind_dataset(SoftDistillation(4.0))
    with pytest.raises(ValueError, match="batches hold hard targets"):
        model.fit(good, validation_data=data, verbose=0)


def test_matching_kinds_train_and_deliberate_mixes_are_allowed():
    for stored, rule in ((SoftDistillation(4.0), "soft"), (SoftDistillation(1.0), "vote")):  # votes fit any T
        data, _, _ = kind_dataset(stored, rule)
        assert np.isfinite(distiller(SoftDistillation(4.0)).fit(data, verbose=0).history["loss"][0])
    hard, _, _ = kind_dataset(HardDistillation())
    mixed = distiller(SoftDistillation(4.0), check_target_kind=False)
    assert np.isfinite(mixed.fit(hard, verbose=0).history["loss"][0])
    assert Distiller.from_config(mixed.get_config()).check_target_kind is False


def test_online_mode_and_the_plain_student_do_not_read_the_stored_kind():
    data, _, _ = kind_dataset(HardDistillation())
    online = distiller(SoftDistillation(4.0), teachers=[tiny_resnet(NUM_CLASSES, SIZE)])
    assert np.isfinite(online.fit(data, verbose=0).history["loss"][0])
    plain = distiller(None)
    assert np.isfinite(plain.fit(data, verbose=0).history["loss"][0])
