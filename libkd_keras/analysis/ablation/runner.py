"""Running an ablation: train every experiment from ONE store, resumably, then write its tables.

`run_ablation(...)` trains each experiment once per seed with `distill.train_student`, so on the one
training engine (`libkd_keras.training`; no teacher is built or called: the targets come from the
store), evaluates the class head, the distillation head and their average (paper Figure 11b-c; the
average is the inference output and the headline top-1), and keeps each student and its record in
`out_dir/models/<name>__seed<k>.keras/.json`; the record's `"ablation"` entry names the experiment
and the run's settings. A rerun reads back every record whose settings match (also the
`out_dir/experiments/<name>__seed<k>.json` files an ablation wrote before one engine) and trains
only the rest; a run interrupted mid-training resumes from its backup. Then `tables.write_ablation`
writes `out_dir/ablation.md` and `out_dir/ablation.json`.

Example:
>>> store = TeacherStore.open("saved_models/budget/store/train")
>>> rows = run_ablation(store, test_split, table4_experiments(store.teacher_names), "saved_models/budget/ablation",
...                     make_student=lambda distillation: deit_tiny(distillation=distillation), epochs=50,
...                     options=FitOptions(verbose=0, validate=False, say=print))
"""

import dataclasses
import json
import os
from pathlib import Path

from libkd_keras.analysis.ablation.experiments import unique_experiments
from libkd_keras.analysis.ablation.tables import summarize, teacher_set_columns, write_ablation
from libkd_keras.atomic_files import json_safe
from libkd_keras.evaluation import HEADS

RECORD_VERSION = 1  # of a run's "ablation" entry (and of the older experiments/ JSON); another version is retrained


def _run_name(experiment, seed):
    return f"{experiment.name}__seed{seed}"


def _ablation_entry(experiment, seed, run_settings):
    """What a student's record says about the ablation run it is (`record["ablation"]`)."""
    return json_safe(
        {
            "version": RECORD_VERSION,
            "experiment": experiment.name,
            "seed": seed,
            "settings": experiment.settings(),
            "run_settings": run_settings,
        }
    )


def _read(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _load_record(out_dir, experiment, seed, run_settings):
    """A finished result for exactly these settings, or None.

    From the student's own record (`models/<run>.json`, beside its `.keras`), or from the
    `experiments/<run>.json` that an ablation wrote before one engine (same keys as the result).
    """
    entry = _ablation_entry(experiment, seed, run_settings)
    models = Path(out_dir) / "models"
    record = _read(models / f"{_run_name(experiment, seed)}.json")
    if record and record.get("ablation") == entry and (models / f"{_run_name(experiment, seed)}.keras").is_file():
        return {**entry, **_result(record)}
    older = _read(Path(out_dir) / "experiments" / f"{_run_name(experiment, seed)}.json")
    if older and all(older.get(k) == entry[k] for k in ("version", "seed", "settings", "run_settings")):
        return older
    return None


def _seed_list(seeds):
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"`seeds` must be non-negative integers, e.g. (0, 1, 2); got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` repeats a seed: {seeds}.")
    return seeds


def _as_split(data, what):
    """A `Split` from a `Split`, a `TeacherStore` holding images, or a store's path."""
    from libkd_keras.data import Split
    from libkd_keras.store import TeacherStore

    if isinstance(data, Split):
        return data
    if isinstance(data, (str, os.PathLike)):
        data = TeacherStore.open(data)
    if isinstance(data, TeacherStore):
        return data.to_split()
    raise TypeError(f"`{what}` must be a Split, a TeacherStore or a store path; got {type(data).__name__}.")


def _percent(evaluation):
    """`train_student`'s `record["evaluation"]` (fractions) -> `{"top1": {head: %}, "top5": {head: %}}`.

    A student without a distillation token keeps only its `"cls"` head (its inference output).
    """
    prefixes = {"cls": "cls_", "dist": "dist_", "both": ""}  # "both": the inference output
    heads = HEADS if evaluation.get("dist_top1") is not None else ("cls",)
    return {metric: {h: 100.0 * evaluation[f"{prefixes[h]}{metric}"] for h in heads} for metric in ("top1", "top5")}


