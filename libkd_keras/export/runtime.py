"""Running an exported .tflite file with the LiteRT interpreter (`ai_edge_litert`), and measuring it.

Read from the top:
- `LiteRTModel` hides what differs between the export variants: it quantizes raw pixels for
  int8/uint8 inputs, dequantizes int8/uint8 outputs back to logits, and feeds a batch at once when
  the file has a dynamic batch dimension (one chunk of the fixed batch otherwise).
- The images export accepts, turned into numpy batches of raw pixels. Labelled data (for
  accuracy): `(images, labels)` arrays, an object with `.images` and `.labels` (a
  `libkd_keras.data.Split`), or a `tf.data.Dataset` of `(image, label)` or `(image, {"label": ...})`,
  batched or not; labels may be integer ids or probability rows. Calibration data (int8): the
  same, or images alone (an array or a dataset of images).
- Top-1 / top-5 accuracy of an exported file (`evaluate_litert`) and of the Keras model on the same
  data (`evaluate_keras`); both count with `libkd_keras.evaluation.TopK`, the library's one accuracy.
- Batch-1 latency (`benchmark_litert`). On a shared machine, timings drift with other people's load;
  `compare_latency` therefore interleaves the files (one invocation of each per round), so their
  ratios stay fair even when the absolute numbers move.
"""

import os
import time
from collections import Counter

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from libkd_keras.evaluation import TopK

TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every LiteRT flatbuffer
MAX_CALIBRATION_IMAGES = 1000


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


# ============================================================== the images export accepts
def _check_pixels(images, what):
    """Models take raw pixels in [0, 255] (docs/DESIGN.md); catch normalised inputs early."""
    if images.size == 0:
        return
    low, high = float(np.min(images)), float(np.max(images))
    if low < 0.0 or high > 255.0:
        raise ValueError(
            f"{what} has values in [{low:.3g}, {high:.3g}]; models take raw pixels in [0, 255] and "
            "normalise inside, so pass unnormalised images."
        )
    if high <= 1.0:
        raise ValueError(
            f"{what} looks normalised to [0, 1] (max {high:.3g}); models take raw pixels in [0, 255]. "
            "Multiply by 255 or pass the uint8 images."
        )


def _check_shape(images, image_shape, what):
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{what} must be images of shape (N, {', '.join(map(str, image_shape))}) to fit the model; "
            f"got shape {images.shape}."
        )


def _labels(y):
    if isinstance(y, dict):
        if "label" not in y:
            raise ValueError(f"label dicts must have a 'label' entry; got keys {sorted(y)}.")
        y = y["label"]
    y = np.asarray(y)
    return np.argmax(y, axis=-1) if y.ndim == 2 else y.reshape(-1)  # probability rows -> ids


def labelled_batches(data, image_shape, batch_size=64):
    """Yields `(images float32 (B, H, W, C), labels int64 (B,))` from any accepted source."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    if isinstance(data, tf.data.Dataset):
        yield from _dataset_batches(data, image_shape, batch_size)
        return
    if hasattr(data, "images") and hasattr(data, "labels"):
        data = (data.images, data.labels)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            "data must be (images, labels) arrays, an object with .images and .labels, or a tf.data.Dataset "
            f"of (image, label) / (image, {{'label': ...}}); got {type(data).__name__}."
        )
    images, labels = np.asarray(data[0]), _labels(data[1])
    _check_shape(images, image_shape, "the images")
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels.")
    if len(images):
        _check_pixels(images[:batch_size], "the images")
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size].astype(np.float32), labels[start : start + batch_size].astype(np.int64)


def _dataset_batches(dataset, image_shape, batch_size):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise TypeError(
            f"the dataset must yield (image, label) or (image, {{'label': ...}}) pairs; its elements are {spec}."
        )
    if spec[0].shape.rank == 3:  # unbatched
        dataset = dataset.batch(batch_size)
    first = True
    for element in dataset.as_numpy_iterator():
        images, labels = np.asarray(element[0]), _labels(element[1])
        _check_shape(images, image_shape, "the dataset's images")
        if first:
            _check_pixels(images, "the dataset's images")
            first = False
        yield images.astype(np.float32), labels.astype(np.int64)


def calibration_images(data, image_shape, limit=MAX_CALIBRATION_IMAGES):
    """The first `limit` images of `data` as float32 `(N, H, W, C)`, checked, for int8 calibration."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        image_spec = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(image_spec, tf.TensorSpec):
            raise TypeError(f"representative_data must yield images or (image, label) pairs; its elements are {spec}.")
        if isinstance(spec, tuple):
            data = data.map(lambda *element: element[0])
        if image_spec.shape.rank == 3:
            data = data.batch(64)
        chunks, count = [], 0
        for batch in data.as_numpy_iterator():
            chunks.append(np.asarray(batch))
            count += len(batch)
            if count >= limit:
                break
        images = np.concatenate(chunks) if chunks else np.zeros((0, *image_shape), np.float32)
    else:
        if hasattr(data, "images"):
            data = data.images
        elif isinstance(data, (tuple, list)) and len(data) == 2 and np.ndim(data[0]) == 4:
            data = data[0]  # (images, labels)
        images = np.asarray(data)
    if images.dtype == object or not np.issubdtype(images.dtype, np.number):
        raise TypeError(f"representative_data must hold numeric images; got dtype {images.dtype}.")
    images = images[:limit]
    _check_shape(images, image_shape, "representative_data")
    if len(images) == 0:
        raise ValueError("representative_data is empty; int8 calibration needs a few hundred training images.")
    _check_pixels(images, "representative_data")
    return images.astype(np.float32)


