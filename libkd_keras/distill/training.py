"""`train_student`: train one DeiT student, resumably, and save it with its record (twin of `train_teacher`).

Files for a student called `<name>` in `out_dir`:

    <name>.keras           the trained student, uncompiled (the Distiller wrapper is not saved)
    <name>.json            its record: the same keys as a teacher's record for the same facts
                           (trainable_parameters, size_mb, top1_test_accuracy, training_time_s, ...)
    <name>.predictions.npz with `evaluate`: its class for each test image (`evaluation.save_predictions`)
    logs/<name>/           TensorBoard logs and epochs.json (per-epoch logs while training)
    <name>.backup/         BackupAndRestore state while training, two epochs deep (deleted once both files
                           are saved, so a kill while saving them does not restart the training)

The student learns from teacher targets (`targets`, `distill/sources.py`): stored on the clean images
(`StoredTargets`, no teacher runs), stored on views it replays (`ViewTargets`, a multi-view store), or
from the teachers run online on each augmented batch (`OnlineTargets`: in `tf.data` on a CPU, in the
step on a GPU, `distill/online.py`); with no targets, from the labels alone (the student baseline).
The training itself is the engine's (`libkd_keras.training.fit_resumably`, shared with the teachers):
`.keras` is written before `.json`, both atomically, so a student whose two files exist is complete.

Example:
>>> recipe = baseline(batch_size=128, epochs=300)
>>> build = student_builder("deit_tiny", num_classes=10, image_size=(32, 32), patch_size=4)
>>> targets = StoredTargets(store, ["resnet26_s0", "rednet26_s0"], ensemble="soft")
>>> record = train_student(build, train, test, "runs/students", recipe=recipe, targets=targets, name="ensemble")
>>> record["top1_test_accuracy"], record["trainable_parameters"]
"""

import dataclasses
import math
import os

import keras

from libkd_keras import distribute
from libkd_keras.atomic_files import read_json
from libkd_keras.distill.augment import student_augmentation
from libkd_keras.distill.recipes import distiller_for, student_optimizer
from libkd_keras.distill.students import heads_record
from libkd_keras.evaluation import PREDICTIONS_SUFFIX
from libkd_keras.training import Artifact, FitOptions, FitSettings, Training, fit_resumably
from libkd_keras.xla import student_jit_compile


