"""Step "student/<name>": each [[students]] entry, at each seed, by `distill.train_student`; the ablation runner.

    students/<name>.keras + .json     the student and its record (keys as a teacher's record; "entry" and
                                      "seed" say which [[students]] entry and seed it is)
    checkpoints/student_<name>/       its backup while training; logs/student_<name>/ its logs

A student with teachers learns from the train store (`store/train`), the baseline from the labels.
Its recipe is the [student] section with the entry's own keys (`StudentEntry.recipe`: one
`StudentRecipe`), its model `student.arch` / `[student.model]` (`distill.student_builder`).
"""

import time

from libkd_keras import choices
from libkd_keras.distill import student_builder, train_student
from libkd_keras.distill.online import in_input_pipeline
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.teachers import load_teacher
from libkd_keras.resumable import TrainingDiverged
from libkd_keras.store import TeacherStore
from libkd_keras.xla import student_jit_compile


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


def distill(pipeline, only=()):
    """Trains every configured student (or those in `only`: student or entry names) not trained yet.

    An entry with several `seeds` is one student per seed (`<name>_s<seed>`), each its own step.
    """
    for entry in pipeline.config.select_students(only):
        step = f"student/{entry.name}"
        if pipeline.finished(step):
            pipeline.skip(step, f"student {entry.name}")
            continue
        train_one(pipeline, entry)


def train_one(pipeline, entry):
    config, folder, name, teachers = pipeline.config, pipeline.folder, entry.name, list(entry.teachers)
    settings = entry.settings
    online = bool(teachers) and settings.targets == "online"
    in_step = online and not in_input_pipeline()  # online teachers run in the step or in tf.data
    if online:
        pipeline.require([f"teacher/{t}" for t in teachers], "train-teacher")
    elif teachers:
        pipeline.require(["store/train"], "precompute")
    train, test = pipeline.split("train"), pipeline.split("test")
    recipe = entry.recipe
    with_store = teachers and (not online or folder.done("store/train"))  # online: only for the teachers' sizes
    store = open_train_store(pipeline) if with_store else None
    what = (
        f"{', '.join(teachers)} ({settings.distillation}, {settings.ensemble}, {settings.targets} targets)"
        if teachers
        else "no teacher"
    )
    pipeline.say(
        f"[....] student {name} (seed {entry.seed}): {settings.epochs} epochs on {len(train):,} images, "
        f"{what}, recipe {recipe.recipe}"
    )
    started = pipeline.clock()
    try:
        record = train_student(
            builder_for(settings, train),
            train,
            test,
            str(folder.students),
            recipe=recipe,
            epochs=settings.epochs,
            seed=entry.seed,
            store=store,
            teachers=teachers,
            ensemble=settings.ensemble,
            targets=settings.targets,
            teacher_models={t: load_teacher(pipeline, t) for t in teachers} if online else None,
            name=name,
            backup_dir=folder.checkpoint("student", name),
            log_dir=folder.log_dir("student", name),
            callbacks=pipeline.extra_callbacks("student", name),
            validate_every=settings.validate_every,
            compile_options={"jit_compile": student_jit_compile(config.run.jit_compile, in_step)},
            extra_record={
                "order": entry.order,
                "entry": entry.entry,
                "architecture": config.student.arch,
                "arch": config.student.arch,
                "patch_size": config.student.patch_size,
                "true_label": True,
                "image_shape": list(train.image_shape),
            },
            verbose=pipeline.fit_verbose,
            overwrite=True,
            say=pipeline.say,
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
    pipeline.done(
        f"student/{name}",
        f"student {name}",
        started,
        outputs=[f"students/{name}.keras", f"students/{name}.json"],
        summary={"val_top1": accuracy},
        detail="" if accuracy is None else f"test top-1 {100 * accuracy:.1f}%",
    )


def ablate(pipeline, experiments="table4", seeds=(0,), epochs=None, recipes=choices.TABLE4_RECIPES):
    """Table 4's teacher sets and/or Figure 11's hard/soft/temperature runs, all from the train store.

    Results go to `ablation/` (one JSON per finished run: a rerun resumes) and into the report.
    """
    from libkd_keras.analysis import ablation

    pipeline.require(["store/train"], "precompute")
    config, train = pipeline.config, pipeline.split("train")
    student = config.student.replace(precision=config.run.precision)  # each experiment: a replace of it
    store = open_train_store(pipeline)
    chosen = []
    if experiments in ("table4", "all"):
        chosen += ablation.table4_experiments(store.teacher_names, recipes=tuple(recipes), student=student)
    if experiments in ("figure11", "all"):
        chosen += ablation.figure11_experiments(store.teacher_names, student=student.replace(recipe="baseline"))
    pipeline.say(
        f"[....] ablation: {len(chosen)} experiments x {len(seeds)} seed(s), {epochs or student.epochs} epochs each"
    )
    started = time.perf_counter()
    ablation.run_ablation(
        store,
        pipeline.split("test"),
        chosen,
        pipeline.folder.root / "ablation",
        make_student=builder_for(student, train),
        epochs=epochs or student.epochs,
        batch_size=student.batch_size,
        seeds=tuple(seeds),
        train_split=train,
        compile_options={"jit_compile": student_jit_compile(config.run.jit_compile)},
        verbose=pipeline.fit_verbose,
        log=pipeline.say,
    )
    pipeline.say(f"[done] ablation  {time.perf_counter() - started:.1f} s  ablation/ablation.md")