# ================================================================================ accuracy
def evaluate_litert(path, data, batch_size=64, threads=1):
    """Top-1/top-5 accuracy (fractions in [0, 1]) of the .tflite file at `path` on `data`.

    Runs `ai_edge_litert.interpreter.Interpreter`: `batch_size` images per invocation when the
    file has a dynamic batch dimension, otherwise chunks of its fixed batch (batch 1: one image
    at a time). int8/uint8 inputs are quantized from raw pixels and outputs dequantized.

    Args:
        data: `(images, labels)` arrays, a `Split`, or a tf.data of `(image, label)` or
            `(image, {"label": ...})` (batched or not), images as raw pixels in [0, 255].

    Example:
    >>> evaluate_litert("student_int8.tflite", (x_test, y_test))
    {'top1': 0.912, 'top5': 0.997, 'n': 2000}
    """
    runner = LiteRTModel(path, threads=threads)
    counts = TopK()
    for images, labels in labelled_batches(data, runner.image_shape, batch_size):
        counts.update(runner.predict(images, batch_size=batch_size), labels)
    return counts.result()


def evaluate_keras(model, data, image_shape, batch_size=64):
    """The same metrics for the Keras model itself (inference mode: `training=False`)."""
    counts = TopK()
    for images, labels in labelled_batches(data, image_shape, batch_size):
        counts.update(np.asarray(model(images, training=False)), labels)
    return counts.result()


# ================================================================================= latency
def positive_int(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return value


def compare_latency(paths, threads=1, runs=100, warmup=10, seed=0):
    """Batch-1 latency of several files measured in the same interleaved rounds.

    Each file gets the same random raw-pixel image (not zeros: some kernels skip zero rows),
    quantized to its input dtype. Returns one dict per path, as `benchmark_litert`.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("`paths` is empty; give at least one .tflite file.")
    positive_int("threads", threads)
    positive_int("runs", runs)
    positive_int("warmup", warmup, minimum=0)
    runners = [LiteRTModel(p, threads=threads) for p in paths]
    feeds = []
    for runner in runners:
        batch = runner.fixed_batch or 1  # a file with a dynamic batch runs at batch 1
        image = np.random.default_rng(seed).uniform(0, 255, (batch, *runner.image_shape)).astype(np.float32)
        feeds.append(runner.prepare(image))
    for _ in range(warmup):
        for runner, feed in zip(runners, feeds):
            runner.invoke(feed)
    times = [[] for _ in runners]
    for _ in range(runs):
        for runner, feed, spent in zip(runners, feeds, times):
            start = time.perf_counter()
            runner.invoke(feed)
            spent.append((time.perf_counter() - start) * 1000.0)
    return [
        {
            "path": runner.path,
            "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(np.mean(ms)),
            "min_ms": float(np.min(ms)),
            "size_mb": os.path.getsize(runner.path) / 1e6,
            "threads": threads,
            "runs": runs,
            "warmup": warmup,
            "batch": runner.fixed_batch or 1,
            "input_dtype": runner.input_dtype.name,
        }
        for runner, ms in zip(runners, times)
    ]


def benchmark_litert(path, threads=1, runs=100, warmup=10, seed=0):
    """Batch-1 latency (ms, after `warmup` runs) and file size (MB = 10^6 bytes) of one file.

    Example:
    >>> benchmark_litert("student_int8.tflite", threads=2)
    {'median_ms': 11.8, 'p90_ms': 13.1, 'size_mb': 5.7, ...}
    """
    return compare_latency([path], threads=threads, runs=runs, warmup=warmup, seed=seed)[0]
