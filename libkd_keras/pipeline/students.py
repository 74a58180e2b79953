"""The steps of a student: "student/<name>" (trained), "evaluate/<name>", "export/<name>"; the ablation.

    students/<name>.keras + .json     the student and its record (keys as a teacher's record; "entry" and
                                      "seed" say which [[students]] entry and seed it is); "evaluation":
                                      top-1/top-5 of the class head, the distillation head and their
                                      average (the inference output), as fractions
    students/<name>.predictions.npz   the inference output's class for each test image (int8/int16), with the
                                      labels and image ids: the report's McNemar tests pair students on it
    checkpoints/student_<name>/       its backup while training; logs/student_<name>/ its logs
    exports/<name>/                   its LiteRT files, their metadata and export_report.json

Each [[students]] entry, at each seed, is trained by `distill.train_student`. A student with
teachers learns from the train store (`store/train`), the baseline from the labels. Its recipe is
the [student] section with the entry's own keys (`StudentEntry.recipe`: one `StudentRecipe`), its
model `student.arch` / `[student.model]` (`distill.student_builder`). A student trained again is evaluated and exported
again; a run folder written before predictions were kept evaluates again.
"""

import functools

import keras

from libkd_keras import choices
from libkd_keras.atomic_files import read_json, write_json_atomic
from libkd_keras.distill import student_builder, target_source, train_student
from libkd_keras.distill.students import heads_record
from libkd_keras.export import ReportSettings, export_report
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.settings import not_a_file_hint
from libkd_keras.pipeline.steps import Made, Step, StepOrderError
from libkd_keras.pipeline.teachers import load_teacher
from libkd_keras.store import TeacherStore
from libkd_keras.training import Artifact, FitOptions, TrainingDiverged


def builder_for(student, split):
    """`build(distillation_token) -> DeiT` of a student's settings (a `StudentRecipe`) for its split's shape."""
    return student_builder(
        student.arch,
        split.num_classes,
        split.image_shape[:2],
        student.patch_size,
        student.drop_path_rate,
        student.model,
    )


def check_students(config, train):
    """Builds the run's student for `train`'s images and every student's recipe, training nothing.

    A [student.model] the DeiT cannot take (a dim that is not a number, a dim not divisible by
    num_heads, ...) or a recipe value it refuses is a ConfigError here, before any teacher trains.
    """
    student = config.student
    try:
        model = builder_for(student, train)(True)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"The student cannot be built from student.arch = {student.arch!r}, student.patch_size = "
            f"{student.patch_size} and [student.model] = {dict(student.model)} for {train.image_shape[0]}x"
            f"{train.image_shape[1]} images: {error} Fix [student.model] (or --set 'student.model={{...}}')."
        ) from None
    del model
    for entry in config.students:
        try:
            entry.recipe  # noqa: B018 - made (and checked) here, before any teacher trains
        except (ValueError, TypeError) as error:
            raise ConfigError(f"Student {entry.name!r}: its recipe refuses the config: {error}") from None


def open_train_store(pipeline):
    """The run's train store, its shards' sha256 checked against the manifest once per `Pipeline` (process).

    Sizes are checked at every open; the hashes catch a shard replaced by another of the same size
    (e.g. another teacher's logits), which would train the student on the wrong teacher.
    """
    path = pipeline.folder.store_split("train")
    store = TeacherStore.open(path, expect=pipeline.split("train"), verify=str(path) not in pipeline.verified_stores)
    pipeline.verified_stores.add(str(path))
    return store


def student_steps(pipeline, only=()):
    """The steps "student/<name>" of every configured student (or those in `only`: student or entry names).

    An entry with several `seeds` is one student per seed (`<name>_s<seed>`), each its own step. A
    student learns from the train store, or with online targets from its teachers themselves.
    """
    for entry in pipeline.config.select_students(only):
        if online_targets(entry):
            needs = tuple(f"teacher/{t}" for t in entry.teachers)
        else:
            needs = ("store/train",) if entry.teachers else ()
        makes = (f"students/{entry.name}.keras", f"students/{entry.name}.json")
        yield Step(f"student/{entry.name}", functools.partial(train_one, pipeline, entry), needs=needs, makes=makes)


def online_targets(entry):
    """Whether the student of `entry` learns from its teachers themselves (targets = "online"), not the store."""
    return bool(entry.teachers) and entry.settings.targets == "online"


