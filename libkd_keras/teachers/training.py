"""`train_teacher`: train one teacher with `model.fit`, resumably, and save it with its metadata.

Files for a teacher called `<name>` (default `<arch>_seed<seed>`) in `out_dir`:

    <name>.keras           the trained model, uncompiled (loads without this package's optimizer)
    <name>.json            metadata: the columns of the paper's Tables 2 and 3, plus the history
    logs/<name>/           TensorBoard logs
    <name>.backup/         BackupAndRestore state while training, two epochs deep (deleted once both files
                           below are saved, so a kill while saving them does not restart the training)
    <name>.history.json    per-epoch logs while training (folded into <name>.json at the end)

Both final files are written under temporary names and renamed, `.json` last, so a teacher whose
`.keras` and `.json` both exist is complete; `train_teacher` then returns its metadata unchanged
(unless the `.keras` file was damaged since: then it trains the teacher again, with a notice).
A backup cut off by a kill is repaired before training (`resumable.repair_backup`), and a teacher
whose loss went NaN is not saved (`resumable.TrainingDiverged`).

Under a `tf.distribute` strategy (`strategy=`, or the one whose scope is active) the model trains
on the global batch: BatchNormalization normalises with the statistics of all replicas' examples
(`distribute.synchronized_batch_norm`), so two workers train like one process. Under multi-worker
training the chief writes the files above in `out_dir`; every other worker writes its own copies in
`distribute.worker_dir(out_dir)` (`<out_dir>-workertemp_worker_<k>`), so no two processes write
one file and each resumes from its own backup without a shared filesystem.
"""

import datetime
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras import distribute
from libkd_keras.atomic_files import keras_file_problem, save_model_atomic, write_json_atomic
from libkd_keras.data import teacher_augmentation
from libkd_keras.data.epochs import EpochSeeds, check_epoch_length
from libkd_keras.models import TEACHER_BUILDERS
from libkd_keras.resumable import (
    EpochLog,
    TrainingDiverged,
    backup_callback,
    check_finite,
    discard_backup,
    repair_backup,
    validation_epochs,
)
from libkd_keras.teachers.recipe import TeacherRecipe, teacher_loss, teacher_optimizer

__all__ = ["EpochLog", "train_teacher"]


def _resolve_arch(arch):
    if isinstance(arch, str):
        if arch not in TEACHER_BUILDERS:
            raise ValueError(
                f"Unknown teacher architecture {arch!r}; choose one of {sorted(TEACHER_BUILDERS)} or pass a builder."
            )
        return arch, TEACHER_BUILDERS[arch]
    if callable(arch):
        return getattr(arch, "__name__", type(arch).__name__), arch
    raise ValueError(f"`arch` must be one of {sorted(TEACHER_BUILDERS)} or a callable building a model; got {arch!r}.")


def _dataset_record(split):
    return {"name": split.name, "split": split.split, "num_examples": len(split), "fingerprint": split.fingerprint}


def _one_hot(num_classes):
    return lambda images, labels: (images, tf.one_hot(labels, num_classes))


