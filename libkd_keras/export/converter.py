"""The LiteRT converter calls: converter settings per quantization, the `int8_mixed` path, and errors.

`convert(...)` writes the flatbuffer of one variant. A model that needs an op without a LiteRT
builtin kernel raises `UnsupportedOpsError` naming the op (and the layer, when the converter
says), instead of producing a file that needs the Flex delegate.
"""

import re
import tempfile
import warnings

import tensorflow as tf

# Kept float32 by "int8_mixed": the ops XNNPACK has no int8 kernel for, and ADD (XNNPACK's int8 ADD
# refuses LayerNorm's `var + eps`, whose constant is tiny; the residual adds go along).
MIXED_FLOAT_OPS = ("BATCH_MATMUL", "SOFTMAX", "GELU", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "ADD")
IO_DTYPES = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8}


class UnsupportedOpsError(ValueError):
    """The model needs ops with no LiteRT builtin kernel. `.ops`: the TF op names; `.locations`: where."""

    def __init__(self, message, ops, locations):
        super().__init__(message)
        self.ops, self.locations = ops, locations


def converter_options(quantization, io_dtype, calibration):
    """Keyword arguments of `model.export(format="litert")` for one quantization (see `litert.py`'s table).

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
