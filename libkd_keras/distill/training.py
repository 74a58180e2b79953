"""`train_student`: train one DeiT student, resumably, and save it with its record (twin of `train_teacher`).

Files for a student called `<name>` in `out_dir`:

    <name>.keras           the trained student, uncompiled (the Distiller wrapper is not saved)
    <name>.json            its record: the same keys as a teacher's record for the same facts
                           (trainable_parameters, size_mb, top1_test_accuracy, training_time_s, ...)
    <name>.predictions.npz with `evaluate`: its class for each test image (`evaluation.save_predictions`)
    logs/<name>/           TensorBoard logs and epochs.json (per-epoch logs while training)
    <name>.backup/         BackupAndRestore state while training, two epochs deep (deleted once both files
                           are saved, so a kill while saving them does not restart the training)

The student learns from teacher targets (`targets`): stored on the clean images (`store.dataset`,
no teacher runs), stored on views it replays (`store.dataset(views=True)`, a multi-view store), or
from the teachers run online on each augmented batch (in `tf.data` on a CPU, in the step on a GPU:
`distill/online.py`); with no teachers, from the labels alone (the student baseline). `.keras` is
written before `.json`, both atomically, so a student whose two files exist is complete.

Example:
>>> recipe = baseline(batch_size=128)
>>> build = student_builder("deit_tiny", num_classes=10, image_size=(32, 32), patch_size=4)
>>> record = train_student(build, train, test, "runs/students", recipe=recipe, epochs=300, store=store,
...                        teachers=["resnet26_s0", "rednet26_s0"], name="ensemble")
>>> record["top1_test_accuracy"], record["trainable_parameters"]
"""

import datetime
import functools
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras import choices, distribute
from libkd_keras.atomic_files import read_json, save_model_atomic, write_json_atomic
from libkd_keras.data.epochs import EpochSeeds, check_epoch_length
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.online import in_input_pipeline, label_online
from libkd_keras.distill.recipes import apply_precision, distiller_for, student_optimizer
from libkd_keras.distill.students import heads_record, teacher_set_size
from libkd_keras.evaluation import PREDICTIONS_SUFFIX
from libkd_keras.resumable import (
    EpochLog,
    TrainingDiverged,
    backup_callback,
    check_finite,
    discard_backup,
    repair_backup,
    validation_epochs,
)
from libkd_keras.store.views import check_replayable


def _dataset_record(split):
    return {"name": split.name, "split": split.split, "num_examples": len(split), "fingerprint": split.fingerprint}


