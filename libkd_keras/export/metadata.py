"""The metadata JSON written beside every exported file: `<path>.json`, e.g. `student.tflite.json`.

It tells an app how to feed the model (input shape, dtype, quantization, "raw pixels 0-255"),
what comes out (logits, class names) and where the file came from, plus its measured accuracy
once `record_accuracy` has been called.
"""

import datetime
import json
import os

import keras
import numpy as np

import libkd_keras
from libkd_keras.atomic_files import write_json_atomic
from libkd_keras.layers import PixelNormalization

PIXEL_NOTE = "raw pixels 0-255 expected (RGB); the model normalises inside itself"


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


def build_metadata(
    path, model, runner, *, quantization, io_dtype, batch_size, class_names, exported_from, op_types, float_ops, extra
):
    """The metadata dict for a freshly converted file (`runner`: a LiteRTModel on it)."""
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
    return {
        "format": "litert",
        "file": os.path.basename(path),
        "size_bytes": os.path.getsize(runner.path),
        "created_at": _now(),
        "libkd_keras_version": libkd_keras.__version__,
        "keras_version": keras.__version__,
        "quantization": quantization,
        "io_dtype": io_dtype,
        "batch_size": batch_size,
        "builtin_ops_only": True,
        "op_types": op_types,
        "float_ops": float_ops,
        "cpu_delegate": runner.cpu_delegation(),  # XNNPACK partitions and ops left outside, as measured here
        "input": input_info,
        "output": output_info,
        "normalization": normalization_info(model),
        "class_names": list(class_names) if class_names is not None else None,
        "source_model": source_info(model, exported_from),
        "accuracy": None,
        "extra": _json_safe(extra) if extra is not None else None,
    }
