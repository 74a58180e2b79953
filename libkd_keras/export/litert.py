"""Keras model -> LiteRT (.tflite) file with builtin ops only, in one of five variants.

Conversion goes through Keras' own path, `model.export(path, format="litert", ...)`
(ExportArchive -> SavedModel -> `TFLiteConverter`), calling the model with `training=False`:
for a distilled DeiT that is the average of its two heads. The op set is restricted to
LiteRT builtins, so a model that would need a Flex (TensorFlow) op fails with
`UnsupportedOpsError` naming the op, instead of producing a file phones cannot run.

| quantization | weights | activations | converter settings |
|---|---|---|---|
| `float32` | float32 | float32 | builtins |
| `float16` | float16 | float32 | `Optimize.DEFAULT`, `supported_types=[float16]` |
| `dynamic` | int8 | float32 (int8 on the fly in matmuls) | `Optimize.DEFAULT` |
| `int8` | int8 | int8, calibrated | `Optimize.DEFAULT`, representative data, `TFLITE_BUILTINS_INT8` |
| `int8_mixed` | int8 | int8, calibrated, except `MIXED_FLOAT_OPS` in float32 | as `int8`, those ops denylisted |

`int8` is full-integer (what integer-only accelerators need). On CPUs, LiteRT's XNNPACK delegate
has no int8 kernels for attention (BATCH_MATMUL, SOFTMAX), GELU and LayerNorm's statistics, so a
full-integer ViT runs those ops outside the delegate, one partition each, and is slower than
float32. `int8_mixed` keeps those ops and the adds in float32 (selective quantization with the
converter's `QuantizationDebugger`): every matmul and convolution with weights stays int8, the
file is one delegated graph (float32 input and output), and a ViT runs fastest this way on a
CPU. CNNs (ResNet, RedNet) are fully delegated as `int8` already: use `int8` for them.

`to_litert` checks its options, resolves the model, converts, then loads and runs the file once
(`runtime.LiteRTModel`) before writing it and its metadata. Read from the top: `to_litert` and its
checks; what export converts (the Keras model behind its argument, in float32, and its input
shape); the converter calls (settings per quantization, the `int8_mixed` path, the errors); the
metadata JSON written beside every file.
"""

import dataclasses
import datetime
import json
import os
import re
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras.atomic_files import tempfile_folder, temporary_sibling, write_json_atomic
from libkd_keras.choices import QUANTIZATIONS
from libkd_keras.export.runtime import LiteRTModel, calibration_images
from libkd_keras.layers import PixelNormalization

__all__ = ["MIXED_FLOAT_OPS", "QUANTIZATIONS", "UnsupportedOpsError", "to_litert"]

# Kept float32 by "int8_mixed": the ops XNNPACK has no int8 kernel for, and ADD (XNNPACK's int8 ADD
# refuses LayerNorm's `var + eps`, whose constant is tiny; the residual adds go along).
MIXED_FLOAT_OPS = ("BATCH_MATMUL", "SOFTMAX", "GELU", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "ADD")
IO_DTYPES = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8}
PIXEL_NOTE = "raw pixels 0-255 expected (RGB); the model normalises inside itself"


class UnsupportedOpsError(ValueError):
    """The model needs ops with no LiteRT builtin kernel. `.ops`: the TF op names; `.locations`: where."""

    def __init__(self, message, ops, locations):
        super().__init__(message)
        self.ops, self.locations = ops, locations


@dataclasses.dataclass(frozen=True)
class Variant:
    """The file one conversion writes: its quantization, input/output dtype and batch dimension (checked)."""

    quantization: str
    io_dtype: str
    batch_size: int | None