def _restores_dtype_policy(function):
    """`function` with Keras' global dtype policy put back afterwards: a recipe's precision does not leak."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        policy = keras.mixed_precision.dtype_policy()
        try:
            return function(*args, **kwargs)
        finally:
            keras.mixed_precision.set_dtype_policy(policy)

    return wrapped


@_restores_dtype_policy
def train_student(
    student,
    train_split,
    test_split,
    out_dir,
    *,
    recipe,
    epochs,
    seed=0,
    store=None,
    teachers=(),
    ensemble="soft",
    targets="clean",
    teacher_models=None,
    name="student",
    backup_dir=None,
    log_dir=None,
    callbacks=None,
    validate=True,
    validate_every=1,
    evaluate=False,
    compile_options=None,
    extra_record=None,
    verbose="auto",
    overwrite=False,
    say=print,
):
    """Train a student on `train_split` (from `store`'s targets of `teachers`), save `.keras` + `.json`.

    Args:
        student: callable `build(distillation_token: bool) -> DeiT` (called after the seed and the
            recipe's precision are set), or a built DeiT.
        train_split: data.Split. The images the student trains on (the store's split with teachers).
        test_split: data.Split. Validation every epoch (`validate`) and the final evaluation (`evaluate`).
        out_dir: str. Folder of `<name>.keras` and `<name>.json`.
        recipe: StudentRecipe (`libkd_keras/recipes.py`). Optimiser, loss and augmentation;
            `recipe.distillation` must be "none" without teachers and "hard"/"soft" with them.
        epochs: int. Training epochs.
        seed: int. Seeds weights, data order and augmentation.
        store: TeacherStore. The train split's stored teacher logits (required with teachers).
        teachers: list of str. Stored teacher names whose ensemble is the target; () = the baseline.
        ensemble: str. How several teachers are combined (`choices.ENSEMBLES`).
        name: str. File stem.
        targets: str. Where the teacher rows come from (`choices.TARGET_SOURCES`): "clean" (stored on the
            clean images), "views" (stored on views the reader replays; the recipe's flip and crop are
            then the replayed ones) or "online" (`teacher_models` run on each augmented batch).
        teacher_models: dict. `{name: keras.Model}` for `targets="online"`, one per name in `teachers`.
        backup_dir, log_dir: str. BackupAndRestore and TensorBoard folders (defaults beside the files).
        callbacks: list. Extra Keras callbacks.
        validate: bool. Score `test_split` during training (the history's `val_*`).
        validate_every: int. Validate every that many epochs, and always after the last one.
        evaluate: bool. Evaluate every head on `test_split` at the end (`record["evaluation"]`).
        compile_options: dict. Extra `Distiller.compile` arguments (not the optimizer), e.g.
            `{"jit_compile": True}`: XLA, which trains DeiTs faster also on a CPU (`libkd_keras/xla.py`;
            the pipeline's `run.jit_compile = "auto"` does it for you, also for online teachers
            labelling in `tf.data`).
        extra_record: dict. Merged into the record.
        overwrite: bool. Train again even if `<name>.keras` and `<name>.json` exist.
        say: callable. Receives notice lines (e.g. a repaired backup).

    Returns the record (also in `<out_dir>/<name>.json`).
    """
    teachers = list(teachers)
    if (recipe.distillation == "none") != (not teachers):
        raise ValueError(
            f"student {name!r}: distillation='none' goes with no teachers and 'hard'/'soft' with at "
            f"least one; got distillation={recipe.distillation!r} and teachers={teachers}."
        )
    if targets not in choices.TARGET_SOURCES:
        raise ValueError(f"`targets` must be one of {choices.TARGET_SOURCES}; got {targets!r}.")
    online = bool(teachers) and targets == "online"
    if online and sorted(teacher_models or {}) != sorted(teachers):
        raise ValueError(
            f"student {name!r}: targets='online' runs the teachers themselves; `teacher_models` must hold one "
            f"keras.Model per teacher {sorted(teachers)}; got {sorted(teacher_models or {})}."
        )
    if teachers and not online and store is None:
        raise ValueError(f"student {name!r}: teachers {teachers} need the `store` holding their logits.")
    if ensemble not in choices.ENSEMBLES:
        raise ValueError(f"`ensemble` must be one of {choices.ENSEMBLES}; got {ensemble!r}.")
    model_path, record_path = os.path.join(out_dir, f"{name}.keras"), os.path.join(out_dir, f"{name}.json")
    if not overwrite and os.path.exists(model_path) and os.path.exists(record_path):
        return read_json(record_path)
    backup_dir = distribute.worker_dir(str(backup_dir or os.path.join(out_dir, f"{name}.backup")))  # chief: as given
    log_dir = str(log_dir or os.path.join(out_dir, "logs", name))

    keras.utils.set_random_seed(seed)
    apply_precision(recipe)
    model = student(bool(teachers)) if callable(student) and not isinstance(student, keras.Model) else student
    if int(model.num_classes) != train_split.num_classes:
        raise ValueError(f"the student has {model.num_classes} classes; the data has {train_split.num_classes}.")
    views = bool(teachers) and targets == "views"
    if views:
        check_replayable(store, recipe, train_split.image_shape)
    teacher_list = [teacher_models[t] for t in teachers] if online else []
    in_step = online and not in_input_pipeline()  # where online teachers run: distill/online.py
    if in_step:  # the teachers label each augmented batch inside the step
        distiller = distiller_for(recipe, model, teacher_list, teacher_ensemble=ensemble)
    else:
        distiller = distiller_for(recipe, model)
    seeds = EpochSeeds(seed)  # each epoch's order and flip/crop from (seed, epoch): resumes repeat them
    if teachers and not online:
        batches = store.dataset(
            teachers=teachers,
            ensemble=ensemble,
            target=recipe.distillation,
            temperature=recipe.temperature,
            batch_size=recipe.batch_size,
            shuffle=True,
            seed=seeds,
            split=train_split,
            views=views,
        )
    else:  # the baseline, or online teachers: the labelled images alone
        batches = train_split.dataset(recipe.batch_size, shuffle=True, seed=seeds)
    batches = student_augmentation(batches, recipe, train_split.num_classes, seed=seeds, replayed_views=views)
    if online and not in_step:  # the teachers label each augmented batch in tf.data
        batches = label_online(
            batches,
            teacher_list,
            train_split.num_classes,
            rule=ensemble,
            target=recipe.distillation,
            temperature=recipe.temperature,
        )
    steps = math.ceil(len(train_split) / recipe.batch_size)
    check_epoch_length(batches, steps, f"student {name}")
    distiller.compile(optimizer=student_optimizer(recipe, steps, epochs), **dict(compile_options or {}))

    repair_backup(backup_dir, say=say)
    epochs_path = os.path.join(log_dir, "epochs.json")
    if not os.path.exists(os.path.join(backup_dir, "training_metadata.json")) and os.path.exists(epochs_path):
        os.remove(epochs_path)  # a fresh start: no backed-up epoch, so no history either
    os.makedirs(log_dir, exist_ok=True)
    epoch_log = EpochLog(epochs_path)
    fit_callbacks = [
        seeds,
        epoch_log,
        backup_callback(backup_dir),
        keras.callbacks.TensorBoard(log_dir),
        keras.callbacks.TerminateOnNaN(),
        *(callbacks or []),
    ]  # EpochLog before the backup
    started = time.perf_counter()
    distiller.fit(
        batches,
        validation_data=test_split.dataset(recipe.batch_size) if validate else None,
        validation_freq=validation_epochs(epochs, validate_every),
        epochs=epochs,
        callbacks=fit_callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    history = epoch_log.history()
    try:
        check_finite(history, f"student {name}")
    except TrainingDiverged:
        os.remove(epochs_path)
        discard_backup(backup_dir)  # NaN weights: a rerun starts afresh
        raise

    save_model_atomic(model, model_path)
    predictions_path = os.path.join(out_dir, f"{name}{PREDICTIONS_SUFFIX}")
    evaluation = heads_record(model, test_split, predictions_path) if evaluate else None
    top1 = evaluation["top1"] if evaluation else (history.get("val_acc") or [None])[-1]
    top5 = evaluation["top5"] if evaluation else (history.get("val_top5") or [None])[-1]
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    sizes = store if store is not None else {n: {"params": m.count_params()} for n, m in (teacher_models or {}).items()}
    teacher_params, teacher_size = teacher_set_size(sizes, teachers)
    record = {
        "name": name,
        "architecture": model.name,
        "seed": seed,
        "dataset": _dataset_record(train_split),
        "test_dataset": _dataset_record(test_split),
        "num_classes": train_split.num_classes,
        "class_names": list(train_split.class_names),
        "input_shape": list(train_split.image_shape),
        "top1_test_accuracy": top1,
        "top5_test_accuracy": top5,
        "top_k": min(5, train_split.num_classes),
        "train_accuracy": (history.get("acc") or [None])[-1],
        "training_time_s": float(sum(t for t in history.get("time_s", []) if t) or seconds),
        "trainable_parameters": trainable,
        "size_mb": trainable * 4 / 2**20,
        "file_size_mb": os.path.getsize(model_path) / 2**20,
        "epochs": epochs,
        "precision": recipe.precision,
        "recipe": recipe.record(),
        "history": history,
        "model_file": os.path.basename(model_path),
        "tensorboard_dir": os.path.relpath(log_dir, out_dir),
        "teachers": teachers,
        "distillation": recipe.distillation,
        "ensemble": ensemble if teachers else None,
        "targets": targets if teachers else None,
        "alpha": recipe.alpha,
        "temperature": recipe.temperature,
        "mixup": recipe.mixup_alpha > 0,
        "cutmix": recipe.cutmix_alpha > 0,
        "batch_size": recipe.batch_size,
        "learning_rate": recipe.peak_learning_rate,
        "train_images": len(train_split),
        "teacher_trainable_parameters": teacher_params,
        "teacher_size_mb": teacher_size,
        **({"evaluation": evaluation} if evaluation else {}),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"libkd_keras": libkd_keras.__version__, "keras": keras.__version__, "tensorflow": tf.__version__},
        **(extra_record or {}),
    }
    write_json_atomic(record_path, record)
    discard_backup(backup_dir)  # only now: a kill while the files above were saved resumes after the last epoch
    return record