def train_student(
    student,
    train_split,
    test_split,
    out_dir,
    *,
    recipe,
    targets=None,
    seed=0,
    name=None,
    evaluate=False,
    options=None,
    **removed,
):
    """Train a student on `train_split` (with the teacher rows of `targets`), save `.keras` + `.json`.

    Args:
        student: callable `build(distillation_token: bool) -> DeiT` (called after the seed and the
            recipe's precision are set), or a built DeiT.
        train_split: data.Split. The images the student trains on (the store's split with teachers).
        test_split: data.Split. Validation on the recipe's `validate_every` epochs and the final
            evaluation (`evaluate`).
        out_dir: str, or a `training.Artifact(out_dir, name, backup_dir=..., log_dir=...)` when the
            backup and TensorBoard folders go elsewhere than beside the files (then leave `name` out).
        recipe: StudentRecipe (`libkd_keras/recipes.py`). Epochs, validation, optimiser, loss (`recipe.kd`)
            and augmentation, e.g. `baseline(epochs=30)` or `recipe.replace(epochs=30)`;
            `recipe.distillation` must be "none" without targets and "hard"/"soft" with them.
        targets: where the teacher rows come from (`distill/sources.py`): `StoredTargets(store, teachers,
            ensemble)` (stored on the clean images), `ViewTargets(...)` (stored on views the reader
            replays; the recipe's flip and crop are then the replayed ones), `OnlineTargets(models,
            ensemble)` (the teachers run on each augmented batch), or None: the baseline, from the labels.
            `target_source(kind, teachers, ensemble, store=, models=)` makes one from a config's choice.
        seed: int. Seeds weights, data order and augmentation.
        name: str. File stem (default "student").
        evaluate: bool. Evaluate every head on `test_split` at the end (`record["evaluation"]`).
        options: `training.FitOptions` or None. How the call runs: extra callbacks, verbosity, notices
            (`say`), validation while training, extra `compile` arguments, `overwrite`, extra record keys.
            XLA: `compile_options={"jit_compile": ...}`, default "auto": on for the student step on any
            device, CPUs included (where Keras' own "auto" turns it off), and Keras' choice when online
            teachers run in the step (`libkd_keras/xla.py`); True or False force it.

    Returns the record (also in `<out_dir>/<name>.json`).
    """
    if removed:
        raise TypeError(_removed_message(removed))
    options = options or FitOptions()
    if not isinstance(options, FitOptions):
        raise TypeError(f"`options` must be a libkd_keras.training.FitOptions; got {type(options).__name__}.")
    if isinstance(out_dir, Artifact):
        if name is not None and name != out_dir.name:
            raise ValueError(f"`name` {name!r} differs from the Artifact's name {out_dir.name!r}: give it once.")
        artifact = dataclasses.replace(out_dir, kind="student")
    else:
        artifact = Artifact(out_dir, name or "student", "student")
    out_dir, name = artifact.out_dir, artifact.name
    if targets is not None and not callable(getattr(targets, "batches", None)):
        raise ValueError(
            "`targets` must be StoredTargets, ViewTargets, OnlineTargets (libkd_keras.distill) or None; "
            f"got {targets!r}."
        )
    teachers = list(targets.teachers) if targets is not None else []
    if (recipe.distillation == "none") != (not teachers):
        raise ValueError(
            f"student {name!r}: distillation='none' goes with no teachers and 'hard'/'soft' with at "
            f"least one; got distillation={recipe.distillation!r} and teachers={teachers}."
        )
    artifact = dataclasses.replace(artifact, backup_dir=distribute.worker_dir(artifact.backup))  # chief: as given
    if not options.overwrite and artifact.finished():
        return read_json(artifact.record)
    jit_compile, compile_options = options.compile_arguments()
    # "auto" is the library's choice, the same here and in the pipeline: XLA for the student step on any
    # device (Keras' own "auto" turns it off on CPU-only machines), Keras' choice when teachers run in it.
    teachers_in_step = bool(targets.distiller_options()) if targets is not None else False
    jit_compile = student_jit_compile(jit_compile, teachers_in_step)
    steps = math.ceil(len(train_split) / recipe.batch_size)

    def build(seeds):
        model = student(bool(teachers)) if callable(student) and not isinstance(student, keras.Model) else student
        if int(model.num_classes) != train_split.num_classes:
            raise ValueError(f"the student has {model.num_classes} classes; the data has {train_split.num_classes}.")
        distiller = distiller_for(recipe, model, **(targets.distiller_options() if targets else {}))
        if targets:  # stored, replayed views or online: distill/sources.py
            batches = targets.batches(train_split, distiller.kd, recipe, seeds)
        else:  # the baseline: the labelled images alone
            batches = train_split.dataset(recipe.batch_size, shuffle=True, seed=seeds)
            batches = student_augmentation(batches, recipe, train_split.num_classes, seed=seeds)
        distiller.compile(optimizer=student_optimizer(recipe, steps, recipe.epochs), **compile_options)
        validation = test_split.dataset(recipe.batch_size) if options.validate else None
        return Training(model, batches, steps, validation=validation, fit_model=distiller)

    def describe(training, history):
        model, scores = training.model, {}
        if evaluate:  # every head on the test split; the inference output's class per image kept for paired tests
            evaluation = heads_record(model, test_split, os.path.join(out_dir, f"{name}{PREDICTIONS_SUFFIX}"))
            scores = {"top1_test_accuracy": evaluation["top1"], "top5_test_accuracy": evaluation["top5"]}
            scores["evaluation"] = evaluation
        teacher_params, teacher_size = targets.teacher_sizes() if targets else (None, None)
        return {
            "architecture": model.name,
            **scores,
            "recipe": recipe.record(),
            "teachers": teachers,
            "distillation": recipe.distillation,
            "ensemble": targets.ensemble if targets else None,
            "targets": targets.name if targets else None,
            "alpha": recipe.alpha,
            "temperature": recipe.temperature,
            "mixup": recipe.mixup_alpha > 0,
            "cutmix": recipe.cutmix_alpha > 0,
            "batch_size": recipe.batch_size,
            "learning_rate": recipe.peak_learning_rate,
            "train_images": len(train_split),
            "teacher_trainable_parameters": teacher_params,
            "teacher_size_mb": teacher_size,
            **options.record,
        }

    return fit_resumably(
        build,
        artifact,
        FitSettings(
            recipe.epochs,
            seed=seed,
            precision=recipe.precision,
            jit_compile=jit_compile,
            validate_every=recipe.validate_every,
        ),
        (train_split, test_split),
        describe=describe,
        callbacks=list(options.callbacks),
        verbose=options.verbose,
        say=options.say,
    )


_MOVED = {  # train_student's keywords before FitOptions (libkd <= 0.x): where each setting is now
    "epochs": "recipe=recipe.replace(epochs=...)",
    "validate_every": "recipe=recipe.replace(validate_every=...)",
    "backup_dir": "out_dir=Artifact(out_dir, name, backup_dir=..., log_dir=...)",
    "log_dir": "out_dir=Artifact(out_dir, name, backup_dir=..., log_dir=...)",
    "callbacks": "options=FitOptions(callbacks=...)",
    "validate": "options=FitOptions(validate=...)",
    "compile_options": "options=FitOptions(compile_options=...)",
    "extra_record": "options=FitOptions(record=...)",
    "verbose": "options=FitOptions(verbose=...)",
    "overwrite": "options=FitOptions(overwrite=...)",
    "say": "options=FitOptions(say=...)",
}


def _removed_message(removed):
    """The TypeError of a keyword `train_student` no longer takes: where that setting is given now."""
    moved = [f"{key}= -> {_MOVED[key]}" for key in sorted(removed) if key in _MOVED]
    message = "train_student() got unexpected keyword argument(s) " + ", ".join(f"{k}=" for k in sorted(removed))
    if moved:
        message += ". Each setting is given once now: " + "; ".join(moved)
        message += " (Artifact and FitOptions are in libkd_keras.training)"
    return message + "."
