"""The user's own teachers ([[teachers.models]], `--teacher [NAME=]PATH`): checked up front, step "teacher/<name>".

    teachers/<name>.keras + .json     the model as libkd runs it (raw [0, 255] pixels in, logits out) and its record

Such a teacher is any saved Keras classifier that returns logits: a `.keras` file, or a KerasHub
`ImageClassifier` preset folder (`save_to_preset`). It is not trained. `check` (called by
`Pipeline.load_data`, so before any step runs) loads each one and refuses, as a `ConfigError`, a
file that is missing or does not load, a model whose input size or channel count does not fit the
run's images, and one whose outputs are not one logit per class of the data (a final softmax is
named). libkd feeds every model raw [0, 255] pixels (DESIGN.md), so a model for `pixels = "0-1"`
gets `Rescaling(1/255)` in front, and a KerasHub preset its own image converter's resize, scale and
offset (its `preprocessor` runs in `predict`, not in a call, so it is folded into the model here).

The step copies the model into the run folder, scores it on the test split and records its source
file's sha256; the store, the online labeller, the ensembles and the report then use the copy like
any trained teacher. On resume a source file whose sha256 changed is refused (the run's store and
students came from the old one); a source file that is gone is a notice, the run goes on with its copy.
"""

import datetime
import hashlib
import os
import shutil
from pathlib import Path

import keras
import numpy as np

import libkd_keras
from libkd_keras.atomic_files import file_digest, read_json, save_model_atomic, temporary_sibling, write_json_atomic
from libkd_keras.evaluation import top_k_accuracy
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.steps import Made

KERAS_HUB = "keras_hub"  # the record's "needs": the package whose layers the saved copy holds


def own_specs(config):
    """The user's own teachers of a `Config` (their `TeacherSpec`s), in config order."""
    return [spec for spec in config.teacher_specs if spec.path]


def file_sha256(path):
    """sha256 of a file, or of a folder's files (their relative paths and bytes, in sorted order)."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)[1]
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def is_keras_hub_preset(path):
    """Whether `path` is a folder written by KerasHub's `save_to_preset` (config.json + metadata.json)."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and (path / "metadata.json").is_file()


def import_libraries(record):
    """Imports what a teacher's saved copy needs to load (KerasHub's layers), from its record."""
    if (record or {}).get("needs") == KERAS_HUB:
        import keras_hub  # noqa: F401 - registers KerasHub's classes for keras.saving.load_model


def _where(spec):
    return f"teacher {spec.name!r} ({spec.path!r})"


def load_source(spec, image_shape):
    """`(model, inner, needs)`: the user's model as libkd runs it on `image_shape` images (raw pixels in), the
    loaded model itself, and the package its copy needs to load ("" or "keras_hub"). A file that is missing
    or does not load is a ConfigError."""
    path = Path(spec.path)
    fix = (
        "give the path of a saved Keras classifier (.keras file or KerasHub preset folder) in "
        "[[teachers.models]] or --teacher"
    )
    if not path.exists():
        raise ConfigError(f"{_where(spec)} does not exist; {fix}.")
    converter, needs = None, ""
    try:
        if is_keras_hub_preset(path):
            try:
                import keras_hub
            except ImportError:
                raise ConfigError(
                    f"{_where(spec)} is a KerasHub preset folder, and keras-hub is not installed: "
                    "pip install keras-hub."
                ) from None
            model = keras_hub.models.ImageClassifier.from_preset(str(path))
            converter = getattr(getattr(model, "preprocessor", None), "image_converter", None)
            needs = KERAS_HUB
        elif path.is_dir():
            raise ConfigError(
                f"{_where(spec)} is a folder but not a KerasHub preset (no config.json + metadata.json); {fix}."
            )
        else:
            model = keras.saving.load_model(str(path), compile=False)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - any loading failure is the user's file, named in one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"{_where(spec)} cannot be loaded as a Keras model: {first}. {fix[0].upper()}{fix[1:]}."
        ) from None
    return raw_pixel_model(model, spec, image_shape, converter), model, needs


