"""Sharded precompute: n workers write disjoint shares; the manifest comes once all shares cover every id once."""

import hashlib
import json
import os

import numpy as np
import pytest

from libkd_keras.store import StoreError, TeacherStore, finalize_store, write_share
from tests.store.helpers import TableTeacher, make_split

# Manifest keys that legitimately differ between runs (times) or describe the shard lists.
VOLATILE = ("created", "examples", "teachers", "libkd_keras_version")


def teachers_of(tables, names=("alpha", "beta")):
    return {name: TableTeacher(tables[name]) for name in names}


def run_worker(tables, split, path, index, count, **kwargs):
    kwargs = {"dtype": "float32", "shard_size": 16, "batch_size": 16, **kwargs}
    return write_share(
        teachers_of(tables), split, path, index, count, teacher_metadata={"alpha": {"seed": 1}}, **kwargs
    )


def snapshot(path):
    """Every file under `path` with its content hash: to prove a refused call wrote nothing."""
    found = {}
    for root, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.relpath(os.path.join(root, name), path)] = hashlib.sha256(f.read()).hexdigest()
    return found


def assert_same_data(one, other):
    np.testing.assert_array_equal(one.ids, other.ids)
    np.testing.assert_array_equal(one.labels, other.labels)
    np.testing.assert_array_equal(one.images(), other.images())
    np.testing.assert_array_equal(one.logits(), other.logits())
    assert {k: v for k, v in one.manifest.items() if k not in VOLATILE} == {
        k: v for k, v in other.manifest.items() if k not in VOLATILE
    }
    for name in one.teacher_names:
        mine, theirs = one.manifest["teachers"][name], other.manifest["teachers"][name]
        assert {k: mine[k] for k in ("dtype", "num_classes", "metadata")} == {
            k: theirs[k] for k in ("dtype", "num_classes", "metadata")
        }


@pytest.mark.parametrize("count, order", [(2, (0, 1)), (3, (2, 0, 1)), (5, (4, 3, 2, 1, 0))])
def test_n_workers_make_the_same_store_as_one_process(tmp_path, split, tables, count, order):
    single = run_worker(tables, split, tmp_path / "one", 0, 1)  # one worker: the whole store
    assert isinstance(single, TeacherStore) and len(single.manifest["examples"]) == 4
    path = tmp_path / "many"
    results = [run_worker(tables, split, path, index, count) for index in order]
    assert results[:-1] == [None] * (count - 1)  # only the last worker finishes the store
    store = TeacherStore.open(path, expect=split)  # verified: sizes and sha256 of every shard
    assert results[-1].manifest == store.manifest
    assert_same_data(single, store)
    # Shares follow the ids, so even the shard files are the same bytes as one process writes.
    assert [s["sha256"] for s in store.manifest["examples"]] == [s["sha256"] for s in single.manifest["examples"]]
    assert sorted(os.listdir(path / "shares")) == [f"share-{i:05d}-of-{count:05d}.json" for i in range(count)]
    share = json.loads((path / "shares" / f"share-00001-of-{count:05d}.json").read_text())
    assert [s["index"] for s in share["examples"]] == list(range(1, 4, count))  # shard j -> worker j % count


def test_a_sharded_store_matches_with_float16_and_without_images(tmp_path, split, tables):
    single = run_worker(tables, split, tmp_path / "one", 0, 1, dtype="float16", include_images=False)
    run_worker(tables, split, tmp_path / "two", 1, 2, dtype="float16", include_images=False)
    store = run_worker(tables, split, tmp_path / "two", 0, 2, dtype="float16", include_images=False)
    np.testing.assert_array_equal(store.logits(), single.logits())
    assert not store.includes_images and store.manifest["teachers"]["beta"]["dtype"] == "float16"