def train_one(pipeline, entry, announce):
    """The work of step "student/<name>": `train_student` with the entry's recipe, targets and teachers."""
    config, folder, name, teachers = pipeline.config, pipeline.folder, entry.name, list(entry.teachers)
    settings = entry.settings
    online = online_targets(entry)
    train, test = pipeline.split("train"), pipeline.split("test")
    recipe = entry.recipe
    with_store = teachers and (not online or folder.done("store/train"))  # online: only for the teachers' sizes
    store = open_train_store(pipeline) if with_store else None
    what = (
        f"{', '.join(teachers)} ({settings.distillation}, {settings.ensemble}, {settings.targets} targets)"
        if teachers
        else "no teacher"
    )
    announce(f" (seed {entry.seed}): {settings.epochs} epochs on {len(train):,} images, {what}, recipe {recipe.recipe}")
    try:
        record = train_student(
            builder_for(settings, train),
            train,
            test,
            Artifact(
                str(folder.students),
                name,
                backup_dir=folder.checkpoint("student", name),
                log_dir=folder.log_dir("student", name),
            ),
            recipe=recipe,
            targets=target_source(
                settings.targets,
                teachers,
                settings.ensemble,
                store=store,
                models={t: load_teacher(pipeline, t) for t in teachers} if online else None,
            ),
            seed=entry.seed,
            options=FitOptions(
                callbacks=pipeline.extra_callbacks("student", name),
                verbose=pipeline.fit_verbose,
                say=pipeline.say,
                compile_options={"jit_compile": config.run.jit_compile},  # "auto": train_student decides
                overwrite=True,
                record={
                    "order": entry.order,
                    "entry": entry.entry,
                    "architecture": config.student.arch,
                    "arch": config.student.arch,
                    "patch_size": config.student.patch_size,
                    "true_label": True,
                    "image_shape": list(train.image_shape),
                },
            ),
        )
    except TrainingDiverged as error:
        raise ConfigError(
            f"{error} For this run: lower student.learning_rate (0 = the recipe's "
            f"{recipe.peak_learning_rate:g}), e.g. --set student.learning_rate={recipe.peak_learning_rate / 2:g} "
            "--overwrite."
        ) from None
    folder.forget(f"evaluate/{name}")  # a student trained again is evaluated and exported again
    folder.student_predictions(name).unlink(missing_ok=True)  # the old student's; the evaluate step writes anew
    folder.forget(f"export/{name}")
    accuracy = record["top1_test_accuracy"]
    return Made(summary={"val_top1": accuracy}, detail="" if accuracy is None else f"test top-1 {100 * accuracy:.1f}%")


def ablation_step(pipeline, experiments="table4", seeds=(0,), epochs=None, recipes=choices.TABLE4_RECIPES):
    """Table 4's teacher sets and/or Figure 11's hard/soft/temperature runs, all from the train store.

    Results go to `ablation/` (one JSON per finished run: a rerun resumes) and into the report; the
    step writes no marker of its own.
    """
    run = functools.partial(_ablate, pipeline, experiments=experiments, seeds=seeds, epochs=epochs, recipes=recipes)
    return Step("ablation", run, needs=("store/train",), marker=False)


def _ablate(pipeline, announce, experiments, seeds, epochs, recipes):
    from libkd_keras.analysis import ablation

    config, train = pipeline.config, pipeline.split("train")
    student = config.student.replace(precision=config.run.precision)  # each experiment: a replace of it
    store = open_train_store(pipeline)
    chosen = []
    if experiments in ("table4", "all"):
        chosen += ablation.table4_experiments(store.teacher_names, recipes=tuple(recipes), student=student)
    if experiments in ("figure11", "all"):
        chosen += ablation.figure11_experiments(store.teacher_names, student=student.replace(recipe="baseline"))
    announce(f": {len(chosen)} experiments x {len(seeds)} seed(s), {epochs or student.epochs} epochs each")
    ablation.run_ablation(
        store,
        pipeline.split("test"),
        chosen,
        pipeline.folder.ablation,
        make_student=builder_for(student, train),
        epochs=epochs or student.epochs,
        seeds=tuple(seeds),
        train_split=train,  # each experiment's student is a replace of [student]: its batch size too
        options=FitOptions(
            verbose=pipeline.fit_verbose,
            say=pipeline.say,
            validate=False,
            compile_options={"jit_compile": config.run.jit_compile},
        ),
    )
    return Made(detail="ablation/ablation.md")