def train_teacher(
    arch,
    train_split,
    test_split,
    out_dir,
    *,
    seed=0,
    recipe=None,
    callbacks=None,
    verbose="auto",
    name=None,
    say=print,
    strategy=None,
):
    """Train a teacher on `train_split`, evaluate it on `test_split`, save `.keras` + `.json` in `out_dir`.

    Args:
        arch: a name of `models.TEACHER_BUILDERS` ("resnet26", "resnet_cifar", ...), or a callable
            `builder(num_classes=..., input_shape=...)` returning a `keras.Model` that maps raw pixels in
            [0, 255] to logits.
        seed: seeds weights, data order and augmentation (`keras.utils.set_random_seed`); the paper
            trains three seeds per architecture.
        recipe: a `TeacherRecipe` (default: the paper's recipe, 200 epochs).
        callbacks: extra Keras callbacks for `fit`.
        name: file stem; default `<arch>_seed<seed>`.
        say: called with a notice line (e.g. a backup that had to be repaired).
        strategy: the `tf.distribute.Strategy` to train under (default: the current one,
            `tf.distribute.get_strategy()`); the model and optimizer are made in its scope. With more
            than one replica, BatchNormalization uses the global batch's statistics while training
            (`synchronized`), and the saved `.keras` is unchanged (plain BatchNormalization). Under
            multi-worker training the chief writes into `out_dir` and the other workers into their
            own `distribute.worker_dir(out_dir)` (see `libkd_keras.distribute`).

    Returns the metadata dict (also in `<out_dir>/<name>.json`). If `.keras` and `.json` already
    exist, returns the stored metadata without training (after checking the training data matches).
    An interrupted run resumes from the last finished epoch (`keras.callbacks.BackupAndRestore`).

    Example:
    >>> meta = train_teacher("resnet26", train, test, "runs/teachers", seed=1, recipe=TeacherRecipe(epochs=200))
    >>> meta["top1_test_accuracy"], meta["trainable_parameters"]
    """
    recipe = recipe or TeacherRecipe()
    strategy = strategy or tf.distribute.get_strategy()
    arch_name, build = _resolve_arch(arch)
    name = name or f"{arch_name}_seed{seed}"
    own_dir = distribute.worker_dir(out_dir, strategy)  # `out_dir` itself on the chief or on one process
    finished = _finished(name, own_dir, out_dir)
    problem = finished and keras_file_problem(finished[: -len(".json")] + ".keras")
    if problem:
        say(f"libkd: notice: teacher {name}: {problem}; training it again.")
    elif finished:
        return _stored_metadata(finished, train_split)
    out_dir = own_dir
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, f"{name}.keras")
    meta_path = os.path.join(out_dir, f"{name}.json")
    if train_split.num_classes != test_split.num_classes or train_split.image_shape != test_split.image_shape:
        raise ValueError(
            f"Train and test splits differ: {train_split.num_classes} vs {test_split.num_classes} classes, "
            f"images {train_split.image_shape} vs {test_split.image_shape}."
        )

    num_classes = train_split.num_classes
    steps_per_epoch = math.ceil(len(train_split) / recipe.batch_size)
    top_k = min(5, num_classes)
    with strategy.scope():  # the model, its optimizer and metrics live on the strategy's devices
        keras.utils.set_random_seed(seed)
        model = build(num_classes=num_classes, input_shape=train_split.image_shape)
        trained = distribute.fit_view(model)  # `model` itself, except under a strategy (see distribute.py)
        trained.compile(
            optimizer=teacher_optimizer(recipe, steps_per_epoch),
            loss=teacher_loss(recipe),
            metrics=[
                keras.metrics.CategoricalAccuracy(name="accuracy"),
                keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top5_accuracy"),
            ],
        )
    augment = None
    if recipe.augment:
        augment = teacher_augmentation(train_split.image_shape[:2], random_erasing=recipe.random_erasing, seed=seed)
    # DATA sharding: every worker reads the whole (seeded, so identical) shuffled split and keeps its
    # part of each global batch, so a step sees the batch one process would (in-memory splits have no files).
    seeds = EpochSeeds(seed)  # each epoch's order and crop/flip from (seed, epoch): resumes repeat them
    train_ds = train_split.dataset(recipe.batch_size, shuffle=True, augment=augment, seed=seeds)
    train_ds = distribute.shard_policy(train_ds.map(_one_hot(num_classes)), "data")
    check_epoch_length(train_ds, steps_per_epoch, f"teacher {name}")
    test_ds = distribute.shard_policy(test_split.dataset(recipe.batch_size).map(_one_hot(num_classes)), "data")

    backup_dir = os.path.join(out_dir, f"{name}.backup")
    progress_path = os.path.join(out_dir, f"{name}.history.json")
    repair_backup(backup_dir, say=say)
    if not os.path.exists(os.path.join(backup_dir, "training_metadata.json")) and os.path.exists(progress_path):
        os.remove(progress_path)  # a fresh start: no backed-up epochs, so no history either
    epoch_log = EpochLog(progress_path)
    tensorboard_dir = os.path.join(out_dir, "logs", name)
    fit_callbacks = [
        seeds,
        epoch_log,  # before BackupAndRestore, see EpochLog
        backup_callback(backup_dir),
        keras.callbacks.TensorBoard(tensorboard_dir),
        keras.callbacks.TerminateOnNaN(),
        *(callbacks or []),
    ]
    with distribute.synchronized_batch_norm(model, strategy):  # the saved model keeps plain BN
        trained.fit(
            train_ds,
            validation_data=test_ds,
            validation_freq=validation_epochs(recipe.epochs, recipe.validate_every),
            epochs=recipe.epochs,
            callbacks=fit_callbacks,
            verbose=verbose,
            shuffle=False,
        )  # train_ds is shuffled by tf.data

    history = epoch_log.history()
    try:
        check_finite(history, f"teacher {name}")
    except TrainingDiverged:
        os.remove(progress_path)
        discard_backup(backup_dir)  # NaN weights: a rerun starts afresh
        raise
    # The last epoch's validation already scored these weights on the test split: reuse it
    # (a second pass over the test split is slow for an involution teacher on a CPU).
    scores = {k: (history.get(f"val_{k}") or [None])[-1] for k in ("accuracy", "top5_accuracy")}
    if None in scores.values():
        scores = trained.evaluate(test_ds, return_dict=True, verbose=0)
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    _save_uncompiled(model, model_path)
    metadata = {
        "name": name,
        "architecture": arch_name,
        "seed": seed,
        "dataset": _dataset_record(train_split),
        "test_dataset": _dataset_record(test_split),
        "num_classes": num_classes,
        "class_names": list(train_split.class_names),
        "input_shape": list(train_split.image_shape),
        "top1_test_accuracy": float(scores["accuracy"]),
        "top5_test_accuracy": float(scores["top5_accuracy"]),
        "top_k": top_k,
        "train_accuracy": history["accuracy"][-1],  # last epoch, on augmented batches
        "training_time_s": float(sum(history["time_s"])),
        "trainable_parameters": trainable,
        "size_mb": trainable * 4 / 2**20,  # float32 parameters, the paper's "Param Size (MB)"
        "file_size_mb": os.path.getsize(model_path) / 2**20,
        "epochs": recipe.epochs,
        "precision": model.dtype_policy.name,  # the compute dtype policy it trained under
        "recipe": {**recipe.record(), "scaled_learning_rate": recipe.scaled_learning_rate, "weight_decay_kind": "L2"},
        "history": history,
        "model_file": os.path.basename(model_path),
        "tensorboard_dir": os.path.relpath(tensorboard_dir, out_dir),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"libkd_keras": libkd_keras.__version__, "keras": keras.__version__, "tensorflow": tf.__version__},
    }
    write_json_atomic(meta_path, metadata)
    discard_backup(backup_dir)  # only now: a kill while the files above were saved resumes after the last epoch
    if os.path.exists(progress_path):
        os.remove(progress_path)
    return metadata


def _save_uncompiled(model, path):
    """Save weights + architecture without the optimizer, under a temporary name, then rename."""
    clone = type(model).from_config(model.get_config())  # clone_model would compile the clone too
    clone.set_weights(model.get_weights())
    save_model_atomic(clone, path)


def _finished(name, *folders):
    """The metadata path of a finished teacher `name` in the first of `folders` holding one, or None.

    A non-chief worker looks in its own folder and in the chief's (the same one on a shared filesystem).
    """
    for folder in folders:
        paths = [os.path.join(folder, f"{name}{suffix}") for suffix in (".keras", ".json")]
        if all(os.path.exists(p) for p in paths):
            return paths[1]
    return None


def _stored_metadata(meta_path, train_split):
    with open(meta_path) as f:
        metadata = json.load(f)
    stored = metadata.get("dataset", {}).get("fingerprint")
    if stored != train_split.fingerprint:
        raise ValueError(
            f"Teacher {meta_path!r} was trained on {metadata.get('dataset')} but the given training split is "
            f"{_dataset_record(train_split)}. Use another output folder or delete the teacher to retrain it."
        )
    return metadata
