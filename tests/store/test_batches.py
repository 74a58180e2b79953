"""Store batches: the id join refuses ids the store lacks, and every batch says what kind of target it holds."""

import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.data import Split
from libkd_keras.distill import HardDistillation, SoftDistillation
from libkd_keras.store import StoreError, TeacherStore
from libkd_keras.store.read import _checked_join, join_positions
from tests.store.helpers import encode_ids


def test_join_positions_finds_every_id_and_names_the_missing_ones():
    stored = np.array([7, 10, 13, 16], np.int64)
    np.testing.assert_array_equal(join_positions(stored, [16, 7, 13], "s"), [3, 0, 2])
    with pytest.raises(StoreError, match=r"2 example id\(s\) are not in store 's' \(first: \[11, 99\]\)"):
        join_positions(stored, [7, 11, 99], "s")  # 11 falls between rows, 99 past the end
    with pytest.raises(StoreError, match=r"\[3\]"):
        join_positions(np.array([], np.int64), [3], "s")


def test_the_graph_join_asserts_that_the_id_found_is_the_id_looked_for():
    stored = tf.constant([7, 10, 13], tf.int64)
    np.testing.assert_array_equal(_checked_join(stored, tf.constant([13, 7], tf.int64), "s"), [2, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"An example id is not in store.*\[8\]"):
        tf.function(lambda ids: _checked_join(stored, ids, "s"))(tf.constant([8], tf.int64))


def test_a_split_with_an_id_the_store_lacks_is_refused_even_if_it_passes_the_checks(store, split, monkeypatch):
    ids = split.ids.copy()
    ids[3] = 8  # not a stored id (stored ids are 7, 10, 13, ...): it used to get row 4's teacher target
    other = Split(encode_ids(ids), split.labels, ids, split.class_names, "toy", "train")
    monkeypatch.setattr(TeacherStore, "check_matches", lambda self, split: None)  # as if the check were fooled
    with pytest.raises(StoreError, match=r"1 example id\(s\) are not in store .* \(first: \[8\]\)"):
        store.dataset(HardDistillation(), split=other)


@pytest.mark.parametrize(
    "rule,kd,expected",
    [
        ("soft", HardDistillation(), [0.0, 0.0, 0.0]),
        ("soft", SoftDistillation(4.0), [1.0, 4.0, 0.0]),
        ("vote", HardDistillation(), [0.0, 0.0, 1.0]),
        ("vote", SoftDistillation(2.0), [1.0, 0.0, 1.0]),  # vote fractions do not depend on T
    ],
)
def test_every_batch_row_describes_its_target(store, rule, kd, expected):
    assert kd.describe(rule) == expected
    ds = store.dataset(kd, ensemble=rule, batch_size=16)
    for _, y in ds.take(2):
        assert y["target_kind"].dtype == tf.float32 and y["target_kind"].shape == (16, 3)
        np.testing.assert_array_equal(y["target_kind"].numpy(), np.tile(expected, (16, 1)))


def test_bad_target_arguments_name_them(store):
    with pytest.raises(ValueError, match="`ensemble`"):
        store.dataset(HardDistillation(), ensemble="median")
    with pytest.raises(ValueError, match=r"distillation whose target rows to read.*got 'soft'"):
        store.dataset("soft")
    with pytest.raises(
        TypeError, match=r"\['target', 'temperature'\].*dataset\(SoftDistillation\(temperature\), ...\)"
    ):
        store.dataset(HardDistillation(), target="soft", temperature=4.0)  # the keywords of before
