"""`rebuild_store` rebuilds a damaged store; the old one is replaced only once the new one is whole."""

import os

import numpy as np
import pytest

from libkd_keras.store import StoreError, TeacherStore, precompute, rebuild_store, write
from tests.store.helpers import TableTeacher, make_split


def siblings(path):
    return sorted(n for n in os.listdir(path.parent) if n != path.name)


@pytest.fixture
def damaged(tmp_path, tables):
    """A store of alpha whose second teacher shard lost bytes, and the split it was computed on."""
    split, path = make_split(), tmp_path / "s"
    store = precompute({"alpha": TableTeacher(tables["alpha"])}, split, path, shard_size=16)
    shard = path / store.manifest["teachers"]["alpha"]["shards"][1]["file"]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 5)
    return split, path


def test_a_damaged_store_is_rebuilt_with_force(damaged, tables):
    split, path = damaged
    with pytest.raises(StoreError, match=r"truncated.*rebuild_store\(teachers, split, path\)"):
        precompute({"alpha": TableTeacher(tables["alpha"])}, split, path)
    store = rebuild_store({"alpha": TableTeacher(tables["alpha"]), "beta": TableTeacher(tables["beta"])}, split, path)
    reopened = TeacherStore.open(path, expect=split)  # verified: every shard whole
    assert store.teacher_names == reopened.teacher_names == ["alpha", "beta"]
    np.testing.assert_array_equal(reopened.logits(["beta"])[:, 0], tables["beta"][split.ids].astype(np.float16))
    assert siblings(path) == []  # no .incomplete-* or .replaced-* left


def test_a_failed_rebuild_leaves_the_old_store_as_it_was(tmp_path, tables):
    split, path = make_split(), tmp_path / "s"
    before = precompute({"alpha": TableTeacher(tables["alpha"])}, split, path).manifest
    with pytest.raises(RuntimeError, match="crashed midway"):
        rebuild_store({"beta": TableTeacher(tables["beta"], fail_at_batch=2)}, split, path, batch_size=16)
    assert TeacherStore.open(path).manifest == before and siblings(path) == []


def test_a_kill_between_the_renames_loses_nothing(tmp_path, tables, monkeypatch):
    split, path = make_split(), tmp_path / "s"
    precompute({"alpha": TableTeacher(tables["alpha"])}, split, path)

    class Killed(BaseException):
        pass

    def killed_after_moving_the_old_store_aside(tmp, target):  # what a kill -9 leaves: no cleanup runs
        os.rename(target, f"{target}.replaced-0dead0")
        raise Killed

    monkeypatch.setattr(write, "swap_in", killed_after_moving_the_old_store_aside)
    with pytest.raises(Killed):
        rebuild_store({"beta": TableTeacher(tables["beta"])}, split, path)
    monkeypatch.undo()
    assert not path.exists() and len(siblings(path)) == 2  # the old store aside, the whole new one
    write.finish_interrupted_replace(path)  # done by the next write to this path
    assert TeacherStore.open(path, expect=split).teacher_names == ["beta"] and siblings(path) == []


def test_a_kill_before_the_new_store_was_whole_brings_the_old_one_back(tmp_path, tables):
    split, path = make_split(), tmp_path / "s"
    precompute({"alpha": TableTeacher(tables["alpha"])}, split, path)
    os.rename(path, f"{path}.replaced-0dead0")
    os.makedirs(f"{path}.incomplete-0dead1/teachers")  # no manifest: not whole
    store = precompute({"beta": TableTeacher(tables["beta"])}, split, path)  # repairs, then adds beta
    assert store.teacher_names == ["alpha", "beta"]
    assert not [n for n in siblings(path) if ".replaced-" in n]  # an unfinished write is not taken for a store


def test_force_refuses_a_folder_that_is_not_a_store(tmp_path, tables):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=r"\['notes.txt'\].*not part of a teacher store"):
        rebuild_store({"alpha": TableTeacher(tables["alpha"])}, make_split(), tmp_path / "s")
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"
