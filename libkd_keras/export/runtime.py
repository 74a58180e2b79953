"""Running an exported .tflite file with the LiteRT interpreter (`ai_edge_litert`).

`LiteRTModel` hides what differs between the four export variants: it quantizes raw pixels
for int8/uint8 inputs, dequantizes int8/uint8 outputs back to logits, and feeds a batch at
once when the file has a dynamic batch dimension (one chunk of the fixed batch otherwise).
"""

import os
from collections import Counter

import numpy as np
from ai_edge_litert.interpreter import Interpreter

TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every LiteRT flatbuffer


def check_litert_file(path):
    """Returns `path` as a str if it names a readable file that starts like a LiteRT flatbuffer."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike naming a .tflite file; got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no LiteRT file at {path!r}.")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a file; give the path of a .tflite model.")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(
            f"{path!r} is not a LiteRT (.tflite) model: it lacks the 'TFL3' flatbuffer identifier. "
            "Export one with libkd_keras.export.to_litert."
        )
    return path


def quantize(values, dtype, scale, zero_point):
    info = np.iinfo(dtype)
    q = np.round(np.asarray(values, np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values, scale, zero_point):
    return (np.asarray(values, np.float32) - zero_point) * np.float32(scale)


class LiteRTModel:
    """A .tflite classifier: raw pixels in, float logits out.

    Example:
    >>> runner = LiteRTModel("student_int8.tflite", threads=1)
    >>> logits = runner.predict(images)  # images: (N, H, W, 3) raw pixels in [0, 255]
    """

    def __init__(self, path, threads=None):
        self.path = check_litert_file(path)
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")
        try:
            self.interpreter = Interpreter(model_path=self.path, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path!r} could not be loaded as a LiteRT model: {e}") from e
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.path!r} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "libkd_keras runs image classifiers with one input and one output."
            )
        self.input, self.output = inputs[0], outputs[0]
        signature = self.input["shape_signature"]
        self.dynamic_batch = int(signature[0]) == -1
        self.fixed_batch = None if self.dynamic_batch else int(signature[0])
        self.image_shape = tuple(int(d) for d in self.input["shape"][1:])
        self.batch = int(self.input["shape"][0])

    @property
    def input_dtype(self):
        return np.dtype(self.input["dtype"])

    def _resize(self, batch):
        if batch != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.image_shape])
            self.interpreter.allocate_tensors()
            self.batch = batch

    def prepare(self, images):
        """Raw float pixels -> what the input tensor takes (quantized for int8/uint8 inputs)."""
        if self.input_dtype in (np.int8, np.uint8):
            scale, zero_point = self.input["quantization"]
            return quantize(images, self.input_dtype, scale, zero_point)
        return np.asarray(images, self.input_dtype)

    def invoke(self, prepared):
        """Runs one batch already in the input dtype; returns float logits."""
        self._resize(len(prepared))
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        if np.dtype(out.dtype) in (np.int8, np.uint8):
            scale, zero_point = self.output["quantization"]
            return dequantize(out, scale, zero_point)
        return np.asarray(out, np.float32)

    def predict(self, images, batch_size=64):
        """Logits `(N, classes)` for raw pixels `(N, H, W, C)`.

        A file with a dynamic batch dimension runs `batch_size` images per invocation; one with
        a fixed batch runs chunks of that batch (the last one zero-padded).
        """
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{self.path!r} takes images of shape (N, {', '.join(map(str, self.image_shape))}); "
                f"got an array of shape {images.shape}."
            )
        step = int(batch_size) if self.dynamic_batch else self.fixed_batch
        outputs = []
        for start in range(0, len(images), step):
            chunk = self.prepare(images[start : start + step])
            n = len(chunk)
            if not self.dynamic_batch and n < step:
                chunk = np.concatenate([chunk, np.zeros((step - n, *self.image_shape), chunk.dtype)])
            outputs.append(self.invoke(chunk)[:n])
        if not outputs:
            return np.zeros((0, int(self.output["shape"][-1])), np.float32)
        return np.concatenate(outputs)

    def op_types(self):
        """Sorted builtin op names in the file, and those computing on float32 tensors.

        Uses the interpreter's op listing (a private but long-standing method); returns
        `(None, None)` when this runtime lacks it.
        """
        ops_details = getattr(self.interpreter, "_get_ops_details", None)
        if ops_details is None:
            return None, None
        dtypes = {t["index"]: np.dtype(t["dtype"]) for t in self.interpreter.get_tensor_details()}
        names, float_ops = set(), set()
        for op in ops_details():
            name = op["op_name"]
            if name == "DELEGATE":  # runtime node standing for a delegated partition
                continue
            names.add(name)
            tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
            if name not in ("QUANTIZE", "DEQUANTIZE") and any(dtypes.get(i) == np.float32 for i in tensors):
                float_ops.add(name)
        return sorted(names), sorted(float_ops)

    def cpu_delegation(self):
        """How the default CPU delegate (XNNPACK) took the graph: `{"partitions", "ops_outside"}`.

        `partitions`: delegated subgraphs (1 = the whole model runs in XNNPACK). `ops_outside`:
        `{op name: count}` of the ops left to LiteRT's own kernels; each splits the graph, and a
        file with many is slow. Read from the interpreter's node list, where a delegated node
        stays listed beside the DELEGATE node that runs it: a node runs outside when a tensor it
        writes is read by a DELEGATE node or is a model output, or links it to such a node
        without passing through a delegate. `None` when this runtime lacks the listing.
        """
        ops_details = getattr(self.interpreter, "_get_ops_details", None)
        if ops_details is None:
            return None
        nodes = ops_details()
        delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
        read_by_delegate = {t for n in delegates for t in n["inputs"]}
        written_by_delegate = {t for n in delegates for t in n["outputs"]}
        model_io = {d["index"] for d in (*self.interpreter.get_input_details(), *self.interpreter.get_output_details())}
        plain = {n["index"]: n for n in nodes if n["op_name"] != "DELEGATE"}
        writer = {t: i for i, n in plain.items() for t in n["outputs"]}
        outside = {
            i
            for i, n in plain.items()
            if any((t in read_by_delegate or t in model_io) and t not in written_by_delegate for t in n["outputs"])
        }
        grew = True
        while grew:  # close over links that bypass every delegate
            before = len(outside)
            for i, n in plain.items():
                if i not in outside and any(
                    writer.get(t) in outside and t not in read_by_delegate for t in n["inputs"]
                ):
                    outside.add(i)
            for i in list(outside):
                for t in plain[i]["inputs"]:
                    if t in writer and t not in written_by_delegate and t not in model_io:
                        outside.add(writer[t])
            grew = len(outside) > before
        return {
            "partitions": len(delegates),
            "ops_outside": dict(sorted(Counter(plain[i]["op_name"] for i in outside).items())),
        }