def raw_pixel_model(model, spec, image_shape, converter=None):
    """`model` behind the layers that map raw [0, 255] pixels to what it expects (itself when it takes them)."""
    scale, offset = (
        (getattr(converter, "scale", None), getattr(converter, "offset", None)) if converter else (None, None)
    )
    size = tuple(getattr(converter, "image_size", None) or ()) if converter else ()
    if spec.pixels == "0-255" and scale is None and offset is None and (not size or size == tuple(image_shape[:2])):
        return model
    inputs = keras.Input(shape=tuple(image_shape), name="pixels")
    x = inputs
    if size and size != tuple(image_shape[:2]):
        x = keras.layers.Resizing(
            *size,
            interpolation=getattr(converter, "interpolation", "bilinear"),
            crop_to_aspect_ratio=bool(getattr(converter, "crop_to_aspect_ratio", False)),
            dtype="float32",
        )(x)
    if spec.pixels == "0-1":
        x = keras.layers.Rescaling(1.0 / 255.0, dtype="float32", name="pixels_to_0_1")(x)
    if scale is not None or offset is not None:  # KerasHub's image converter: x * scale + offset
        x = keras.layers.Rescaling(
            1.0 if scale is None else scale, 0.0 if offset is None else offset, dtype="float32", name="image_converter"
        )(x)
    return keras.Model(inputs, model(x), name=spec.name)


def check_fits(spec, model, split):
    """A ConfigError unless `model` takes `split`'s images and returns one logit per class of `split`."""
    height, width, channels = split.image_shape
    try:
        declared = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        declared = ()  # a subclassed model: the call below tells
    if len(declared) == 4:
        h, w, c = declared[1:]
        if c not in (None, channels):
            raise ConfigError(
                f"{_where(spec)} takes images with {c} channels; the run's images have {channels} (RGB). "
                "Bring a model for RGB images."
            )
        if (h, w) != (None, None) and (h, w) != (height, width):
            raise ConfigError(
                f"{_where(spec)} takes {h}x{w} images but the run's images are {height}x{width}; set "
                f"data.image_size = {h} (--image-size {h}) if the images may be resized to its size, or bring a model "
                f"for {height}x{width} images."
            )
    images = np.asarray(split.images[:8], dtype="float32")
    try:
        outputs = keras.ops.convert_to_numpy(model(images, training=False))
    except Exception as error:  # noqa: BLE001 - the user's model failing on the run's images, named in one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"{_where(spec)} cannot run on the run's {height}x{width}x{channels} images: {first}."
        ) from None
    if outputs.ndim != 2 or outputs.shape[1] != split.num_classes:
        raise ConfigError(
            f"{_where(spec)} returns outputs of shape {tuple(outputs.shape)} on a batch of {len(images)}, but the "
            f"run's data has {split.num_classes} classes ({', '.join(split.class_names[:5])}"
            f"{', ...' if split.num_classes > 5 else ''}): a teacher returns (batch, {split.num_classes}) logits in "
            "the data's class order. Bring a model trained on these classes, or choose the data set it was trained on."
        )
    if not np.isfinite(outputs).all():
        raise ConfigError(f"{_where(spec)} returns NaN or infinite outputs on the run's images.")
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        raise ConfigError(
            f"{_where(spec)} returns probabilities (its outputs are non-negative and sum to 1): libkd's teachers "
            "return logits, which the store keeps and soft targets divide by the temperature. Save the model "
            "without its final softmax."
        )


def _sources(pipeline):
    """The checked user models of this pipeline, `{name: (model, inner, needs, sha256)}` (loaded once)."""
    if not hasattr(pipeline, "own_teacher_sources"):
        pipeline.own_teacher_sources = {}
    return pipeline.own_teacher_sources


