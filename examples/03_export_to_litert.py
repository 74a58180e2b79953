# %% [markdown]
# # Exporting a DeiT student to LiteRT and running it on an image
#
# **Description:** export a (distilled) DeiT student to LiteRT (TFLite) in five variants,
# check their accuracy, size and latency against the Keras model, and classify an image file
# with the LiteRT interpreter, as an Android or iOS app would.
#
# `libkd_keras.export.to_litert` converts through TensorFlow's LiteRT converter with
# **builtin ops only**: a model that would need a Flex (TensorFlow) op is refused with the op's
# name instead of producing a file a phone cannot run. The exported file takes **raw pixels**
# (float32 in [0, 255], or uint8 for the full-integer variant): normalisation is inside the
# model. For a distilled DeiT the file computes the inference output, the average of the class
# and the distillation heads.
#
# This example trains a small student on a toy problem for a few seconds so that it runs on
# its own; export a student from `01_distill_from_stored_labels` (or `libkd pipeline`) the
# same way.

# %%
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from libkd_keras.data import Split
from libkd_keras.distill import baseline, distiller_for, make_student, student_optimizer
from libkd_keras.export import benchmark_litert, evaluate_keras, evaluate_litert, read_metadata, to_litert

SMALL = os.environ.get("LIBKD_EXAMPLES_SMALL") == "1"  # the test suite's even smaller setting
QUANTIZATIONS = ("float32", "int8") if SMALL else ("float32", "float16", "dynamic", "int8", "int8_mixed")
LATENCY_RUNS = 10 if SMALL else 50
IMAGE_SIZE, BATCH_SIZE = 16, 64

WORK_DIR = Path(os.environ.get("LIBKD_EXAMPLES_OUT") or Path(tempfile.gettempdir()) / "libkd_examples")
WORK_DIR = WORK_DIR / "03_export_to_litert"
shutil.rmtree(WORK_DIR, ignore_errors=True)
WORK_DIR.mkdir(parents=True)
keras.utils.set_random_seed(0)

# %% [markdown]
# ## A small student to export
#
# A toy 4-class problem (each class a tint) and a small DeiT with a distillation token,
# trained briefly through the `Distiller` on the true labels alone (`distillation="none"`
# trains both heads on the labels); any trained student exports the same way.


# %%
def toy_split(n, split, seed, num_classes=4):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    tints = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [200, 200, 60]], dtype=float)
    images = tints[labels][:, None, None, :] + rng.normal(0, 40, (n, IMAGE_SIZE, IMAGE_SIZE, 3))
    images = np.clip(images, 0, 255).astype(np.uint8)
    return Split(images, labels, np.arange(n), ["red", "green", "blue", "yellow"], name="toy", split=split)


