"""to_litert: every quantization of a tiny DeiT, RedNet and ResNet runs and matches Keras; bad input fails cleanly."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import CLASS_NAMES, EXPORT_OPTIONS, IMAGE_SIZE, NUM_CLASSES, variants

from libkd_keras.export import LiteRTModel, UnsupportedOpsError, read_metadata, to_litert
from libkd_keras.export.litert import MIXED_FLOAT_OPS
from libkd_keras.layers import CIFAR10_MEAN, CIFAR10_STD

# One worker builds the session fixtures (tiny models and their exports) for every export test.
pytestmark = pytest.mark.xdist_group("export_fixtures")

MODELS = ("deit", "rednet", "resnet")


def keras_logits(model, images):
    return np.asarray(model(images, training=False))


@pytest.mark.parametrize("key, quantization", variants(*MODELS))
def test_every_variant_runs_and_matches_keras(exported, models, test_data, key, quantization):
    images, _ = test_data
    reference = keras_logits(models[key], images)
    logits = LiteRTModel(exported[key, quantization]["path"]).predict(images)
    assert logits.shape == (len(images), NUM_CLASSES)
    agree = np.mean(logits.argmax(1) == reference.argmax(1))
    spread = np.abs(reference).max()
    if quantization == "float32":
        np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=1e-4)
    elif quantization == "float16":
        np.testing.assert_allclose(logits, reference, atol=1e-2 * spread)  # fp16 weights: ~0.5% off
        assert agree >= 0.97
    else:  # int8 weights (dynamic), int8 everything, or int8 but attention: same decisions on most images
        assert np.abs(logits - reference).mean() < 0.15 * spread
        assert agree >= 0.85, f"{key} {quantization}: only {agree:.0%} of predictions agree with Keras"


def test_predictions_are_not_trivial(models, test_data):
    """Guards the check above: the models really separate the classes."""
    images, labels = test_data
    for model in models.values():
        predicted = keras_logits(model, images).argmax(1)
        assert np.mean(predicted == labels) >= 0.8
        assert len(np.unique(predicted)) == NUM_CLASSES


@pytest.mark.parametrize("key, quantization", variants(*MODELS))
def test_only_builtin_ops(exported, key, quantization):
    meta = exported[key, quantization]
    assert meta["builtin_ops_only"] is True
    assert meta["op_types"] and all(op.isupper() and not op.startswith(("FLEX", "CUSTOM")) for op in meta["op_types"])


def test_involution_is_builtin_and_fully_integer(exported):
    """Involution2D is pad + strided slices + reshape + mul/add: all builtins, all int8."""
    meta = exported["rednet", "int8"]
    assert {"PAD", "STRIDED_SLICE", "RESHAPE", "MUL", "ADD"} <= set(meta["op_types"])
    assert meta["float_ops"] == []


def test_deit_int8_is_fully_integer(exported):
    """LayerNormalization has no NEG (Keras' LayerNorm has, and it has no int8 kernel)."""
    meta = exported["deit", "int8"]
    assert {"MEAN", "RSQRT", "SUB", "BATCH_MATMUL", "SOFTMAX", "GELU"} <= set(meta["op_types"])
    assert "NEG" not in meta["op_types"] and meta["float_ops"] == []


def test_deit_int8_mixed_keeps_only_the_xnnpack_less_ops_float(exported):
    """int8_mixed: attention, GELU, LayerNorm statistics and adds float32; weights and matmuls int8."""
    meta = exported["deit", "int8_mixed"]
    assert set(meta["float_ops"]) <= set(MIXED_FLOAT_OPS) | {"SUB", "MUL", "RESHAPE", "TRANSPOSE", "CONCATENATION"}
    assert {"BATCH_MATMUL", "SOFTMAX", "GELU", "RSQRT"} <= set(meta["float_ops"])
    assert "FULLY_CONNECTED" not in meta["float_ops"] and "CONV_2D" not in meta["float_ops"]
    assert "by design" in meta["float_ops_note"]
    assert meta["input"]["dtype"] == meta["output"]["dtype"] == "float32"
    runner = LiteRTModel(meta["path"])
    dtypes = {t["index"]: t["dtype"] for t in runner.interpreter.get_tensor_details()}
    weights = [op["inputs"][1] for op in runner.interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    assert weights and all(dtypes[w] == np.int8 for w in weights)


def test_cpu_delegate_runs_float32_deit_whole_and_int8_mixed_without_attention_islands(exported):
    """Structure behind the CPU latency: XNNPACK takes float32 in one partition (no axis-dropping
    slices left), while full-integer int8 leaves attention, GELU and RSQRT to LiteRT's kernels."""
    assert exported["deit", "float32"]["cpu_delegate"] == {"partitions": 1, "ops_outside": {}}
    strict, mixed = exported["deit", "int8"]["cpu_delegate"], exported["deit", "int8_mixed"]["cpu_delegate"]
    assert {"BATCH_MATMUL", "SOFTMAX", "GELU", "RSQRT"} <= set(strict["ops_outside"])
    assert not {"BATCH_MATMUL", "SOFTMAX", "GELU", "RSQRT"} & set(mixed["ops_outside"])
    assert mixed["partitions"] < strict["partitions"]
    assert exported["resnet", "int8"]["cpu_delegate"]["partitions"] == 1


@pytest.mark.parametrize("key, quantization", [v for v in variants(*MODELS) if v.values[1] != "float32"])
def test_size_shrinks_with_quantization(exported, key, quantization):
    ratio = os.path.getsize(exported[key, quantization]["path"]) / os.path.getsize(exported[key, "float32"]["path"])
    assert ratio < (0.7 if quantization == "float16" else 0.6)  # tiny models: graph overhead weighs


@pytest.mark.parametrize("key, quantization", variants(*MODELS))
def test_metadata_json_beside_the_file(exported, models, key, quantization):
    meta = exported[key, quantization]
    assert meta["metadata_path"] == meta["path"] + ".json"
    with open(meta["metadata_path"], encoding="utf-8") as f:
        on_disk = json.load(f)
    assert on_disk == read_metadata(meta["path"])
    assert on_disk["quantization"] == quantization
    assert on_disk["file"] == os.path.basename(meta["path"])
    assert on_disk["size_bytes"] == os.path.getsize(meta["path"])
    assert on_disk["class_names"] == CLASS_NAMES
    assert on_disk["extra"] == {"note": "test"}
    assert on_disk["accuracy"] is None
    batch = -1 if EXPORT_OPTIONS.get((key, quantization), {}).get("batch_size", 1) is None else 1
    assert on_disk["input"]["shape"] == [batch, IMAGE_SIZE, IMAGE_SIZE, 3]
    assert on_disk["input"]["pixel_range"] == [0, 255]
    assert "raw pixels 0-255" in on_disk["input"]["note"]
    assert on_disk["output"]["shape"] == [batch, NUM_CLASSES]
    assert on_disk["normalization"]["mean"] == pytest.approx(CIFAR10_MEAN)
    assert on_disk["normalization"]["std"] == pytest.approx(CIFAR10_STD)
    source = on_disk["source_model"]
    assert source["name"] == models[key].name
    assert source["params"] == models[key].count_params()
    assert source["exported_from"] == "model"
    if key == "deit":
        assert source["class"] == "libkd_keras.models.deit.DeiT"
        assert "average" in source["inference_output"]
        assert source["config"]["dim"] == 32


@pytest.mark.parametrize("key, io_dtype, zero_point", [("deit", "int8", -128), ("rednet", "uint8", 0)])
def test_int8_input_maps_raw_pixels(exported, key, io_dtype, zero_point):
    meta = exported[key, "int8"]
    assert meta["io_dtype"] == io_dtype
    assert meta["input"]["dtype"] == io_dtype and meta["output"]["dtype"] == io_dtype
    quant = meta["input"]["quantization"]
    # the calibration images span 0..255, so one input step is one pixel level
    assert quant["scale"] == pytest.approx(1.0, abs=1e-3)
    assert quant["zero_point"] == zero_point
    assert meta["output"]["quantization"]["scale"] > 0
    assert exported[key, "float32"]["input"]["dtype"] == "float32"
    assert exported[key, "float32"]["input"]["quantization"] is None


def test_dynamic_batch_file_runs_batches(exported, models, test_data):
    images, _ = test_data
    runner = LiteRTModel(exported["rednet", "float32"]["path"])
    assert runner.dynamic_batch
    logits = runner.predict(images, batch_size=16)
    assert runner.batch == 16  # ran 16 images per invocation
    np.testing.assert_allclose(logits, keras_logits(models["rednet"], images), atol=1e-4, rtol=1e-4)
    fixed = LiteRTModel(exported["deit", "float32"]["path"])
    assert not fixed.dynamic_batch and fixed.fixed_batch == 1


def test_distiller_exports_its_student(models, test_data, tmp_path):
    from libkd_keras.distill import Distiller

    student = models["deit"]
    with pytest.warns(UserWarning, match="student"):
        meta = to_litert(Distiller(student), tmp_path / "student.tflite")
    assert meta["source_model"]["exported_from"] == "Distiller.student"
    assert sorted(os.listdir(tmp_path)) == ["student.tflite", "student.tflite.json"]  # no temporary left
    assert meta["source_model"]["name"] == student.name
    logits = LiteRTModel(meta["path"]).predict(test_data[0][:8])
    np.testing.assert_allclose(logits, keras_logits(student, test_data[0][:8]), atol=1e-4, rtol=1e-4)


class MatrixInverse(keras.layers.Layer):
    """A layer whose op (tf.MatrixInverse) has no LiteRT builtin."""

    def call(self, x):
        x = x[..., 0]
        gram = keras.ops.matmul(x, keras.ops.transpose(x, (0, 2, 1))) + keras.ops.eye(4)
        return keras.ops.inv(gram)


@pytest.mark.parametrize("quantization", ["float32", "int8_mixed"])  # Keras' LiteRT export; the SavedModel path
def test_flex_op_fails_naming_the_op_and_layer(tmp_path, quantization):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(MatrixInverse(name="my_inverse")(inputs)))
    path = tmp_path / "flex.tflite"
    calibration = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 3))
    with pytest.raises(UnsupportedOpsError, match="MatrixInverse") as info:
        to_litert(model, path, quantization, representative_data=calibration)
    assert info.value.ops == ["tf.MatrixInverse"]
    assert any("my_inverse" in where for where in info.value.locations)
    assert "my_inverse" in str(info.value)
    assert os.listdir(tmp_path) == []


