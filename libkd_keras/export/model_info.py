"""What export converts: the Keras model behind its argument, in float32, and its input/output shape.

`resolve_model` takes a Keras model or a Distiller (its `.student` is the inference network)
and returns a float32 model: LiteRT variants are derived from the float32 graph, so a model
trained under mixed precision is copied with float32 policies first.

Example:
>>> model, exported_from = resolve_model(distiller)  # warns, returns the float32 student
>>> model_image_shape(model)
(32, 32, 3)
"""

import warnings

import keras


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