def _train_and_evaluate(experiment, seed, store, splits, recipe, make_student, out_dir, options):
    """Train one student from the store with `train_student` (no teacher is run) and evaluate its heads.

    `recipe` is the experiment's student at the run's epochs and overrides; `options` the run's
    `FitOptions` (its record holding the run's "ablation" entry). The student and its `train_student`
    record go to `out_dir/models/<name>__seed<k>.keras/.json`; an interrupted run resumes from its last
    backed-up epoch. Returns the run's result (`_result`).
    """
    from libkd_keras.distill import make_student as make_deit
    from libkd_keras.distill import target_source, train_student

    def build(distillation_token):
        if make_student is not None:
            return make_student(distillation_token)
        return make_deit(
            recipe,
            num_classes=store.num_classes,
            image_size=tuple(store.image_shape[:2]),
            distillation_token=distillation_token,
        )

    train_split, test_split = splits
    record = train_student(
        build,
        train_split,
        test_split,
        Path(out_dir) / "models",
        recipe=recipe,
        targets=target_source("clean", experiment.teachers, experiment.ensemble, store=store),
        seed=seed,
        name=_run_name(experiment, seed),
        evaluate=True,
        options=options,
    )
    return _result(record)


def _result(record):
    """A run's result (accuracies in percent, for `summarize`) from its student's `train_student` record."""
    last = {k: v[-1] for k, v in record["history"].items() if k not in ("epoch", "time_s") and v}
    return {
        **_percent(record["evaluation"]),
        "student_params": record["trainable_parameters"],
        "train_seconds": record["training_time_s"],
        "final_logs": last,
    }


def _check_arguments(store, experiments, epochs, recipe_overrides):
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer; got {epochs!r}.")
    reserved = {"epochs", "distillation", "alpha", "temperature"} & set(recipe_overrides)
    if reserved:
        raise ValueError(
            f"`recipe_overrides` may not set {sorted(reserved)}: they are per experiment "
            "(`Experiment` fields) or arguments of run_ablation."
        )
    for experiment in experiments:
        unknown = [t for t in experiment.teachers if t not in store.teacher_names]
        if unknown and not experiment.skip:
            raise ValueError(
                f"experiment {experiment.name!r} asks for teachers {unknown} that store "
                f"{store.path!r} does not hold; stored teachers: {store.teacher_names}."
            )


def _recipes(experiments, epochs, recipe_overrides):
    """Every run's `StudentRecipe` (`{name: recipe}`) and the batch size they share (equal student budget)."""
    recipes = {e.name: e.student.replace(epochs=epochs, **recipe_overrides) for e in experiments if not e.skip}
    sizes = sorted({recipe.batch_size for recipe in recipes.values()})
    if len(sizes) > 1:
        raise ValueError(
            f"the experiments' students train with batch sizes {sizes}; an ablation compares them at one: "
            f"give it, e.g. recipe_overrides={{'batch_size': {sizes[0]}}}."
        )
    return recipes, sizes[0] if sizes else recipe_overrides.get("batch_size", 128)


_REMOVED = {  # run_ablation's keywords before FitOptions: where each is given now
    "batch_size": "recipe_overrides={'batch_size': ...} (default: the experiments' student recipes')",
    "compile_options": "options=FitOptions(compile_options=...)",
    "verbose": "options=FitOptions(verbose=...)",
    "log": "options=FitOptions(say=...)",
}


