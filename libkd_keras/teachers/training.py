"""`train_teacher`: train one teacher with `model.fit`, resumably, and save it with its record.

The training itself is the engine's (`libkd_keras.training.fit_resumably`, shared with the students).
Files for a teacher called `<name>` (default `<arch>_seed<seed>`) in `out_dir`:

    <name>.keras           the trained model, uncompiled (loads without this package's optimizer)
    <name>.json            its record: the columns of the paper's Tables 2 and 3, plus the history
    logs/<name>/           TensorBoard logs and epochs.json (per-epoch logs, metric names `acc`/`top5`)
    <name>.backup/         BackupAndRestore state while training, two epochs deep (deleted once both files
                           above are saved, so a kill while saving them does not restart the training)

Both final files are written under temporary names and renamed, `.json` last, so a teacher whose
`.keras` and `.json` both exist is complete; `train_teacher` then returns its metadata unchanged
(unless the `.keras` file was damaged since: then it trains the teacher again, with a notice).
A backup cut off by a kill is repaired before training (`training.repair_backup`), and a teacher
whose loss went NaN is not saved (`training.TrainingDiverged`). A teacher interrupted under libkd
<= 0.x (its history in `<name>.history.json`) resumes with that history moved to `logs/<name>/`.

Under a `tf.distribute` strategy (`strategy=`, or the one whose scope is active) the model trains
on the global batch: BatchNormalization normalises with the statistics of all replicas' examples
(`distribute.synchronized_batch_norm`), so two workers train like one process. Under multi-worker
training the chief writes the files above in `out_dir`; every other worker writes its own copies in
`distribute.worker_dir(out_dir)` (`<out_dir>-workertemp_worker_<k>`), so no two processes write
one file and each resumes from its own backup without a shared filesystem.
"""

import json
import math

import tensorflow as tf

from libkd_keras import distribute
from libkd_keras.atomic_files import keras_file_problem
from libkd_keras.data import teacher_augmentation
from libkd_keras.models import TEACHER_BUILDERS
from libkd_keras.teachers.recipe import TeacherRecipe, teacher_loss, teacher_optimizer
from libkd_keras.training import (
    Artifact,
    EpochLog,
    FitOptions,
    FitSettings,
    Training,
    accuracy_metrics,
    dataset_record,
    fit_resumably,
)

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


def _one_hot(num_classes):
    return lambda images, labels: (images, tf.one_hot(labels, num_classes))