def test_a_missing_share_is_named_and_the_folder_never_opens(tmp_path, split, tables):
    path = tmp_path / "s"
    assert run_worker(tables, split, path, 0, 3) is None
    assert run_worker(tables, split, path, 2, 3) is None
    with pytest.raises(StoreError, match=r"share-00001-of-00003\.json.*missing.*worker_index=i, num_workers=3"):
        finalize_store(path)
    with pytest.raises(StoreError, match="has no manifest.json"):
        TeacherStore.open(path)
    store = run_worker(tables, split, path, 1, 3)
    assert finalize_store(path).manifest == store.manifest  # finalising a finished store just opens it


def test_inconsistent_num_workers_is_refused_before_writing(tmp_path, split, tables):
    path = tmp_path / "s"
    run_worker(tables, split, path, 0, 2)
    before = snapshot(path)
    with pytest.raises(StoreError, match=r"Inconsistent num_workers.*share-00001-of-00003.*for 3 workers.*for 2"):
        run_worker(tables, split, path, 1, 3)
    assert snapshot(path) == before
    store = run_worker(tables, split, path, 1, 2)  # the right worker still completes the store
    TeacherStore.open(store.path, expect=split)


def test_finalize_names_shares_of_different_runs(tmp_path, split, tables):
    path, other = tmp_path / "s", tmp_path / "other"
    run_worker(tables, split, path, 0, 2)
    run_worker(tables, split, other, 1, 3)
    os.rename(other / "shares" / "share-00001-of-00003.json", path / "shares" / "share-00001-of-00003.json")
    with pytest.raises(StoreError, match=r"Inconsistent num_workers.*share-00001-of-00003\.json"):
        finalize_store(path)
    assert not (path / "manifest.json").exists()


def test_a_duplicated_share_is_named(tmp_path, split, tables):
    path = tmp_path / "s"
    run_worker(tables, split, path, 0, 2)
    share = json.loads((path / "shares" / "share-00000-of-00002.json").read_text())
    share["worker_index"] = 1  # a share that claims worker 0's shards again
    (path / "shares" / "share-00001-of-00002.json").write_text(json.dumps(share))
    with pytest.raises(StoreError, match=r"Shard 0 \(examples\).*two shares.*share-00000.*share-00001.*duplicated"):
        finalize_store(path)
    assert not (path / "manifest.json").exists()


def test_other_settings_and_bad_arguments_are_refused(tmp_path, split, tables):
    path = tmp_path / "s"
    run_worker(tables, split, path, 0, 2)
    before = snapshot(path)
    with pytest.raises(StoreError, match=r"other settings.*differs in \['dtype'\]"):
        run_worker(tables, split, path, 1, 2, dtype="float16")
    with pytest.raises(StoreError, match=r"other settings.*fingerprint"):
        run_worker(tables, make_split(ids=np.arange(60) * 5), path, 1, 2)
    with pytest.raises(StoreError, match=r"worker_index.*\[0, 2\)"):
        run_worker(tables, split, path, 2, 2)
    with pytest.raises(StoreError, match="num_workers.*positive"):
        run_worker(tables, split, path, 0, 0)
    assert snapshot(path) == before


def test_a_worker_writing_into_a_finished_store_is_refused(tmp_path, split, tables):
    path = tmp_path / "s"
    run_worker(tables, split, path, 0, 2)
    run_worker(tables, split, path, 1, 2)
    before = snapshot(path)
    with pytest.raises(StoreError, match=r"already finished.*wrote nothing"):
        run_worker(tables, split, path, 0, 2)
    with pytest.raises(StoreError, match=r"already finished"):
        run_worker(tables, split, tmp_path / "s", 0, 1)
    assert snapshot(path) == before
    TeacherStore.open(path, expect=split)


def test_a_damaged_share_is_detected_at_finalize(tmp_path, split, tables):
    path = tmp_path / "s"
    run_worker(tables, split, path, 0, 2)
    share = json.loads((path / "shares" / "share-00000-of-00002.json").read_text())
    shard = path / share["examples"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(StoreError, match=r"examples-00000-of-00004.*share-00000-of-00002.*altered"):
        run_worker(tables, split, path, 1, 2)
    assert not (path / "manifest.json").exists()
    run_worker(tables, split, path, 0, 2)  # rerunning the worker repairs its share and completes the store
    TeacherStore.open(path, expect=split)