# --- bad input: a clear error, raised before any conversion, and nothing left on disk ---


@pytest.fixture
def no_conversion(monkeypatch):
    """Fails the test if the converter is reached."""

    def convert(*args, **kwargs):
        raise AssertionError("conversion started before the input was checked")

    monkeypatch.setattr(keras.Model, "export", convert)


@pytest.mark.parametrize("quantization", ["int8", "int8_mixed"])
def test_int8_without_representative_data(models, tmp_path, no_conversion, quantization):
    with pytest.raises(ValueError, match="representative_data"):
        to_litert(models["deit"], tmp_path / "m.tflite", quantization)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"quantization": "int4"}, ValueError, "quantization"),
        ({"quantization": "float32", "io_dtype": "uint8"}, ValueError, "int8"),
        (
            {"quantization": "int8_mixed", "io_dtype": "uint8", "representative_data": np.zeros((2, 16, 16, 3))},
            ValueError,
            "take float32 pixels",
        ),
        (
            {"quantization": "int8", "io_dtype": "int16", "representative_data": np.zeros((2, 16, 16, 3))},
            ValueError,
            "io_dtype",
        ),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"class_names": "abcd"}, TypeError, "class_names"),
    ],
)
def test_bad_options(models, tmp_path, no_conversion, kwargs, error, match):
    with pytest.raises(error, match=match):
        to_litert(models["deit"], tmp_path / "m.tflite", **kwargs)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((0, 16, 16, 3)), "empty"),
        (np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 3)), r"normalised to \[0, 1\]"),
        (np.random.default_rng(0).normal(size=(8, 16, 16, 3)), "raw pixels"),
        (np.zeros((8, 32, 32, 3)), r"shape \(N, 16, 16, 3\)"),
    ],
)
def test_bad_representative_data(models, tmp_path, no_conversion, images, match):
    with pytest.raises(ValueError, match=match):
        to_litert(models["deit"], tmp_path / "m.tflite", "int8", representative_data=images)
    assert os.listdir(tmp_path) == []