def to_litert(
    model,
    path,
    quantization="float32",
    representative_data=None,
    io_dtype=None,
    class_names=None,
    metadata=None,
    batch_size=1,
):
    """Exports `model` to a LiteRT file at `path` and writes its metadata to `<path>.json`.

    Args:
        model: a Keras classifier taking raw pixels (a DeiT, a teacher), or a Distiller (its
            `.student` is exported, with a warning).
        path: the `.tflite` file to write; its folder must exist. Written whole or not at all.
        quantization: "float32", "float16", "dynamic" (int8 weights), "int8" (full integer) or
            "int8_mixed" (int8 with attention, GELU and LayerNorm statistics in float32: the
            fastest on CPUs; see the module docstring).
        representative_data: for "int8" and "int8_mixed" (required): a few hundred raw-pixel
            training images, as an array, `(images, labels)`, or a tf.data of images or
            `(image, label)`; the first 1000 are used. Ignored by the other modes.
        io_dtype: input/output dtype: "float32" (default) or, for "int8", "int8" or "uint8"
            ("int8_mixed" files take and return float32).
        class_names: optional list of class names for the metadata.
        metadata: optional JSON-able dict stored under "extra" in the metadata.
        batch_size: the batch dimension of the file: 1 (default, what a phone runs; fastest),
            another fixed size, or None for any batch size (batched evaluation; slower on
            device because shapes are computed at run time).

    Returns:
        The metadata dict, with "path" and "metadata_path" added.

    Example:
    >>> meta = to_litert(student, "out/student_int8.tflite", "int8", representative_data=train_images[:500],
    ...                  io_dtype="uint8", class_names=split.class_names)
    >>> meta["input"]["quantization"]  # calibration images span 0..255: uint8 pixels map directly
    {'scale': 0.99998, 'zero_point': 0}
    """
    path = check_output_path(path, ".tflite")
    variant = _check_options(quantization, io_dtype, batch_size, representative_data, class_names)
    model, exported_from = resolve_model(model)
    image_shape = model_image_shape(model)
    classes = model_num_classes(model)
    if class_names is not None and classes is not None and len(class_names) != classes:
        raise ValueError(f"got {len(class_names)} class names for a model with {classes} outputs.")
    calibration = calibration_images(representative_data, image_shape) if quantization.startswith("int8") else None

    signature = [tf.TensorSpec((batch_size, *image_shape), tf.float32, name="pixels")]
    options = converter_options(quantization, variant.io_dtype, calibration)
    with temporary_sibling(path, ".tflite") as tmp_path, temporary_sibling(path, ".json") as tmp_json:
        with tempfile_folder(os.path.dirname(tmp_path)):  # the converter's SavedModel: beside the file, not in $TMPDIR
            convert(model, tmp_path, signature, options, quantization)
        try:  # a file that does not load and run is never renamed into place
            runner = LiteRTModel(tmp_path, threads=1)
            runner.invoke(runner.prepare(np.zeros((runner.batch, *image_shape), np.float32)))
        except (ValueError, RuntimeError) as e:
            raise RuntimeError(
                f"LiteRT conversion of {model.name!r} ({quantization}) produced a file the LiteRT interpreter "
                f"cannot load or run ({e}); nothing was written to {path!r}."
            ) from e
        meta = build_metadata(path, model, exported_from, runner, variant, class_names, metadata)
        with open(tmp_json, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        os.replace(tmp_path, path)
        try:
            os.replace(tmp_json, metadata_path(path))
        except OSError:
            os.remove(path)  # never leave a file without its metadata
            raise
    return {**meta, "path": path, "metadata_path": metadata_path(path)}


def _check_options(quantization, io_dtype, batch_size, representative_data, class_names):
    """The `Variant` asked for, or a `ValueError` / `TypeError` naming the bad option (before any work)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}; got {quantization!r}.")
    io_dtype = "float32" if io_dtype is None else io_dtype
    if io_dtype not in IO_DTYPES:
        raise ValueError(f"`io_dtype` must be one of {tuple(IO_DTYPES)} or None; got {io_dtype!r}.")
    if io_dtype != "float32" and quantization == "int8_mixed":
        raise ValueError(
            f"`io_dtype={io_dtype!r}` needs quantization='int8': 'int8_mixed' files take float32 pixels and return "
            "float32 logits (their first and last ops are float32 ones)."
        )
    if io_dtype != "float32" and quantization != "int8":
        raise ValueError(f"`io_dtype={io_dtype!r}` needs quantization='int8'; {quantization!r} models take float32.")
    if quantization.startswith("int8") and representative_data is None:
        raise ValueError(
            f"quantization={quantization!r} needs `representative_data`: a few hundred training images (raw pixels) "
            "to calibrate activation ranges."
        )
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(
            f"`batch_size` must be a positive integer (fixed batch) or None (any batch); got {batch_size!r}."
        )
    if class_names is not None and (isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names)):
        raise TypeError("`class_names` must be a list of strings, one per class.")
    return Variant(quantization, io_dtype, batch_size)


def check_output_path(path, suffix):
    """Returns `path` as a str after checking its suffix and that its folder exists.

    Raises before any work is done, so a bad path never costs a conversion.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the output path must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise ValueError(f"the output path must end with '{suffix}'; got {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"the output path {path!r} is a folder; give a file name ending with '{suffix}'.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"the folder of the output path {path!r} does not exist ({folder}); create it first, "
            "e.g. os.makedirs(folder, exist_ok=True)."
        )
    return path


# ================================================================= what export converts
# `resolve_model` takes a Keras model or a Distiller (its `.student` is the inference network) and
# returns a float32 model: LiteRT variants are derived from the float32 graph, so a model trained
# under mixed precision is copied with float32 policies first.
def _float32_policies(config):
    """`config` with every dtype policy (the model's and each layer's) set to float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: _float32_policies(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_policies(v) for v in config]
    return config


def float32_copy(model):
    """`model` itself if it computes in float32, else a float32 copy with the same weights.

    A model trained under `mixed_bfloat16` (or `mixed_float16`) keeps float32 weights but
    computes in 16 bits; exported as is, the file would carry those casts. LiteRT variants are
    derived from the float32 graph, so export converts first.
    """
    if all(layer.dtype_policy.name == "float32" for layer in [model, *model.layers]):
        return model
    config = _float32_policies(model.get_config())
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32")  # sublayers built in __init__ follow the global policy
    try:
        copy = model.__class__.from_config(config)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def resolve_model(model):
    """The Keras model to export and how it was found: itself, or a Distiller's `.student`.

    A Distiller is recognised by its `.student` attribute (duck-typed: export does not import
    `libkd_keras.distill`). A mixed-precision model comes back as its float32 copy.
    """
    student = getattr(model, "student", None)
    if isinstance(student, keras.Model) and student is not model:
        warnings.warn(
            f"to_litert got a {type(model).__name__} (it has a `.student` model); exporting its student "
            f"{student.name!r}, the inference network, not the training wrapper.",
            UserWarning,
            stacklevel=3,
        )
        return float32_copy(student), f"{type(model).__name__}.student"
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model (or a Distiller with a `.student`); got {type(model).__name__}."
        )
    return float32_copy(model), "model"


def model_image_shape(model):
    """`(height, width, channels)` of the model's single image input; must be static."""
    inputs = getattr(model, "inputs", None)  # functional and Sequential models; subclassed ones have none
    if inputs:
        if len(inputs) != 1:
            raise ValueError(f"{model.name!r} has {len(inputs)} inputs; export handles single-image-input models.")
        shape = tuple(inputs[0].shape[1:])
    elif hasattr(model, "image_size"):  # subclassed models of this package (DeiT)
        channels = len(getattr(model, "mean", (0, 0, 0)))
        shape = (*model.image_size, channels)
    else:
        raise ValueError(
            f"cannot tell the input shape of {type(model).__name__} {model.name!r}: export a functional model "
            "or one with an `image_size` attribute."
        )
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(f"{model.name!r} needs a static (height, width, channels) input to export; got {shape}.")
    return tuple(int(d) for d in shape)


def model_num_classes(model):
    """The number of output classes when the model tells it (DeiT attribute or functional output)."""
    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1 and outputs[0].shape[-1] is not None:
        return int(outputs[0].shape[-1])
    return None


# ==================================================================== the converter calls
# `convert(...)` writes the flatbuffer of one variant. A model that needs an op without a LiteRT
# builtin kernel raises `UnsupportedOpsError` naming the op (and the layer, when the converter
# says), instead of producing a file that needs the Flex delegate.
def converter_options(quantization, io_dtype, calibration):
    """Keyword arguments of `model.export(format="litert")` for one quantization (see the module docstring's table).

    Args:
        quantization: str. One of `choices.QUANTIZATIONS`.
        io_dtype: str. "float32", "int8" or "uint8": the file's input and output dtype (int8 only).
        calibration: array or None. `(n, H, W, C)` float32 pixels for the int8 variants.
    """
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float32":
        return {"target_spec": {"supported_ops": builtins}}
    if quantization == "float16":
        return {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "target_spec": {"supported_ops": builtins, "supported_types": [tf.float16]},
        }
    if quantization == "dynamic":
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_ops": builtins}}

    def representative_dataset():
        for i in range(len(calibration)):
            yield [calibration[i : i + 1]]

    int8_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": representative_dataset,
        "target_spec": {"supported_ops": int8_ops if quantization == "int8" else int8_ops + builtins},
        "inference_input_type": IO_DTYPES[io_dtype],
        "inference_output_type": IO_DTYPES[io_dtype],
    }


