"""What the Distiller accepts as batch targets, and the check that the teacher rows fit its loss.

Store batches carry `"target_kind"`, one `kd.describe(rule)` row per example (is_soft, temperature,
rule; `losses.py`), beside the `"teacher"` rows. `kind_checked(dataset, kd)` adds a cheap map that
asserts, batch by batch, that the rows are the kind `kd` trains on (`kd.matches`: hard rows for
`HardDistillation()`, soft rows at its temperature for `SoftDistillation(T)`; vote fractions, which
no temperature changes, fit any). The check runs in `tf.data`, outside the (possibly XLA-compiled)
train step; `kind_errors(kd)` turns its failure into a `ValueError` saying what to change
(`kd.mismatch_message`). The row survives the recipe's augmentation (repeats, per-image ops and
MixUp/CutMix keep extra entries).

Example:
>>> kd = SoftDistillation(4.0)
>>> data = kind_checked(store.dataset(kd), kd)
>>> with kind_errors(kd):
...     distiller_fit(data)
"""

import contextlib
import re

import numpy as np
import tensorflow as tf

KIND = "target_kind"
MARKER = "libkd_keras target kind mismatch"
STORE_HINT = (
    "Build the training data with the store reader, which yields (image, {'label', 'teacher', 'target_kind'}): "
    "`TeacherStore.open(path).dataset(kd, teachers=[...], ...)` with the Distiller's own `kd` "
    "(HardDistillation() or SoftDistillation(T)); "
    "or pass `teachers=[model, ...]` to run the teachers online; "
    "or use kd=None to train the plain student."
)


def split_targets(y, num_classes, needs_teacher, kd):
    """Check batch targets (tensors, arrays or `TensorSpec`s); returns `(labels, teacher_or_None)`."""
    if y is None:
        raise ValueError(
            "The Distiller needs targets: batches of (images, labels) or (images, {'label', 'teacher'}). " + STORE_HINT
        )
    if isinstance(y, dict):
        if "label" not in y:
            raise ValueError(f"Batch targets need a 'label' entry; got keys {sorted(y)}. " + STORE_HINT)
        labels, teacher = y["label"], y.get("teacher")
    else:
        labels, teacher = y, None
    if len(labels.shape) == 2 and labels.shape[-1] not in (None, 1, num_classes):
        raise ValueError(
            f"The student predicts {num_classes} classes but the label rows have "
            f"{labels.shape[-1]}; build the student with num_classes={labels.shape[-1]}."
        )
    if teacher is not None and teacher.shape[-1] not in (None, num_classes):
        raise ValueError(
            f"The student predicts {num_classes} classes but the teacher targets (the store) "
            f"have {teacher.shape[-1]}; build the student with num_classes={teacher.shape[-1]} "
            "or use a store of the same data set."
        )
    if needs_teacher and teacher is None:
        raise ValueError(
            f"Distiller({kd!r}) reads the teacher target from each batch, "
            "but the batch targets have no 'teacher' entry. " + STORE_HINT
        )
    return labels, teacher


def _has_kind(structure):
    return isinstance(structure, dict) and KIND in structure and "teacher" in structure


def kind_checked(dataset, kd):
    """`dataset` with an assertion that every `"target_kind"` row fits `kd` (unchanged without that entry)."""
    spec = getattr(dataset, "element_spec", None)
    if not (isinstance(dataset, tf.data.Dataset) and isinstance(spec, tuple) and len(spec) >= 2 and _has_kind(spec[1])):
        return dataset

    def check(*element):
        kind = tf.cast(element[1][KIND], tf.float32)
        ok = kd.matches(kind)
        first_bad = tf.argmin(tf.concat([tf.cast(ok, tf.int32), [0]], 0))  # the padding row when all fit
        row = tf.concat([kind, tf.zeros([1, 3])], 0)[first_bad]
        assertion = tf.debugging.Assert(tf.reduce_all(ok), [MARKER, row], summarize=3)
        with tf.control_dependencies([assertion]):
            targets = dict(element[1], **{KIND: tf.identity(element[1][KIND])})
        return (element[0], targets, *element[2:])

    return dataset.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def check_kind_arrays(y, kd):
    """The same check on in-memory targets (`fit(x, y)` with a dict `y`)."""
    if not _has_kind(y):
        return
    kind = np.asarray(y[KIND], dtype=np.float32).reshape(-1, 3)
    ok = kd.matches(kind)
    if not ok.all():
        raise ValueError(kd.mismatch_message(kind[np.argmin(ok)].tolist()))


@contextlib.contextmanager
def kind_errors(kd):
    """Turn a failed `kind_checked` assertion (a TensorFlow runtime error) into a clear `ValueError`."""
    try:
        yield
    except tf.errors.OpError as error:
        text = str(error)
        if MARKER not in text:
            raise
        found = re.search(re.escape(MARKER) + r"\]?\s*\[([^\]]*)\]", text)
        try:
            row = [float(v) for v in found.group(1).split()][:3] if found else None
        except ValueError:
            row = None
        raise ValueError(kd.mismatch_message(row if row and len(row) == 3 else None)) from None