def check(pipeline):
    """Checks every user teacher against the run's data before any step runs (a ConfigError names the first problem).

    An installed teacher (step done) is checked against its recorded sha256 instead: a changed source
    file is refused, a missing one is a notice (the run has its copy).
    """
    folder, test = pipeline.folder, pipeline.split("test")
    for spec in own_specs(pipeline.config):
        if folder.done(f"teacher/{spec.name}"):
            recorded = (read_json(folder.teacher_json(spec.name)) or {}).get("source", {}).get("sha256")
            if not Path(spec.path).exists():
                pipeline.say(
                    f"libkd: notice: {_where(spec)} is gone; this run goes on with its copy "
                    f"{folder.relative(folder.teacher_model(spec.name))}."
                )
            elif recorded and (now := file_sha256(spec.path)) != recorded:
                raise ConfigError(
                    f"{_where(spec)} changed since this run copied it in (sha256 {recorded[:12]}... then, "
                    f"{now[:12]}... now): this run's store and students come from the old model. "
                    "Put the old file back to go on with this run, or start a new run for the new model with "
                    "--name NEW_NAME (or --out NEW_FOLDER)."
                )
            continue
        sources = _sources(pipeline)
        if spec.name not in sources:
            model, inner, needs = load_source(spec, test.image_shape)
            check_fits(spec, model, test)
            sources[spec.name] = (model, inner, needs, file_sha256(spec.path))


def install(pipeline, spec, announce):
    """The work of step "teacher/<name>" of a user teacher: its model into the run folder, scored on the test
    split, recorded (a `Made`)."""
    folder, test = pipeline.folder, pipeline.split("test")
    if spec.name not in _sources(pipeline):
        check(pipeline)
    model, inner, needs, sha256 = _sources(pipeline)[spec.name]
    announce(f": your model {spec.path} (not trained), scored on {len(test):,} images")
    target = folder.teacher_model(spec.name)
    if Path(spec.path).is_file() and model is inner:  # the file as it is, byte for byte
        with temporary_sibling(target, suffix=".keras") as tmp:
            shutil.copyfile(spec.path, tmp)
            os.replace(tmp, target)
    else:
        save_model_atomic(model, target)
    logits = model.predict(
        np.asarray(test.images, dtype="float32"), batch_size=pipeline.config.store.batch_size, verbose=0
    )
    top_k = min(5, test.num_classes)
    top1, top5 = top_k_accuracy(logits, test.labels, 1), top_k_accuracy(logits, test.labels, top_k)
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    record = {
        "name": spec.name,
        "architecture": f"{inner.name} ({type(inner).__name__})",
        "family": spec.family,
        "source": {"path": spec.path, "sha256": sha256, "pixels": spec.pixels, "keras_hub_preset": needs == KERAS_HUB},
        "needs": needs,
        "seed": None,
        "epochs": None,
        "test_dataset": {
            "name": test.name,
            "split": test.split,
            "num_examples": len(test),
            "fingerprint": test.fingerprint,
        },
        "num_classes": test.num_classes,
        "class_names": list(test.class_names),
        "input_shape": list(test.image_shape),
        "top1_test_accuracy": float(top1),
        "top5_test_accuracy": float(top5),
        "top_k": top_k,
        "train_accuracy": None,
        "training_time_s": None,
        "trainable_parameters": trainable,
        "size_mb": trainable * 4 / 2**20,
        "file_size_mb": os.path.getsize(target) / 2**20,
        "precision": model.dtype_policy.name,
        "history": {},
        "model_file": target.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"libkd_keras": libkd_keras.__version__, "keras": keras.__version__},
    }
    write_json_atomic(folder.teacher_json(spec.name), record)  # last: the record says the copy is whole
    return Made(
        summary={"top1": float(top1), "sha256": sha256},
        detail=f"top-1 {100 * top1:.1f}%",
        title=f"teacher {spec.name} (your model, not trained)",
    )