def _convert_mixed(model, signature, options):
    """int8 with `MIXED_FLOAT_OPS` kept float32: SavedModel -> converter -> QuantizationDebugger.

    The debugger's denylist is the converter's public route to selective quantization
    (https://www.tensorflow.org/lite/performance/quantization_debugger); Keras' LiteRT export
    does not expose it, so this path exports a SavedModel (the same `training=False` graph)
    and converts it here.
    """
    with tempfile.TemporaryDirectory(prefix="libkd_savedmodel_") as saved:
        model.export(saved, format="tf_saved_model", verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.experimental_enable_resource_variables = True
        converter.optimizations = options["optimizations"]
        converter.representative_dataset = options["representative_dataset"]
        converter.target_spec.supported_ops = options["target_spec"]["supported_ops"]
        with warnings.catch_warnings():  # the debugger opens its model with the deprecated tf.lite.Interpreter
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=options["representative_dataset"],
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(MIXED_FLOAT_OPS)),
            )
        return debugger.get_nondebug_quantized_model()


_NOT_BUILTIN = re.compile(r"'(tf\.\w+)' op is neither a custom op nor a flex op")


def unsupported_ops(error):
    """`(op names, locations)` of ops without a builtin kernel named by a converter error."""
    ops, locations = [], []
    for item in getattr(error, "errors", None) or []:
        name = getattr(getattr(item, "operator", None), "name", "")
        if name and name not in ops and "neither a custom op nor a flex op" in getattr(item, "error_message", ""):
            ops.append(name)
            calls = [c.name for c in getattr(getattr(item, "location", None), "call", [])]
            if calls:
                locations.append(calls[0].split("@")[0])
    for name in _NOT_BUILTIN.findall(str(error)):  # older converters: only the message
        if name not in ops:
            ops.append(name)
    return ops, locations


