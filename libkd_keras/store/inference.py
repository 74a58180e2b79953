"""Running the teachers once for the store: check the `{name: model}` dict, `predict`, refuse bad logits."""

import json

import numpy as np
import tensorflow as tf

from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import LOGIT_DTYPES, TEACHER_NAME


def check_teachers(teachers, teacher_metadata, dtype):
    """Validate the `{name: model}` dict, the optional metadata dict and the logits dtype early."""
    if not isinstance(teachers, dict) or not teachers:
        raise StoreError("`teachers` must be a non-empty dict {name: keras.Model}.")
    for name, model in teachers.items():
        if not isinstance(name, str) or not TEACHER_NAME.match(name):
            raise StoreError(
                f"Teacher name {name!r} is not allowed: use letters, digits, '_', '.', '+', '-' "
                "(no '/', ':' or '*'), starting with a letter or digit."
            )
        if not callable(getattr(model, "predict", None)):
            raise StoreError(f"Teacher {name!r} must be a keras.Model (with `predict`); got {type(model).__name__}.")
    metadata = teacher_metadata or {}
    unknown = sorted(set(metadata) - set(teachers))
    if unknown:
        raise StoreError(f"`teacher_metadata` names teachers that are not given: {unknown}.")
    try:
        json.dumps(metadata)
    except TypeError as error:
        raise StoreError(f"`teacher_metadata` must be JSON-serialisable ({error}).") from None
    if dtype not in LOGIT_DTYPES:
        raise StoreError(f"`dtype` must be one of {LOGIT_DTYPES}; got {dtype!r}.")
    return metadata


def teacher_logits(name, model, images, num_classes, batch_size, dtype, verbose=0):
    """Run `model` once over `images` (uint8, store order) with `predict`; refuse non-finite logits.

    Returns float32 `(N, num_classes)` holding exactly the values that `dtype` can store.
    """
    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    ds = ds.map(lambda x: tf.cast(x, tf.float32), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    logits = model.predict(ds, verbose=verbose)  # Keras' compiled predict loop, training=False
    if isinstance(logits, (list, tuple, dict)):
        raise StoreError(
            f"Teacher {name!r} returned {type(logits).__name__}; a teacher must return logits (batch, classes)."
        )
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape != (len(images), num_classes):
        raise StoreError(
            f"Teacher {name!r} returned logits of shape {logits.shape}; expected ({len(images)}, {num_classes}) "
            "(one row per example, one column per class)."
        )
    _refuse_non_finite(name, logits, "")
    with np.errstate(over="ignore"):
        stored = logits.astype(dtype)
    _refuse_non_finite(name, stored, f" once stored as {dtype} (values beyond its range); use dtype='float32'")
    return stored.astype(np.float32)


def _refuse_non_finite(name, logits, how):
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        raise StoreError(
            f"Teacher {name!r} produced NaN or infinite logits{how} for {int(bad.sum())} of {len(logits)} "
            f"examples (first rows: {np.flatnonzero(bad)[:5].tolist()}). Nothing was stored for it; "
            "check the teacher's weights and inputs (raw pixels in [0, 255])."
        )
