import numpy as np
import pytest

from libkd_keras.evaluation import top_k_accuracy
from libkd_keras.store import StoreError, analyses, precompute
from tests.store.helpers import NUM_CLASSES, TableTeacher, make_split


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def four_teacher_store(tmp_path_factory):
    split = make_split(n=200, ids=np.arange(200))
    rng = np.random.default_rng(3)
    # teachers that mostly know the label: noise + a bonus on the true class
    tables = {}
    for name in ("res_0", "res_1", "red_0", "red_1"):
        table = rng.normal(0, 1, (200, NUM_CLASSES)).astype(np.float32)
        table[np.arange(200), split.labels] += rng.uniform(0, 2.5)
        tables[name] = table
    teachers = {name: TableTeacher(t) for name, t in tables.items()}
    store = precompute(teachers, split, tmp_path_factory.mktemp("an") / "s", dtype="float32", include_images=False)
    return store, tables, split.labels


def numpy_accuracy(scores, labels, k):
    return np.mean([label in np.argsort(-row, kind="stable")[:k] for row, label in zip(scores, labels)])


def test_teacher_and_ensemble_accuracy_match_numpy(four_teacher_store):
    store, tables, labels = four_teacher_store
    result = analyses.teacher_accuracy(store, ["res_0", "res_1", "red_0"])
    assert list(result) == ["res_0", "res_1", "red_0", "soft ensemble", "vote ensemble"]
    for name in ("res_0", "res_1", "red_0"):
        assert result[name]["top1"] == pytest.approx(np.mean(tables[name].argmax(1) == labels))
        assert result[name]["top5"] == 1.0  # 4 classes: top-4
    stacked = np.stack([tables[n] for n in ("res_0", "res_1", "red_0")], 1)
    soft = softmax(stacked).mean(1)
    assert result["soft ensemble"]["top1"] == pytest.approx(np.mean(soft.argmax(1) == labels))
    votes = np.stack([np.bincount(r, minlength=NUM_CLASSES) for r in stacked.argmax(-1)])
    vote_winner = np.array([max(np.flatnonzero(v == v.max()), key=lambda c: p[c]) for v, p in zip(votes, soft)])
    assert result["vote ensemble"]["top1"] == pytest.approx(np.mean(vote_winner == labels))
    assert top_k_accuracy(soft, labels, 2) == pytest.approx(numpy_accuracy(soft, labels, 2))
    assert list(analyses.teacher_accuracy(store, ["res_0"])) == ["res_0"]


def test_disagreement_and_matrix_match_numpy(four_teacher_store):
    store, tables, _ = four_teacher_store
    a, b = tables["res_0"].argmax(1), tables["red_1"].argmax(1)
    assert analyses.disagreement(a, b) == pytest.approx(np.mean(a != b))
    assert analyses.disagreement(tables["res_0"], tables["red_1"]) == pytest.approx(np.mean(a != b))
    specs = ["res_0", "ensemble:res_*", "vote:red_*"]
    matrix = analyses.disagreement_matrix(store, specs)
    res_ensemble = (softmax(tables["res_0"]) + softmax(tables["res_1"])).argmax(1)
    red_stack = np.stack([tables["red_0"], tables["red_1"]], 1)
    red_soft = softmax(red_stack).mean(1)
    red_votes = np.stack([np.bincount(r, minlength=NUM_CLASSES) for r in red_stack.argmax(-1)])
    red_vote = (red_votes + 0.5 * red_soft).argmax(1)
    assert matrix.shape == (3, 3) and np.all(np.diag(matrix) == 0) and np.allclose(matrix, matrix.T)
    assert matrix[0, 1] == pytest.approx(np.mean(a != res_ensemble))
    assert matrix[1, 2] == pytest.approx(np.mean(res_ensemble != red_vote))
    with pytest.raises(StoreError, match="No stored teacher matches 'vgg_\\*'"):
        analyses.disagreement_matrix(store, ["ensemble:vgg_*"])
    with pytest.raises(ValueError, match="same N"):
        analyses.disagreement(a, b[:5])


def test_label_information_matches_numpy_and_sees_memorised_labels(four_teacher_store, tmp_path):
    store, tables, labels = four_teacher_store
    for members in (["res_0"], ["res_0", "red_1"]):
        soft = np.mean([softmax(tables[m] / 2.0) for m in members], axis=0)
        info = analyses.label_information(store, members, temperature=2.0)
        assert info["agreement"] == pytest.approx(np.mean(soft.argmax(1) == labels))
        assert info["true_class_probability"] == pytest.approx(np.mean(soft[np.arange(200), labels]), rel=1e-5)
    # A teacher that memorised the labels: agreement 1 and nearly all the probability on the label.
    split = make_split(n=200, ids=np.arange(200))
    table = np.full((200, NUM_CLASSES), -10.0, np.float32)
    table[np.arange(200), split.labels] = 10.0
    memorised = precompute({"m": TableTeacher(table)}, split, tmp_path / "m", dtype="float32", include_images=False)
    info = analyses.label_information(memorised, ["m"], temperature=1.0)
    assert info["agreement"] == 1.0 and info["true_class_probability"] > 0.99
    assert analyses.label_information(store, ["res_0"], 1.0)["true_class_probability"] < 0.9