def convert(model, tmp_path, signature, options, quantization):
    """Writes the LiteRT file of `model` to `tmp_path`; `UnsupportedOpsError` if it needs a non-builtin op."""
    try:
        if quantization == "int8_mixed":
            flatbuffer = _convert_mixed(model, signature, options)
            with open(tmp_path, "wb") as f:
                f.write(flatbuffer)
        else:
            model.export(tmp_path, format="litert", verbose=False, input_signature=signature, **options)
    except Exception as e:
        ops, locations = unsupported_ops(e)
        if ops:
            where = f" (in {', '.join(locations)})" if locations else ""
            raise UnsupportedOpsError(
                f"{model.name!r} cannot be exported with LiteRT builtin ops only: it needs {', '.join(ops)}{where}, "
                "which has no builtin kernel (it would need the Flex delegate, absent on phones). Rewrite that "
                "layer with keras.ops that map to builtins.",
                ops,
                locations,
            ) from e
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"LiteRT conversion of {model.name!r} ({quantization}) failed: {first_line}") from e


# ============================================================================== metadata
# The metadata JSON written beside every exported file, `<path>.json` (e.g. `student.tflite.json`):
# how an app feeds the model (input shape, dtype, quantization, "raw pixels 0-255"), what comes out
# (logits, class names), where the file came from, and its measured accuracy once `record_accuracy`
# has been called.
def metadata_path(path):
    """`student.tflite` -> `student.tflite.json`."""
    return os.fspath(path) + ".json"


def read_metadata(path):
    """The metadata dict of the exported file at `path` (the .tflite path)."""
    meta_path = metadata_path(path)
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(f"no metadata beside {os.fspath(path)!r}: expected {meta_path!r}.")
    with open(meta_path, encoding="utf-8") as f:
        return json.load(f)


