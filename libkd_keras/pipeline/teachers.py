"""Step "teacher/<name>": train each configured teacher with `teachers.train_teacher`.

    teachers/<name>.keras + .json     the teacher and its record (paper Tables 2-3)

The teacher's architecture is `teachers.<family>_arch` with the builder arguments of
`[teachers.<family>]`; its recipe is the `[teachers]` section (a `TeacherRecipe`) at its family's epochs. With
`teachers.reuse_from = RUN` (`--teachers-from RUN`) the step copies RUN's finished teacher
instead, after checking it is the one this run would train (`reuse_teacher`). The user's own
teachers ([[teachers.models]], family "keras") are not trained: the step installs them
(`own_teachers.install`), with or without `reuse_from`.
"""

import functools
import shutil
from pathlib import Path

import keras

from libkd_keras import distribute
from libkd_keras.atomic_files import keras_file_problem, read_json, temporary_sibling
from libkd_keras.models import TEACHER_BUILDERS, rednet, resnet
from libkd_keras.pipeline import own_teachers
from libkd_keras.pipeline.run_folder import RunFolder, load_run_config, reuse_problem
from libkd_keras.pipeline.schema import CIFAR_DEFAULTS, ConfigError
from libkd_keras.pipeline.steps import Made, Step
from libkd_keras.precision import resolve_precision
from libkd_keras.teachers import train_teacher
from libkd_keras.training import FitOptions, TrainingDiverged


class SetJitCompile(keras.callbacks.Callback):
    """Sets `model.jit_compile` when `fit` attaches its callbacks, before it builds its step functions.

    `train_teacher` compiles with Keras' default (`"auto"`: XLA with a GPU, none on a CPU); this
    applies an explicit `run.jit_compile = true/false` to it.
    """

    def __init__(self, jit_compile):
        super().__init__()
        self.jit_compile = bool(jit_compile)

    def set_model(self, model):
        super().set_model(model)
        model.jit_compile = self.jit_compile


def teacher_builder(spec):
    """`"resnet26"`/`"rednet26"`, or a builder `build(num_classes, input_shape)` with the spec's arguments."""
    arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.kwargs.items()}
    if spec.arch.endswith("_cifar"):
        arguments = {**CIFAR_DEFAULTS, **arguments}

        def build(num_classes, input_shape):
            if spec.arch not in TEACHER_BUILDERS:
                raise ConfigError(
                    f"teachers.{spec.family}_arch = {spec.arch!r} has no builder in this version of "
                    f"libkd_keras.models; available: {', '.join(sorted(TEACHER_BUILDERS))}."
                )
            return TEACHER_BUILDERS[spec.arch](num_classes=num_classes, input_shape=input_shape, **arguments)
    elif not arguments:
        return spec.arch
    else:
        family_builder = {"resnet": resnet, "rednet": rednet}[spec.family]

        def build(num_classes, input_shape):
            return family_builder(num_classes=num_classes, input_shape=input_shape, name=spec.family, **arguments)

    build.__name__ = spec.name.rsplit("_s", 1)[0]
    return build


def teacher_steps(pipeline, only=()):
    """The steps "teacher/<name>" of every configured teacher (or those in `only`): trained, copied or installed."""
    config = pipeline.config
    unknown = sorted(set(only) - set(config.teacher_names))
    if unknown:
        raise ConfigError(f"Unknown teacher(s) {unknown}; this run's teachers: {', '.join(config.teacher_names)}.")
    for spec in config.teacher_specs:
        if only and spec.name not in only:
            continue
        # the user's own teacher is copied in and scored, not trained; with teachers.reuse_from, another run's is copied
        make = own_teachers.install if spec.path else _copy if config.teachers.reuse_from else _train
        makes = (f"teachers/{spec.name}.keras", f"teachers/{spec.name}.json")
        yield Step(f"teacher/{spec.name}", functools.partial(make, pipeline, spec), makes=makes)


def _copy(pipeline, spec, announce):
    """Teacher `spec` copied from the run folder `teachers.reuse_from` (after `check_reuse`)."""
    source = pipeline.config.teachers.reuse_from
    _, record = reuse_teacher(pipeline, spec, source)
    top1 = record["top1_test_accuracy"]
    return Made(
        summary={"top1": top1, "reused_from": source},
        detail=f"top-1 {100 * top1:.1f}%",
        title=f"teacher {spec.name} (copied from {source})",
    )


