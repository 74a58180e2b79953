import os
import shutil

import numpy as np
import pytest

from libkd_keras.distill import HardDistillation, SoftDistillation
from libkd_keras.store import StoreError, TeacherStore, precompute
from tests.store.helpers import NUM_CLASSES, TableTeacher, decode_ids, make_split


def softmax(z, t=1.0):
    e = np.exp((z - z.max(-1, keepdims=True)) / t)
    return e / e.sum(-1, keepdims=True)


def numpy_targets(logits, rule, target, temperature=1.0):
    """The ensemble targets, written independently with NumPy (logits: N x T x C)."""
    probs = softmax(logits, temperature).mean(axis=1)
    votes = np.stack([np.bincount(row, minlength=NUM_CLASSES) for row in logits.argmax(-1)])
    if target == "soft":
        return probs if rule == "soft" else votes / logits.shape[1]
    if rule == "soft":
        winner = softmax(logits).mean(axis=1).argmax(-1)
    else:  # most votes; ties go to the class with the higher soft average
        winner = np.array(
            [max(np.flatnonzero(v == v.max()), key=lambda c: p[c]) for v, p in zip(votes, softmax(logits).mean(axis=1))]
        )
    return np.eye(NUM_CLASSES)[winner]


def collect(ds):
    ids, labels, teacher = [], [], []
    for images, y in ds:
        ids.append(decode_ids(images.numpy().astype(np.uint8)))
        labels.append(y["label"].numpy())
        teacher.append(y["teacher"].numpy())
    return np.concatenate(ids), np.concatenate(labels), np.concatenate(teacher)


@pytest.mark.parametrize("from_split", [False, True])
def test_the_id_join_survives_shuffling(store, split, tables, from_split):
    ds = store.dataset(SoftDistillation(), batch_size=7, seed=4, ensemble="soft", split=split if from_split else None)
    expected = numpy_targets(np.stack([tables["alpha"], tables["beta"]], 1), "soft", "soft")
    label_of = dict(zip(split.ids.tolist(), split.labels.tolist()))
    orders = []
    for _ in range(2):
        ids, labels, teacher = collect(ds)
        assert sorted(ids.tolist()) == split.ids.tolist()  # every example once per epoch
        assert labels.tolist() == [label_of[i] for i in ids]
        np.testing.assert_allclose(teacher, expected[ids], rtol=1e-5, atol=1e-6)
        orders.append(ids.tolist())
    assert orders[0] != orders[1] and orders[0] != sorted(orders[0])  # reshuffled every epoch


@pytest.mark.parametrize(
    "rule,target,temperature",
    [("soft", "hard", 1.0), ("vote", "hard", 1.0), ("soft", "soft", 3.0), ("vote", "soft", 1.0)],
)
def test_ensemble_targets_match_numpy(tmp_path, rule, target, temperature):
    split = make_split()
    rng = np.random.default_rng(7)
    tables = [rng.normal(0, 2, (1024, NUM_CLASSES)).astype(np.float32) for _ in range(4)]
    tables[2][split.ids[:20]] = tables[0][split.ids[:20]]  # ...so that some votes tie 2-2 and some are 2-1-1
    teachers = {f"t{i}": TableTeacher(t) for i, t in enumerate(tables)}
    store = precompute(teachers, split, tmp_path / "s", dtype="float32", include_images=False)
    kd = SoftDistillation(temperature) if target == "soft" else HardDistillation()
    ds = store.dataset(kd, ensemble=rule, batch_size=16, split=split)
    ids, _, teacher = collect(ds)
    expected = numpy_targets(np.stack([t[ids] for t in tables], 1), rule, target, temperature)
    np.testing.assert_allclose(teacher, expected, rtol=1e-5, atol=1e-6)
    subset = collect(store.dataset(HardDistillation(), teachers=["t1"], batch_size=64, shuffle=False, split=split))[2]
    np.testing.assert_array_equal(subset.argmax(1), tables[1][split.ids].argmax(1))
    with pytest.raises(StoreError, match="holds no images"):
        store.dataset(kd)