train, test = toy_split(256, "train", 0), toy_split(128, "test", 1)
recipe = baseline(distillation="none", batch_size=BATCH_SIZE, warmup_epochs=0, base_learning_rate=4e-3)
student = make_student(
    recipe,
    num_classes=train.num_classes,
    image_size=IMAGE_SIZE,
    patch_size=4,
    variant=None,
    dim=32,
    depth=2,
    num_heads=2,
    distillation_token=True,
    name="student",
)
trainer = distiller_for(recipe, student)
trainer.compile(optimizer=student_optimizer(recipe, steps_per_epoch=len(train) // BATCH_SIZE, epochs=3))
trainer.fit(train.dataset(BATCH_SIZE, shuffle=True), epochs=3, verbose=2)
print(f"{student.name}: {student.count_params():,} parameters")

# %% [markdown]
# ## Export
#
# `to_litert(model, path, quantization)` writes the `.tflite` file and a metadata JSON beside
# it (input shape and dtype, normalisation, class names, quantization, the ops used).
#
# - `float32`: the model as trained;
# - `float16`: weights stored in half precision (half the size, float compute);
# - `dynamic`: int8 weights, activations quantized on the fly;
# - `int8`: full-integer quantization calibrated on a few hundred training images
#   (`representative_data`), here with uint8 input so an app can pass camera pixels directly;
#   what integer-only NPU/DSP delegates need;
# - `int8_mixed`: int8 too, but attention, GELU, LayerNorm statistics and adds stay float32,
#   because LiteRT's CPU delegate (XNNPACK) has no int8 kernels for them: the fastest on CPUs.

# %%
files = {}
for quantization in QUANTIZATIONS:
    path = WORK_DIR / f"student_{quantization}.tflite"
    options = {
        "int8": dict(representative_data=train.images[:200], io_dtype="uint8"),
        "int8_mixed": dict(representative_data=train.images[:200]),
    }.get(quantization, {})
    to_litert(student, path, quantization, class_names=list(train.class_names), **options)
    files[quantization] = path
    print(f"{path.name:>24}: {path.stat().st_size / 1e6:.3f} MB")

print(read_metadata(files["int8"])["input"])

# %% [markdown]
# ## Accuracy, size and latency
#
# `evaluate_litert` runs a file with `ai_edge_litert`'s interpreter over a data set;
# `benchmark_litert` measures batch-1 latency (median over many runs after a warm-up). The
# Keras model on the same images is the reference.

# %%
keras_scores = evaluate_keras(student, test, test.image_shape)
print(f"{'keras':>8}: top-1 {100 * keras_scores['top1']:.1f}%")
for quantization, path in files.items():
    scores = evaluate_litert(path, test)
    latency = benchmark_litert(path, threads=1, runs=LATENCY_RUNS, warmup=3)
    print(
        f"{quantization:>8}: top-1 {100 * scores['top1']:.1f}%, {latency['size_mb']:.3f} MB, "
        f"batch-1 latency {latency['median_ms']:.2f} ms"
    )

# %% [markdown]
# ## Classify an image file
#
# What an app does, with nothing but the LiteRT runtime: read an image, resize it to the
# model's input, hand over the raw pixels, run, read the logits. For the uint8 file the input
# scale is 1 and the zero point 0, so pixels go in unchanged; the output is dequantized with
# its own scale and zero point.

# %%
image_path = WORK_DIR / "example.png"
keras.utils.save_img(image_path, test.images[2])  # a stand-in for a photo from the camera

from ai_edge_litert.interpreter import Interpreter  # noqa: E402  (the only runtime an app needs)

interpreter = Interpreter(model_path=str(files["int8"]))
interpreter.allocate_tensors()
input_detail = interpreter.get_input_details()[0]
output_detail = interpreter.get_output_details()[0]
height, width = input_detail["shape"][1:3]

pixels = keras.utils.img_to_array(keras.utils.load_img(image_path, target_size=(height, width)))
interpreter.set_tensor(input_detail["index"], pixels[None].astype(input_detail["dtype"]))
interpreter.invoke()
raw = interpreter.get_tensor(output_detail["index"])[0]
scale, zero_point = output_detail["quantization"]
logits = (raw.astype(np.float32) - zero_point) * scale if scale else raw.astype(np.float32)
probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()

class_names = read_metadata(files["int8"])["class_names"]
print("input:", input_detail["dtype"].__name__, tuple(int(d) for d in input_detail["shape"]))
for name, p in sorted(zip(class_names, probabilities), key=lambda item: -item[1]):
    print(f"{name:>7}: {p:.3f}")
print("true class:", train.class_names[test.labels[2]])
keras_class = int(np.argmax(keras.ops.convert_to_numpy(student(pixels[None]))))
print("the Keras model says:", class_names[keras_class])

# %% [markdown]
# ## On a phone
#
# Copy the `.tflite` file into the app and run it with LiteRT (Android:
# `org.tensorflow.lite.Interpreter` / LiteRT's `CompiledModel`; iOS: `TensorFlowLiteSwift`).
# The metadata JSON beside it says what the input expects (shape, dtype, raw pixels in
# [0, 255]) and which class each output is.
