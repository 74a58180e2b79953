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

`to_litert` checks its options, resolves the model (`model_info.py`), converts (`converter.py`),
then loads and runs the file once before writing it and its metadata (`metadata.py`).
"""

import json
import os

import numpy as np
import tensorflow as tf

from libkd_keras.atomic_files import tempfile_folder, temporary_sibling
from libkd_keras.choices import QUANTIZATIONS
from libkd_keras.export.converter import IO_DTYPES, MIXED_FLOAT_OPS, UnsupportedOpsError, convert, converter_options
from libkd_keras.export.files import check_output_path
from libkd_keras.export.inputs import calibration_images
from libkd_keras.export.metadata import build_metadata, metadata_path
from libkd_keras.export.model_info import model_image_shape, model_num_classes, resolve_model
from libkd_keras.export.runtime import LiteRTModel

__all__ = ["MIXED_FLOAT_OPS", "QUANTIZATIONS", "UnsupportedOpsError", "to_litert"]


def _check_options(quantization, io_dtype, batch_size, representative_data, class_names):
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
    return io_dtype


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
    io_dtype = _check_options(quantization, io_dtype, batch_size, representative_data, class_names)
    model, exported_from = resolve_model(model)
    image_shape = model_image_shape(model)
    classes = model_num_classes(model)
    if class_names is not None and classes is not None and len(class_names) != classes:
        raise ValueError(f"got {len(class_names)} class names for a model with {classes} outputs.")
    calibration = calibration_images(representative_data, image_shape) if quantization.startswith("int8") else None

    signature = [tf.TensorSpec((batch_size, *image_shape), tf.float32, name="pixels")]
    options = converter_options(quantization, io_dtype, calibration)
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
        op_types, float_ops = runner.op_types()
        meta = build_metadata(
            path,
            model,
            runner,
            quantization=quantization,
            io_dtype=io_dtype,
            batch_size=batch_size,
            class_names=class_names,
            exported_from=exported_from,
            op_types=op_types,
            float_ops=float_ops if quantization.startswith("int8") else [],
            extra=metadata,
        )
        if quantization == "int8" and float_ops:
            meta["float_ops_note"] = (
                "the converter kept these ops in float32 (no int8 kernel), with (de)quantize around them; "
                "the file still uses builtin ops only"
            )
        elif quantization == "int8_mixed":
            meta["float_ops_note"] = (
                f"int8_mixed keeps {', '.join(MIXED_FLOAT_OPS)} in float32 by design (no int8 kernel in LiteRT's "
                "XNNPACK CPU delegate); weights and the other activations are int8"
            )
        with open(tmp_json, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        os.replace(tmp_path, path)
        try:
            os.replace(tmp_json, metadata_path(path))
        except OSError:
            os.remove(path)  # never leave a file without its metadata
            raise
    return {**meta, "path": path, "metadata_path": metadata_path(path)}