def _train(pipeline, spec, announce):
    """Teacher `spec` trained by `train_teacher`, with the run's recipe, precision and callbacks."""
    config, folder = pipeline.config, pipeline.folder
    train, test = pipeline.split("teacher_train"), pipeline.split("test")
    recipe = config.teachers.replace(epochs=spec.epochs)  # the [teachers] section is the recipe
    keras.mixed_precision.set_dtype_policy(resolve_precision(config.run.precision, spec.family))
    announce(f": {recipe.epochs} epochs on {len(train):,} images")
    try:
        metadata = train_teacher(
            teacher_builder(spec),
            train,
            test,
            str(folder.teachers),
            recipe=recipe,
            seed=spec.seed,
            name=spec.name,
            options=FitOptions(
                callbacks=[*pipeline.jit_callbacks(), *pipeline.extra_callbacks("teacher", spec.name)],
                verbose=pipeline.fit_verbose,
                say=pipeline.say,
            ),
        )
    except TrainingDiverged as error:
        raise ConfigError(
            f"{error} For this run: lower teachers.learning_rate (now {config.teachers.learning_rate}), e.g. "
            f"--set teachers.learning_rate={config.teachers.learning_rate / 2:g} --overwrite."
        ) from None
    own_dir = distribute.worker_dir(folder.teachers)
    if own_dir != str(folder.teachers):  # a non-chief worker: its copy (the chief's weights) into its run folder
        install_teacher(folder, spec.name, own_dir)
    top1 = metadata["top1_test_accuracy"]
    return Made(summary={"top1": top1}, detail=f"top-1 {100 * top1:.1f}%")


def reuse_teacher(pipeline, spec, source):
    """Copies the finished teacher `spec.name` of run folder `source` into this run (after `check_reuse`).

    Returns `(outputs, record)`: the step's output paths and the teacher's record.
    """
    theirs, record = check_reuse(pipeline.config, pipeline.data, spec, source, pipeline.folder.root)
    return install_teacher(pipeline.folder, spec.name, theirs.teachers), record


def check_reuse(config, data, spec, source, root):
    """`(their RunFolder, teacher record)` when run folder `source` holds the teacher `spec` this run would train.

    Refused with a ConfigError naming the difference otherwise: the same [teachers] settings and
    run.seed (`run_folder.reuse_problem`), a finished teacher, this run's precision for its family,
    and the same teacher-training and test images (split fingerprints; `data` is the run's `RunData`).
    """
    problem = reuse_problem(source, config.raw, root)
    if problem:
        raise ConfigError(problem)
    fix = 'use the same settings and data as that run, or set teachers.reuse_from = "" to train here'
    theirs = RunFolder(source, load_run_config(source))
    damaged = theirs.damaged(f"teacher/{spec.name}")
    problem = keras_file_problem(theirs.teacher_model(spec.name)) if theirs.teacher_model(spec.name).is_file() else None
    if damaged or problem:
        raise ConfigError(
            f"teachers.reuse_from = {source!r}: its teacher {spec.name} is damaged ({'; '.join(damaged) or problem}), "
            f"so it is not copied. Train it again there (libkd train-teacher --out {source}), or set "
            'teachers.reuse_from = "" to train it here.'
        )
    if not theirs.done(f"teacher/{spec.name}"):
        raise ConfigError(
            f"teachers.reuse_from = {source!r} has not finished teacher {spec.name}; finish it there first "
            f'(libkd train-teacher --out {source}), or set teachers.reuse_from = "" to train it here.'
        )
    record = read_json(theirs.teacher_json(spec.name))
    for kind, key in (("teacher_train", "dataset"), ("test", "test_dataset")):
        if record[key]["fingerprint"] != data.split(kind).fingerprint:
            raise ConfigError(
                f"Teacher {spec.name} of {source!r} was trained or scored on other images than this run's "
                f"{kind.replace('_', ' ')} split (split fingerprints differ); {fix}."
            )
    precision = resolve_precision(config.run.precision, spec.family)
    if record["precision"] != precision:
        raise ConfigError(
            f"Teacher {spec.name} of {source!r} trained in {record['precision']}, this run trains it in "
            f"{precision} (run.precision = {config.run.precision!r}); pass --precision {record['precision']} to "
            "reuse it."
        )
    return theirs, record


def install_teacher(folder, name, source_dir):
    """Copies `<name>.keras` and `<name>.json` from `source_dir` into the run's teachers/; returns the outputs.

    Each file arrives under a temporary name and is renamed when whole (the `.keras` file checked
    first); the record goes last, so a half-copied teacher never looks finished.
    """
    outputs = []
    for path in (folder.teacher_model(name), folder.teacher_json(name)):
        with temporary_sibling(path, suffix=path.suffix) as tmp:
            shutil.copyfile(Path(source_dir) / path.name, tmp)
            problem = keras_file_problem(tmp) if path.suffix == ".keras" else None
            if problem:  # e.g. cut short while it was copied
                raise ConfigError(f"Teacher {name} from {str(source_dir)!r} did not copy whole: {problem}.")
            Path(tmp).replace(path)
        outputs.append(folder.relative(path))
    return outputs


def load_teacher(pipeline, name):
    """A trained teacher of the run (cached; uncompiled), with the run's jit setting for `predict`."""
    cache = pipeline.teacher_models
    if name not in cache:
        own_teachers.import_libraries(read_json(pipeline.folder.teacher_json(name)))  # e.g. keras_hub's layers
        teacher = keras.saving.load_model(pipeline.folder.teacher_model(name), compile=False)
        if pipeline.config.run.jit_compile != "auto":
            teacher.jit_compile = pipeline.config.run.jit_compile
        cache[name] = teacher
    return cache[name]
