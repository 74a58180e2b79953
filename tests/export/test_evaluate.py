"""evaluate_litert: the same top-1/top-5 from every accepted data form, computed right; bad files fail clearly."""

import numpy as np
import pytest
import tensorflow as tf

from libkd_keras.export import LiteRTModel, evaluate_keras, evaluate_litert, read_metadata, record_accuracy

# One worker builds the session fixtures (tiny models and their exports) for every export test.
pytestmark = pytest.mark.xdist_group("export_fixtures")


def expected_topk(logits, labels):
    ranked = np.argsort(-logits, axis=1)
    return {
        "top1": float(np.mean(ranked[:, 0] == labels)),
        "top5": float(np.mean([label in row[:5] for row, label in zip(ranked, labels)])),
        "n": len(labels),
    }


@pytest.fixture(scope="module")
def noisy_labels(test_data):
    """Labels with a quarter of them shifted, so top-1 is strictly between 0 and 1."""
    images, labels = test_data
    labels = labels.copy()
    labels[::4] = (labels[::4] + 1) % 4
    return images, labels


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_accuracy_matches_a_direct_computation(exported, noisy_labels, quantization):
    images, labels = noisy_labels
    path = exported["deit", quantization]["path"]
    result = evaluate_litert(path, (images, labels), batch_size=16)
    assert result == pytest.approx(expected_topk(LiteRTModel(path).predict(images), labels))
    assert 0.5 <= result["top1"] <= 0.8  # about 3/4 of the labels are right
    assert result["n"] == len(labels)


def test_every_data_form_gives_the_same_result(exported, noisy_labels):
    images, labels = noisy_labels
    path = exported["rednet", "float32"]["path"]  # dynamic batch: runs batches
    reference = evaluate_litert(path, (images, labels), batch_size=16)
    one_hot = np.eye(4, dtype="float32")[labels]
    forms = {
        "tf.data batched": tf.data.Dataset.from_tensor_slices((images, labels)).batch(10),
        "tf.data unbatched": tf.data.Dataset.from_tensor_slices((images, labels)),
        "tf.data label dict": tf.data.Dataset.from_tensor_slices((images, {"label": labels, "teacher": one_hot})).batch(
            7
        ),
        "probability rows": (images, one_hot),
        "uint8 images": (images.round().astype("uint8"), labels),
    }
    for name, data in forms.items():
        assert evaluate_litert(path, data, batch_size=16) == pytest.approx(reference), name


def test_split_like_object(exported, noisy_labels):
    class Split:
        images, labels = noisy_labels

    path = exported["deit", "float32"]["path"]
    assert evaluate_litert(path, Split()) == pytest.approx(evaluate_litert(path, noisy_labels))


def test_litert_float32_equals_keras(exported, models, noisy_labels):
    keras_result = evaluate_keras(models["deit"], noisy_labels, (16, 16, 3))
    assert evaluate_litert(exported["deit", "float32"]["path"], noisy_labels) == pytest.approx(keras_result)


def test_record_accuracy_updates_the_metadata(exported, noisy_labels, tmp_path):
    source = exported["deit", "float16"]["path"]
    path = tmp_path / "copy.tflite"
    path.write_bytes(open(source, "rb").read())
    (tmp_path / "copy.tflite.json").write_text(open(source + ".json").read())
    result = evaluate_litert(path, noisy_labels)
    record_accuracy(path, result, dataset="generated quadrants")
    accuracy = read_metadata(path)["accuracy"]
    assert accuracy["top1"] == result["top1"] and accuracy["n"] == result["n"]
    assert accuracy["dataset"] == "generated quadrants"
    assert read_metadata(path)["quantization"] == "float16"  # the rest is kept
    with pytest.raises(ValueError, match="top5"):
        record_accuracy(path, {"top1": 0.5, "n": 3})


@pytest.mark.parametrize("content", [b"", b"not a model at all, just text", b"\x1c\x00\x00\x00TFL3" + b"\x07" * 64])
def test_corrupt_file_is_a_clear_error(tmp_path, test_data, content):
    path = tmp_path / "broken.tflite"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.tflite"):
        evaluate_litert(path, test_data)


def test_truncated_export(exported, tmp_path, test_data):
    data = open(exported["deit", "float32"]["path"], "rb").read()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.tflite"):
        evaluate_litert(path, test_data)


def test_missing_file(tmp_path, test_data):
    with pytest.raises(FileNotFoundError, match="nope.tflite"):
        evaluate_litert(tmp_path / "nope.tflite", test_data)


@pytest.mark.parametrize(
    "data, error, match",
    [
        ((np.zeros((4, 32, 32, 3)), np.zeros(4)), ValueError, r"shape \(N, 16, 16, 3\)"),
        ((np.full((4, 16, 16, 3), 0.5), np.zeros(4)), ValueError, "normalised"),
        ((np.full((4, 16, 16, 3), 9.0), np.zeros(3)), ValueError, "4 images but 3 labels"),
        ((np.full((4, 16, 16, 3), 9.0), np.full(4, 7)), ValueError, "out of range"),
        ((np.zeros((0, 16, 16, 3)), np.zeros(0)), ValueError, "empty"),
        ("images.npy", TypeError, "data must be"),
    ],
)
def test_bad_data(exported, data, error, match):
    with pytest.raises(error, match=match):
        evaluate_litert(exported["deit", "float32"]["path"], data)