def test_batches_fit_the_contract_and_augment_touches_images_only(store):
    kd = HardDistillation()
    ds = store.dataset(kd, batch_size=8, shuffle=False, augment=lambda x: 255.0 - x, drop_remainder=True, repeat=True)
    images, y = next(iter(ds))
    assert images.shape == (8, 8, 8, 3) and images.dtype.name == "float32"
    assert set(y) == {"label", "teacher", "target_kind"}
    assert y["label"].dtype.name == "int64" and y["teacher"].shape == (8, 4)
    plain, _ = next(iter(store.dataset(kd, batch_size=8, shuffle=False)))
    np.testing.assert_array_equal(images.numpy(), 255.0 - plain.numpy())
    assert sum(1 for _ in ds.take(20)) == 20  # repeat=True keeps going past the 60 examples


def test_a_different_split_is_refused_naming_both_sides(store, split):
    with pytest.raises(StoreError) as error:
        TeacherStore.open(store.path, expect=make_split(n=50, split="test", name="other"))
    message = str(error.value)
    assert "'toy'" in message and "'other'" in message and "size 60 vs 50" in message
    assert "split 'train' vs 'test'" in message and "fingerprint" in message
    pixels_changed = split.images.copy()
    pixels_changed[0, 4, 4] += 1
    from libkd_keras.data import Split

    same_size = Split(pixels_changed, split.labels, split.ids, split.class_names, "toy", "train")
    with pytest.raises(StoreError, match=r"fingerprint [0-9a-f]{16}\.\.\. vs [0-9a-f]{16}\.\.\."):
        store.dataset(HardDistillation(), split=same_size)
    more_classes = Split(split.images, split.labels, split.ids, tuple("abcde"), "toy", "train")
    with pytest.raises(StoreError, match="class count 4 vs 5"):
        TeacherStore.open(store.path, expect=more_classes)


def test_unknown_teacher_lists_the_stored_ones(store):
    with pytest.raises(StoreError, match=r"\['delta'\].*stored teachers: \['alpha', 'beta'\]"):
        store.dataset(HardDistillation(), teachers=["alpha", "delta"])
    with pytest.raises(StoreError, match="stored teachers"):
        store.logits("delta")


@pytest.fixture
def damaged_copy(store, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(store.path, path)
    return path, store.manifest["teachers"]["beta"]["shards"][1]["file"]


def test_a_truncated_shard_is_named(damaged_copy):
    path, shard = damaged_copy
    with open(path / shard, "r+b") as f:
        f.truncate(os.path.getsize(path / shard) - 9)
    with pytest.raises(StoreError, match=rf"Shard '{shard}' \(teacher 'beta'\).*truncated"):
        TeacherStore.open(path)


def test_a_corrupt_shard_is_named_at_open_and_while_reading(damaged_copy):
    path, shard = damaged_copy
    data = bytearray((path / shard).read_bytes())
    data[40] ^= 0xFF  # same size, one byte changed
    (path / shard).write_bytes(bytes(data))
    with pytest.raises(StoreError, match=rf"Shard '{shard}'.*corrupt"):
        TeacherStore.open(path)
    unverified = TeacherStore.open(path, verify=False)  # the TFRecord CRC still catches it
    with pytest.raises(StoreError, match=rf"Shard '{shard}'.*corrupt"):
        unverified.logits()


def test_a_shard_with_fewer_records_is_never_read_as_complete(damaged_copy, store):
    path, _ = damaged_copy
    import json

    manifest = json.loads((path / "manifest.json").read_text())
    shard = manifest["examples"][0]
    first_record_end = 8 + 4 + int.from_bytes((path / shard["file"]).read_bytes()[:8], "little") + 4
    data = (path / shard["file"]).read_bytes()[:first_record_end]  # a whole record, then cut
    (path / shard["file"]).write_bytes(data)
    shard["num_bytes"] = len(data)  # as if the manifest had been written for the short file
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=rf"Shard '{shard['file']}'.*holds 1 records.*says 16"):
        TeacherStore.open(path, verify=False).ids


def test_a_folder_without_manifest_is_not_a_store(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(StoreError, match="has no manifest.json"):
        TeacherStore.open(tmp_path / "half")