def record_accuracy(path, metrics, dataset=None):
    """Stores measured `{"top1", "top5", "n"}` (e.g. from `evaluate_litert`) in the file's metadata.

    Example:
    >>> record_accuracy("student_int8.tflite", evaluate_litert("student_int8.tflite", test), "cifar10 test")
    """
    missing = {"top1", "top5", "n"} - set(metrics)
    if missing:
        raise ValueError(
            f"`metrics` must hold 'top1', 'top5' and 'n' (as evaluate_litert returns); missing {sorted(missing)}."
        )
    meta = read_metadata(path)
    meta["accuracy"] = {
        "top1": float(metrics["top1"]),
        "top5": float(metrics["top5"]),
        "n": int(metrics["n"]),
        "dataset": dataset,
        "measured_with": "ai_edge_litert.interpreter.Interpreter",
        "measured_at": _now(),
    }
    write_json_atomic(metadata_path(path), meta)
    return meta


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _json_safe(value):
    """Drops what JSON cannot hold (e.g. initializer objects in a config) instead of failing."""
    try:
        return json.loads(json.dumps(value, default=lambda o: repr(o)))
    except (TypeError, ValueError):
        return None


def _tensor_info(detail):
    scale, zero_point = detail["quantization"]
    quantized = np.dtype(detail["dtype"]) in (np.int8, np.uint8)
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape_signature"]],  # -1: any batch size
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if quantized else None,
    }


def normalization_info(model):
    layer = next((layer for layer in model.layers if isinstance(layer, PixelNormalization)), None)
    if layer is None:
        return {
            "inside_model": False,
            "note": "no PixelNormalization layer found; check what input range the model expects",
        }
    return {
        "inside_model": True,
        "layer": layer.name,
        "mean": list(layer.mean),
        "std": list(layer.std),
        "formula": "(pixel / 255 - mean) / std, per channel",
    }


def source_info(model, exported_from):
    distilled = bool(getattr(model, "distillation", False))
    return {
        "name": model.name,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": int(model.count_params()),
        "exported_from": exported_from,
        "inference_output": (
            "logits: average of the class-token and distillation-token heads" if distilled else "logits"
        ),
        "config": _json_safe(model.get_config()) if hasattr(model, "get_config") else None,
    }


def build_metadata(path, model, exported_from, runner, variant, class_names, extra):
    """The metadata dict of a freshly converted file (`runner`: a LiteRTModel on it) of `variant`, made from `model`."""
    op_types, float_ops = runner.op_types()
    input_info = _tensor_info(runner.input)
    input_info["pixel_range"] = [0, 255]
    input_info["note"] = PIXEL_NOTE
    q = input_info["quantization"]
    if q is not None:
        input_info["note"] += f"; quantize as round(pixel / {q['scale']:.6g} + {q['zero_point']})" + (
            " (uint8 pixels map directly)" if abs(q["scale"] - 1) < 1e-3 and q["zero_point"] == 0 else ""
        )
    output_info = _tensor_info(runner.output)
    output_info["kind"] = "logits"
    meta = {
        "format": "litert",
        "file": os.path.basename(path),
        "size_bytes": os.path.getsize(runner.path),
        "created_at": _now(),
        "libkd_keras_version": libkd_keras.__version__,
        "keras_version": keras.__version__,
        "quantization": variant.quantization,
        "io_dtype": variant.io_dtype,
        "batch_size": variant.batch_size,
        "builtin_ops_only": True,
        "op_types": op_types,
        "float_ops": float_ops if variant.quantization.startswith("int8") else [],
        "cpu_delegate": runner.cpu_delegation(),  # XNNPACK partitions and ops left outside, as measured here
        "input": input_info,
        "output": output_info,
        "normalization": normalization_info(model),
        "class_names": list(class_names) if class_names is not None else None,
        "source_model": source_info(model, exported_from),
        "accuracy": None,
        "extra": _json_safe(extra) if extra is not None else None,
    }
    if variant.quantization == "int8" and float_ops:
        meta["float_ops_note"] = (
            "the converter kept these ops in float32 (no int8 kernel), with (de)quantize around them; "
            "the file still uses builtin ops only"
        )
    elif variant.quantization == "int8_mixed":
        meta["float_ops_note"] = (
            f"int8_mixed keeps {', '.join(MIXED_FLOAT_OPS)} in float32 by design (no int8 kernel in LiteRT's "
            "XNNPACK CPU delegate); weights and the other activations are int8"
        )
    return meta
