import json
import os

import numpy as np
import pytest

from libkd_keras.store import (
    STORE_FORMAT_VERSION,
    StoreError,
    TeacherStore,
    add_teachers,
    precompute,
    rebuild_store,
    write_share,
    write_store,
)
from libkd_keras.store.format import file_sha256
from tests.store.helpers import NUM_CLASSES, TableTeacher, logit_table, make_split


def leftovers(parent):
    return [name for name in os.listdir(parent) if "incomplete" in name]


def test_store_holds_ids_labels_logits_and_a_complete_manifest(store, split, tables):
    with open(os.path.join(store.path, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["format_version"] == STORE_FORMAT_VERSION and manifest["fingerprint"] == split.fingerprint
    assert (manifest["dataset"], manifest["split"], manifest["num_examples"]) == ("toy", "train", 60)
    assert manifest["num_classes"] == NUM_CLASSES and manifest["class_names"] == list("abcd")
    assert [s["num_examples"] for s in manifest["examples"]] == [16, 16, 16, 12]
    for shard in manifest["examples"] + manifest["teachers"]["beta"]["shards"]:
        assert file_sha256(os.path.join(store.path, shard["file"])) == shard["sha256"]
    assert manifest["teachers"]["alpha"]["metadata"] == {"seed": 1}
    assert store.teacher_names == ["alpha", "beta"]
    np.testing.assert_array_equal(store.ids, split.ids)
    np.testing.assert_array_equal(store.labels, split.labels)
    expected = np.stack([tables["alpha"][split.ids], tables["beta"][split.ids]], axis=1)
    np.testing.assert_array_equal(store.logits(), expected)  # float32: exact
    np.testing.assert_array_equal(store.logits(["beta"])[:, 0], tables["beta"][split.ids])
    assert store.to_split().fingerprint == split.fingerprint  # PNGs are lossless


def test_rows_are_stored_in_id_order_and_float16_by_default(tmp_path, tables):
    shuffled = make_split().subset(indices=np.random.default_rng(0).permutation(60))
    store = precompute({"alpha": TableTeacher(tables["alpha"])}, shuffled, tmp_path / "s", include_images=False)
    assert np.all(np.diff(store.ids) > 0)
    assert store.manifest["teachers"]["alpha"]["dtype"] == "float16"
    np.testing.assert_array_equal(store.logits()[:, 0], tables["alpha"][store.ids].astype(np.float16))
    TeacherStore.open(tmp_path / "s", expect=shuffled)  # the fingerprint is the split's as given


def test_adding_a_teacher_runs_and_writes_only_that_teacher(tmp_path, tables):
    split = make_split()
    path = tmp_path / "s"
    precompute({"alpha": TableTeacher(tables["alpha"])}, split, path)
    before = json.load(open(path / "manifest.json"))["teachers"]["alpha"]
    crashing_alpha = TableTeacher(tables["alpha"], fail_at_batch=1)  # would raise if it ran
    with pytest.raises(StoreError, match=r"already in store.*overwrite=True"):
        precompute({"alpha": crashing_alpha, "beta": TableTeacher(tables["beta"])}, split, path)
    store = precompute({"beta": TableTeacher(tables["beta"])}, split, path)
    assert store.teacher_names == ["alpha", "beta"] and store.manifest["teachers"]["alpha"] == before
    store = add_teachers(TeacherStore.open(path), {"gamma": TableTeacher(tables["gamma"])})  # images from the store
    np.testing.assert_array_equal(store.logits(["gamma"])[:, 0], tables["gamma"][split.ids].astype(np.float16))
    old_folder = os.path.dirname(before["shards"][0]["file"])
    add_teachers(store, {"alpha": TableTeacher(tables["beta"])}, overwrite=True)
    assert not os.path.exists(path / old_folder)
    reopened = TeacherStore.open(path)
    np.testing.assert_array_equal(reopened.logits(["alpha"]), reopened.logits(["beta"]))


def test_nan_or_inf_logits_are_refused_naming_the_teacher(tmp_path, tables):
    split = make_split()
    bad = tables["alpha"].copy()
    bad[split.ids[5], 2] = np.nan
    with pytest.raises(StoreError, match=r"Teacher 'broken' produced NaN or infinite logits for 1 of 60"):
        precompute({"fine": TableTeacher(tables["beta"]), "broken": TableTeacher(bad)}, split, tmp_path / "s")
    assert not os.path.exists(tmp_path / "s") and not leftovers(tmp_path)
    huge = tables["alpha"] * 1e5  # finite in float32, infinite in float16
    with pytest.raises(StoreError, match=r"'huge'.*float16.*dtype='float32'"):
        precompute({"huge": TableTeacher(huge)}, split, tmp_path / "s")
    precompute({"fine": TableTeacher(tables["beta"])}, split, tmp_path / "s")
    with pytest.raises(StoreError, match="'broken'"):
        precompute({"broken": TableTeacher(bad)}, split, tmp_path / "s")
    assert TeacherStore.open(tmp_path / "s").teacher_names == ["fine"]


def test_an_interrupted_precompute_leaves_nothing_that_opens(tmp_path, tables):
    split = make_split()
    teachers = {"a": TableTeacher(tables["alpha"]), "b": TableTeacher(tables["beta"], fail_at_batch=2)}
    with pytest.raises(RuntimeError, match="crashed midway"):
        precompute(teachers, split, tmp_path / "s", batch_size=16)
    assert not leftovers(tmp_path)
    with pytest.raises(StoreError, match="No teacher store"):
        TeacherStore.open(tmp_path / "s")
    store = precompute({"a": TableTeacher(tables["alpha"])}, split, tmp_path / "s")
    with pytest.raises(RuntimeError, match="crashed midway"):
        add_teachers(store, {"c": TableTeacher(tables["gamma"], fail_at_batch=2)}, batch_size=16)
    reopened = TeacherStore.open(tmp_path / "s")
    assert reopened.teacher_names == ["a"] and len(os.listdir(tmp_path / "s" / "teachers")) == 1


def test_bad_arguments_are_refused_early(tmp_path, tables):
    split = make_split()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(StoreError, match="not a teacher store"):
        precompute({"a": TableTeacher(tables["alpha"])}, split, tmp_path / "busy")
    with pytest.raises(StoreError, match="not allowed"):
        precompute({"a/b": TableTeacher(tables["alpha"])}, split, tmp_path / "s")
    with pytest.raises(StoreError, match="dtype"):
        precompute({"a": TableTeacher(tables["alpha"])}, split, tmp_path / "s", dtype="int8")
    wrong_classes = TableTeacher(logit_table(0)[:, :3])
    with pytest.raises(StoreError, match=r"'a' returned logits of shape \(60, 3\)"):
        precompute({"a": wrong_classes}, split, tmp_path / "s")


def test_each_kind_of_write_is_its_own_function(tmp_path, tables):
    split, path = make_split(), tmp_path / "s"
    store = write_store({"alpha": TableTeacher(tables["alpha"])}, split, path)
    with pytest.raises(StoreError, match=r"already holds a teacher store.*add_teachers.*rebuild_store"):
        write_store({"beta": TableTeacher(tables["beta"], fail_at_batch=1)}, split, path)  # would raise if it ran
    with pytest.raises(StoreError, match="already finished"):
        write_share({"beta": TableTeacher(tables["beta"])}, split, path, 0, 2)
    assert TeacherStore.open(path).manifest == store.manifest
    # precompute's old modes are functions now: the error names the one to call, before anything runs.
    crashing = {"beta": TableTeacher(tables["beta"], fail_at_batch=1)}
    with pytest.raises(TypeError, match=r"takes no force=.*rebuild_store\(teachers, split, path"):
        precompute(crashing, split, path, force=True)
    with pytest.raises(
        TypeError, match=r"takes no (worker_index|num_workers)=.*write_share\(teachers, split, path, i, n\)"
    ):
        precompute(crashing, split, tmp_path / "w", worker_index=0, num_workers=2)
    with pytest.raises(TypeError, match="shard_sise"):
        precompute(crashing, split, tmp_path / "w", shard_sise=8)
    assert TeacherStore.open(path).manifest == store.manifest and not (tmp_path / "w").exists()
    rebuilt = rebuild_store({"beta": TableTeacher(tables["beta"])}, split, path)  # a whole store, not a damaged one
    assert rebuilt.teacher_names == ["beta"] and sorted(os.listdir(tmp_path)) == ["s"]


def test_records_serialize_to_the_same_bytes_under_any_python_hash_seed(tmp_path):
    """A store written twice gives the same shard bytes: the records' feature maps are serialized in key order,
    not in the process's hash order (without `deterministic=True` the bytes changed with PYTHONHASHSEED)."""
    import subprocess
    import sys

    code = (
        "import hashlib; from libkd_keras.store.format import example_record, logits_record; "
        "print(hashlib.sha256(example_record(7, 3, b'png') + logits_record(7, [0.5, -1.0], 'float16')).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip().splitlines()[-1])
    assert len(digests) == 1, digests