def train_teacher(
    arch, train_split, test_split, out_dir, *, recipe=None, seed=0, name=None, strategy=None, options=None, **removed
):
    """Train a teacher on `train_split`, evaluate it on `test_split`, save `.keras` + `.json` in `out_dir`.

    Args:
        arch: a name of `models.TEACHER_BUILDERS` ("resnet26", "resnet_cifar", ...), or a callable
            `builder(num_classes=..., input_shape=...)` returning a `keras.Model` that maps raw pixels in
            [0, 255] to logits.
        recipe: a `TeacherRecipe` (default: the paper's recipe, 200 epochs): epochs, validation,
            optimiser, loss and augmentation.
        seed: seeds weights, data order and augmentation (`keras.utils.set_random_seed`); the paper
            trains three seeds per architecture.
        name: file stem; default `<arch>_seed<seed>`.
        strategy: the `tf.distribute.Strategy` to train under (default: the current one,
            `tf.distribute.get_strategy()`); the model and optimizer are made in its scope. With more
            than one replica, BatchNormalization uses the global batch's statistics while training
            (`synchronized`), and the saved `.keras` is unchanged (plain BatchNormalization). Under
            multi-worker training the chief writes into `out_dir` and the other workers into their
            own `distribute.worker_dir(out_dir)` (see `libkd_keras.distribute`).
        options: `training.FitOptions` or None. How the call runs: extra callbacks, verbosity, notices
            (`say`, e.g. a backup that had to be repaired), validation while training, extra `compile`
            arguments (`{"jit_compile": True}`), `overwrite`, extra record keys.

    The teacher trains under Keras' current dtype policy (the record's `precision`).

    Returns the metadata dict (also in `<out_dir>/<name>.json`). If `.keras` and `.json` already
    exist, returns the stored metadata without training (after checking the training data matches),
    unless `options.overwrite`. An interrupted run resumes from the last finished epoch
    (`keras.callbacks.BackupAndRestore`).

    Example:
    >>> meta = train_teacher("resnet26", train, test, "runs/teachers", seed=1, recipe=TeacherRecipe(epochs=200))
    >>> meta["top1_test_accuracy"], meta["trainable_parameters"]
    """
    if removed:
        moved = [f"{key}= -> options=FitOptions({key}=...)" for key in sorted(removed) if key in _MOVED]
        raise TypeError(
            f"train_teacher() got unexpected keyword argument(s) {', '.join(f'{k}=' for k in sorted(removed))}"
            + (f". They are given as: {'; '.join(moved)} (libkd_keras.training.FitOptions)." if moved else ".")
        )
    options = options or FitOptions()
    if not isinstance(options, FitOptions):
        raise TypeError(f"`options` must be a libkd_keras.training.FitOptions; got {type(options).__name__}.")
    say = options.say
    recipe = recipe or TeacherRecipe()
    strategy = strategy or tf.distribute.get_strategy()
    arch_name, builder = _resolve_arch(arch)
    name = name or f"{arch_name}_seed{seed}"
    own_dir = distribute.worker_dir(out_dir, strategy)  # `out_dir` itself on the chief or on one process
    artifact = Artifact(own_dir, name, "teacher")
    # A non-chief worker looks in its own folder and in the chief's (the same one on a shared filesystem).
    places = (artifact, Artifact(out_dir, name, "teacher"))
    finished = None if options.overwrite else next((a for a in places if a.finished()), None)
    problem = finished and keras_file_problem(finished.model)
    if problem:
        say(f"libkd: notice: teacher {name}: {problem}; training it again.")
    elif finished:
        return _stored_metadata(finished.record, train_split)
    if train_split.num_classes != test_split.num_classes or train_split.image_shape != test_split.image_shape:
        raise ValueError(
            f"Train and test splits differ: {train_split.num_classes} vs {test_split.num_classes} classes, "
            f"images {train_split.image_shape} vs {test_split.image_shape}."
        )
    num_classes = train_split.num_classes
    steps = math.ceil(len(train_split) / recipe.batch_size)
    jit_compile, compile_options = options.compile_arguments()
    one_hot = _one_hot(num_classes)

    def test_batches():
        return distribute.shard_policy(test_split.dataset(recipe.batch_size).map(one_hot), "data")

    def build(seeds):
        model = builder(num_classes=num_classes, input_shape=train_split.image_shape)
        trained = distribute.fit_view(model)  # `model` itself, except under a strategy (see distribute.py)
        trained.compile(
            optimizer=teacher_optimizer(recipe, steps),
            loss=teacher_loss(recipe),
            metrics=accuracy_metrics(num_classes),
            **compile_options,
        )
        augment = None
        if recipe.augment:
            augment = teacher_augmentation(train_split.image_shape[:2], random_erasing=recipe.random_erasing, seed=seed)
        # DATA sharding: every worker reads the whole (seeded, so identical) shuffled split and keeps its
        # part of each global batch, so a step sees the batch one process would (in-memory splits have no files).
        train = train_split.dataset(recipe.batch_size, shuffle=True, augment=augment, seed=seeds)
        return Training(
            model,
            distribute.shard_policy(train.map(one_hot), "data"),
            steps,
            validation=test_batches() if options.validate else None,
            fit_model=trained,
        )

    def describe(training, history):
        scores = {}
        if (history.get("val_acc") or [None])[-1] is None:  # `fit` validates the last epoch: a safeguard
            test = test_batches() if training.validation is None else training.validation
            scores = training.fit_model.evaluate(test, return_dict=True, verbose=0)
            scores = {"top1_test_accuracy": float(scores["acc"]), "top5_test_accuracy": float(scores["top5"])}
        recipe_record = {
            **recipe.record(),
            "scaled_learning_rate": recipe.scaled_learning_rate,
            "weight_decay_kind": "L2",
        }
        return {"architecture": arch_name, **scores, "recipe": recipe_record, **options.record}

    return fit_resumably(
        build,
        artifact,
        FitSettings(
            recipe.epochs, seed=seed, jit_compile=jit_compile, validate_every=recipe.validate_every, strategy=strategy
        ),
        (train_split, test_split),
        describe=describe,
        callbacks=list(options.callbacks),
        verbose=options.verbose,
        say=say,
    )


_MOVED = ("callbacks", "verbose", "say")  # train_teacher's keywords before FitOptions (libkd <= 0.x)


def _stored_metadata(meta_path, train_split):
    with open(meta_path) as f:
        metadata = json.load(f)
    stored = metadata.get("dataset", {}).get("fingerprint")
    if stored != train_split.fingerprint:
        raise ValueError(
            f"Teacher {meta_path!r} was trained on {metadata.get('dataset')} but the given training split is "
            f"{dataset_record(train_split)}. Use another output folder or delete the teacher to retrain it."
        )
    return metadata