# --------------------------------------------------------------------------- evaluate, export


def evaluate_steps(pipeline, only=()):
    """The steps "evaluate/<name>": top-1/top-5 of each trained student's heads (class, distillation, average) on
    the test split, into its record; its class for each test image into `<name>.predictions.npz` (the report's
    McNemar tests pair students on it). A run folder written before predictions were kept evaluates again."""
    folder = pipeline.folder
    for name in [s.name for s in pipeline.config.select_students(only)]:
        makes = (f"students/{name}.json", folder.relative(folder.student_predictions(name)))
        run = functools.partial(_evaluate, pipeline, name)
        yield Step(f"evaluate/{name}", run, needs=(f"student/{name}",), makes=makes)


def _evaluate(pipeline, name, announce):
    folder = pipeline.folder
    student = keras.saving.load_model(folder.student_model(name), compile=False)
    evaluation = heads_record(student, pipeline.split("test"), folder.student_predictions(name))
    record = read_json(folder.student_json(name))
    record.update(evaluation=evaluation, top1_test_accuracy=evaluation["top1"], top5_test_accuracy=evaluation["top5"])
    write_json_atomic(folder.student_json(name), record)
    detail = f"top-1 {100 * evaluation['top1']:.1f}%  top-5 {100 * evaluation['top5']:.1f}%"
    return Made(summary=evaluation, detail=detail)


def best_student(pipeline, entry=None):
    """The distilled student with the best test top-1 (any student if none is distilled).

    Each seed of an entry is a student of its own, so this is the best single seed; `entry`
    chooses among the seeds of that [[students]] entry only.
    """
    scored = []
    for name in [s.name for s in pipeline.config.students if entry in (None, s.entry)]:
        record = read_json(pipeline.folder.student_json(name))
        if record is None:
            continue
        top1 = (record.get("evaluation") or {}).get("top1")
        if top1 is None:
            top1 = record.get("top1_test_accuracy") or 0.0
        scored.append((bool(record.get("teachers")), top1, name))
    if not scored:
        raise StepOrderError("No student is trained yet. Run 'libkd distill' with the same options first.")
    return max(scored)[2]


def export_steps(pipeline, student=None):
    """The step "export/<name>": one student to every configured LiteRT variant, measured, into exports/<name>/
    (the .tflite files, their metadata and export_report.json: size, latency, accuracy).

    The student: `student`, else export.student, else the best distilled one; a [[students]] entry with
    several seeds names its best seed. No step when export.quantizations is empty.
    """
    settings = pipeline.config.export
    if not settings.quantizations:
        pipeline.nothing_to_do("export", "export.quantizations is empty")
        return
    names = pipeline.config.student_names
    entries = {s.entry for s in pipeline.config.students}
    if student is not None and student not in names and student not in entries:
        raise ConfigError(
            f"Unknown student {student!r}; this run's students: {', '.join(names)}." + not_a_file_hint([student])
        )
    name = student or settings.student
    if not name or name not in names:  # none given, or an entry with several seeds: its best seed
        name = best_student(pipeline, entry=name or None)
    makes = (f"exports/{name}/export_report.json",)
    yield Step(f"export/{name}", functools.partial(_export, pipeline, name), needs=(f"student/{name}",), makes=makes)


def _export(pipeline, name, announce):
    settings, folder = pipeline.config.export, pipeline.folder
    announce(f": {', '.join(settings.quantizations)}")
    model = keras.saving.load_model(folder.student_model(name), compile=False)  # export makes it float32
    train, test = pipeline.split("train"), pipeline.split("test")
    rows = export_report(
        model,
        str(folder.export_dir(name)),
        test,
        representative_data=train.images[: settings.representative_images],
        quantizations=settings.quantizations,
        name=name,
        class_names=list(test.class_names),
        settings=ReportSettings(threads=(settings.threads,), runs=settings.latency_runs),
        dataset_name=pipeline.config.data.dataset,
        log=lambda line: pipeline.say(f"       export {name} {line}"),
    )
    files = [f"exports/{name}/{row['file']}" for row in rows if row.get("file")]
    best = {row["variant"]: row for row in rows}
    detail = "  ".join(
        f"{q} {best[q]['size_mb']:.1f} MB {100 * best[q]['top1']:.1f}%" for q in settings.quantizations if q in best
    )
    return Made(detail=detail, outputs=tuple(files))