def run_ablation(
    store,
    test,
    experiments,
    out_dir,
    *,
    make_student=None,
    epochs=1,
    seeds=(0,),
    train_split=None,
    recipe_overrides=None,
    options=None,
    **removed,
):
    """Train every experiment from ONE store, evaluate it, and write the ablation table.

    Args:
        store: TeacherStore or path. The training split's store; teacher targets are read from
            it, no teacher is built or run.
        test: Split, TeacherStore or path. The test data (a store must hold the test images).
        experiments: list of Experiment. E.g. `table4_experiments(store.teacher_names)`; skipped
            ones appear in the table with their note. The same name twice must be the same experiment.
        out_dir: path. Results folder: `models/<name>__seed<k>.keras/.json`, each student and its
            `train_student` record (kept and skipped on rerun when its "ablation" settings match; so
            are the `experiments/<name>__seed<k>.json` of ablations written before one engine),
            `ablation.json` and `ablation.md`. An interrupted run resumes from its last epoch's
            backup: rerun it with the same settings.
        make_student: callable or None. `make_student(distillation_token: bool) -> DeiT`, called
            once per run after the seed and the recipe's precision are set; default: DeiT-Tiny
            (patch 4) with the recipe's drop path. Baselines get no distillation token. Changing
            it between reruns is not detected: use a new `out_dir`.
        epochs: int. Epochs of every student (equal student budget).
        seeds: int or sequence of int. One run per seed; gains get their std over seeds when there are several.
        train_split: Split or None. The split the store was computed on (default: the store's own images).
        recipe_overrides: dict or None. `StudentRecipe` fields changed in every experiment's student (e.g.
            `{"batch_size": 64, "warmup_epochs": 1}`); the students must share one batch size (by default
            the experiments' recipes', 128 for `table4_experiments`' baseline).
        options: `training.FitOptions` or None (default `FitOptions(verbose=0, validate=False)`): Keras
            verbosity, extra `compile` arguments (e.g. `{"jit_compile": False}`), callbacks, and `say`,
            called with one line per run. The ablation evaluates every head at the end, so it validates
            during training only with `validate=True`; it always trains the runs it did not read back
            (`overwrite`), and adds its "ablation" entry to `record`.

    Returns the table rows (dicts; accuracies in percent), also in `ablation.json`.
    """
    from libkd_keras.store import TeacherStore
    from libkd_keras.training import FitOptions

    if removed:
        moved = "; ".join(f"{k}= -> {_REMOVED[k]}" for k in sorted(removed) if k in _REMOVED)
        raise TypeError(
            f"run_ablation() got unexpected keyword argument(s) {', '.join(f'{k}=' for k in sorted(removed))}"
            + (f". They are given as: {moved} (FitOptions is in libkd_keras.training)." if moved else ".")
        )
    options = options or FitOptions(verbose=0, validate=False)
    if not isinstance(options, FitOptions):
        raise TypeError(f"`options` must be a libkd_keras.training.FitOptions; got {type(options).__name__}.")
    store = TeacherStore.open(store) if isinstance(store, (str, os.PathLike)) else store
    experiments = unique_experiments(experiments)
    seeds = _seed_list(seeds)
    recipe_overrides = dict(recipe_overrides or {})
    _check_arguments(store, experiments, epochs, recipe_overrides)
    recipes, batch_size = _recipes(experiments, epochs, recipe_overrides)
    log = options.say
    out_dir = Path(out_dir)
    train_split = store.to_split() if train_split is None else train_split
    store.check_matches(train_split)
    test_split = _as_split(test, "test")
    if test_split.num_classes != store.num_classes:
        raise ValueError(f"the test data has {test_split.num_classes} classes and the store {store.num_classes}.")
    run_settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "recipe_overrides": {k: v for k, v in recipe_overrides.items() if k != "batch_size"},
        "train_fingerprint": store.fingerprint,
        "test_fingerprint": test_split.fingerprint,
        "default_student": make_student is None,
    }

    records = {}
    runnable = [e for e in experiments if not e.skip]
    total, done = len(runnable) * len(seeds), 0
    for experiment in experiments:
        if experiment.skip:
            log(f"[ablation] {experiment.name}: skipped, {experiment.skip}")
            continue
        for seed in seeds:
            done += 1
            record = _load_record(out_dir, experiment, seed, run_settings)
            if record is None:
                entry = _ablation_entry(experiment, seed, run_settings)
                run_options = dataclasses.replace(options, overwrite=True, record={**options.record, "ablation": entry})
                result = _train_and_evaluate(
                    experiment,
                    seed,
                    store,
                    (train_split, test_split),
                    recipes[experiment.name],
                    make_student,
                    out_dir,
                    run_options,  # overwrite: `_load_record` said whether a record of these settings is there
                )
                record = {**entry, **json_safe(result)}
                how = f"trained in {record['train_seconds']:.1f}s"
            else:
                how = "already done"
            main = "cls" if experiment.is_baseline else "both"
            log(f"[ablation {done}/{total}] {experiment.name} seed {seed}: top-1 {record['top1'][main]:.2f}% ({how})")
            records.setdefault(experiment.name, {})[seed] = record

    columns = {e.name: teacher_set_columns(store, e.teachers) for e in runnable}
    rows = summarize(experiments, records, epochs, columns, predictions_dir=Path(out_dir) / "models")
    write_ablation(
        out_dir,
        rows,
        epochs=epochs,
        batch_size=batch_size,
        seeds=seeds,
        store_path=store.path,
        train_examples=len(train_split),
        test_examples=len(test_split),
    )
    return rows