def test_folder_that_does_not_exist(models, tmp_path, no_conversion):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        to_litert(models["deit"], tmp_path / "missing" / "m.tflite")
    assert not (tmp_path / "missing").exists()


def test_path_must_be_a_tflite_file(models, tmp_path, no_conversion):
    with pytest.raises(ValueError, match=".tflite"):
        to_litert(models["deit"], tmp_path / "m.keras")
    with pytest.raises(ValueError, match="folder"):
        os.mkdir(tmp_path / "dir.tflite")
        to_litert(models["deit"], tmp_path / "dir.tflite")


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="keras.Model"):
        to_litert(object(), tmp_path / "m.tflite")


def test_converter_failure_leaves_no_file(models, tmp_path, monkeypatch):
    """The converter writes half a file and crashes: the output path keeps its old content."""
    path = tmp_path / "m.tflite"
    path.write_bytes(b"previous export")

    def crash(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a flatbuffer")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(keras.Model, "export", crash)
    with pytest.raises(RuntimeError, match="conversion of 'tiny_deit' \\(float32\\) failed: converter crashed"):
        to_litert(models["deit"], path)
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]
    assert path.read_bytes() == b"previous export"


def test_unloadable_output_is_never_renamed_into_place(models, tmp_path, monkeypatch):
    """A converter that 'succeeds' with a broken file: caught by loading it before the rename."""

    def broken(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40)

    monkeypatch.setattr(keras.Model, "export", broken)
    with pytest.raises(RuntimeError, match="cannot load or run"):
        to_litert(models["deit"], tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


def test_wrong_number_of_class_names(models, tmp_path, no_conversion):
    with pytest.raises(ValueError, match="3 class names for a model with 4 outputs"):
        to_litert(models["rednet"], tmp_path / "m.tflite", class_names=["a", "b", "c"])
    assert os.listdir(tmp_path) == []


def test_deit_exports_its_inference_output(exported, models, test_data):
    """The exported graph is `model(x, training=False)`: the average of the two heads."""
    images = test_data[0][:8]
    cls, dist = models["deit"].heads(images)
    logits = LiteRTModel(exported["deit", "float32"]["path"]).predict(images)
    np.testing.assert_allclose(logits, (np.asarray(cls) + np.asarray(dist)) / 2, atol=1e-4, rtol=1e-4)


def test_exported_files_get_the_usual_permissions(exported):
    """Written via a private temporary file, but renamed into place readable like any other file."""
    mask = os.umask(0)
    os.umask(mask)
    meta = exported["deit", "float32"]
    for path in (meta["path"], meta["metadata_path"]):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("key", ["deit", "resnet"])
def test_mixed_precision_model_exports_its_float32_graph(models, test_data, tmp_path, key):
    """A model trained under mixed_bfloat16 exports as float32 (no bf16 casts in the file)."""
    import conftest

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = conftest.BUILDERS[key]()
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    mixed.set_weights(models[key].get_weights())
    images = test_data[0][:8]
    bf16_logits = np.asarray(mixed(images, training=False), np.float32)
    reference = keras_logits(models[key], images)
    assert np.abs(bf16_logits - reference).max() > 1e-3  # bfloat16 compute really differs
    meta = to_litert(mixed, tmp_path / "m.tflite")
    np.testing.assert_allclose(LiteRTModel(meta["path"]).predict(images), reference, atol=1e-4, rtol=1e-4)
    assert mixed.dtype_policy.name == "mixed_bfloat16"  # the user's model is left as it was
