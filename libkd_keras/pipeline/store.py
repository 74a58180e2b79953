"""Steps "store/<split>" and "store/analysis": every teacher once over each split, then their accuracy.

    store/train/, store/test/     teacher logits (libkd_keras.store)
    store/analysis.json           teacher and ensemble accuracy, disagreement matrix

A split's store is made one of three ways (`store_steps`), each the step "store/<split>":

    one process     `libkd precompute`; `force=True` (`--force`) rebuilds a finished store from the
                    trained teachers, the repair for a store damaged on disk: the old store and its
                    marker stay until the new one is whole, so a rebuild that fails (e.g. a damaged
                    teacher file) leaves the run as it was
    a worker        `libkd precompute --worker-index I --num-workers N`: each of N processes (on one
                    host, or on several sharing the run folder, e.g. over NFS) runs the teachers over
                    its disjoint share of each split's shards (`libkd_keras.store.write_share`); the worker
                    whose share completes a split writes its manifest and marks the step done (and,
                    for the test split, runs "store/analysis"); every other one prints what is still
                    missing and leaves the step unmarked
    finalize        `libkd precompute --finalize`: the manifest of a store whose shares are all written
                    (a worker stopped after writing its share), or the missing or duplicated share named

The workers share the run folder, so they do not take its lock (`RunFolder.open`): they need an
existing run folder of the same configuration (the one the teachers were trained in), never write
its config, and refuse a folder another libkd command holds (`open_shared`).
"""

import functools
import shutil
from pathlib import Path

from libkd_keras import choices
from libkd_keras.atomic_files import read_json, write_json_atomic
from libkd_keras.distill import RECIPES
from libkd_keras.distill.students import teacher_set_size
from libkd_keras.evaluation import top_k_accuracy
from libkd_keras.pipeline.config_text import config_differences
from libkd_keras.pipeline.run_folder import RunFolder, RunFolderLocked, differences_text, load_run_config, lock_owner
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.steps import Made, Step
from libkd_keras.pipeline.teachers import load_teacher
from libkd_keras.store import StoreError, TeacherStore, analyses, finalize_store, rebuild_store, write_share
from libkd_keras.store import precompute as store_precompute
from libkd_keras.store.format import share_file
from libkd_keras.store.write import StoredViews, finish_interrupted_replace, view_spec_for


def store_steps(pipeline, splits=("train", "test"), force=False, worker_index=None, num_workers=None, finalize=False):
    """The steps "store/<split>" of `splits`, made one of the three ways (module docstring), then "store/analysis"."""
    names, folder = pipeline.config.teacher_names, pipeline.folder
    if not names and not finalize:
        pipeline.nothing_to_do("store", "no teachers configured")
        return
    if finalize:
        make, needs = _finalize, ()
    elif num_workers is not None:
        make, needs = functools.partial(_write_share, worker_index=worker_index, num_workers=num_workers), names
    else:
        make, needs = functools.partial(_write, force=force), names
    for which in splits:
        yield Step(
            f"store/{which}",
            functools.partial(make, pipeline, which),
            needs=tuple(f"teacher/{n}" for n in needs),
            makes=(f"store/{which}/manifest.json",),
            redo=force,  # with force: the old store and its marker stay until the new one is whole
        )
    if ("test" in splits or force) and folder.done("store/test"):
        yield analysis_step(pipeline)


def _write(pipeline, which, announce, force=False):
    """Store `which` by this process: the teachers missing from it (with `force`: all, a rebuild from scratch)."""
    config, folder = pipeline.config, pipeline.folder
    names = config.teacher_names
    split, path = pipeline.split(which), folder.store_split(which)
    finish_interrupted_replace(path)  # first: a kill between --force's renames left the new store aside
    remove_incomplete(path)
    stored = []
    if not force and (path / "manifest.json").exists():  # written, but the marker was not (interrupted)
        stored = TeacherStore.open(path, expect=split).teacher_names
    elif not force and (path / "shares").is_dir():
        raise ConfigError(
            f"store {which} is being written by several workers ({str(path / 'shares')!r} exists, no manifest "
            "yet): run the missing workers ('libkd precompute --worker-index I --num-workers N'), or 'libkd "
            "precompute --finalize' once every share is written; --force rebuilds it with one process instead."
        )
    missing = [n for n in names if n not in stored]  # with force: all, a rebuild from scratch
    if missing:
        announce(f": {'rebuilding, ' if force else ''}{len(missing)} teacher(s) over {len(split):,} images")
        run_teachers(pipeline, missing, split, path, write=rebuild_store if force else store_precompute)
    if force:
        folder.forget("store/analysis")  # of the old store
    return _made(pipeline, which)


def run_teachers(pipeline, names, split, path, write=store_precompute, **options):
    """`write` (`libkd_keras.store`'s `precompute`, `rebuild_store` or `write_share`) of the teachers `names` over
    `split` into `path`, with the run's settings."""
    metadata = {
        n: {k: v for k, v in (read_json(pipeline.folder.teacher_json(n)) or {}).items() if k != "history"}
        for n in names
    }
    settings = pipeline.config.store
    options = {**view_options(pipeline.config, split), **options}
    return write(
        {n: load_teacher(pipeline, n) for n in names},
        split,
        str(path),
        dtype=settings.dtype,
        include_images=settings.include_images,
        batch_size=settings.batch_size,
        teacher_metadata=metadata,
        verbose=pipeline.fit_verbose,
        **options,
    )


def view_options(config, split):
    """`precompute`'s view arguments for `split`: the views the students replay (their recipe's flip and
    pad-4 crop, store/read.py) on the train split when store.views is set, else none."""
    if config.store.views and split.split == "train":
        return {"views": StoredViews(config.store.views, padding=RECIPES["baseline"]().crop_padding)}
    return {}


def check_views(config, train):
    """A ConfigError unless the images of `train` have store.views distinct flips and crops (before training)."""
    options = view_options(config, train)
    if options:
        try:
            view_spec_for(train, options["views"])
        except StoreError as error:
            raise ConfigError(
                f"store.views = {config.store.views} cannot be stored for {train.image_shape[0]}x"
                f"{train.image_shape[1]} images: {error} Lower store.views."
            ) from None


def remove_incomplete(path):
    """Delete `<store>.incomplete-*` folders: writes that a kill cut short (this process holds the run lock).

    Call it after `finish_interrupted_replace(path)`, which moves in a whole new store that a
    kill left here between the two renames of `--force`.
    """
    for stale in path.parent.glob(f"{path.name}.incomplete-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _made(pipeline, which):
    """What the step "store/<which>" made: its manifest is in place."""
    return Made(detail=f"{len(pipeline.config.teacher_names)} teachers x {len(pipeline.split(which)):,} images")


def ensembles(config):
    """`[(name, members), ...]`: each family's seeds (the user's own teachers: "keras xN"), all teachers,
    each student's teacher set."""
    specs = config.teacher_specs
    groups = []
    for family in (*choices.TEACHER_FAMILIES, choices.OWN_TEACHER_FAMILY):
        members = [t.name for t in specs if t.family == family]
        if len(members) > 1:
            base = family if family == choices.OWN_TEACHER_FAMILY else members[0].rsplit("_s", 1)[0]
            groups.append((f"{base} x{len(members)}", members))
    if len({t.family for t in specs}) > 1:
        groups.append((f"all {len(specs)} teachers", [t.name for t in specs]))
    for entry in config.students:
        members = list(entry.teachers)
        if len(members) > 1 and all(members != m for _, m in groups):
            groups.append((f"{entry.entry} teachers", members))
    return groups


def _train_targets(pipeline):
    """`label_information` of each teacher and ensemble on the student's training store (None without it).

    At T = 1, where the probabilities read as the teachers' confidence: how much the targets on the
    images the students train on differ from the labels.
    """
    if not pipeline.folder.done("store/train"):
        return None
    store = TeacherStore.open(pipeline.folder.store_split("train"), expect=pipeline.split("train"))
    temperature = 1.0
    sets = [(n, [n]) for n in pipeline.config.teacher_names] + ensembles(pipeline.config)
    rows = [
        {"name": name, "members": members, **analyses.label_information(store, members, temperature)}
        for name, members in sets
    ]
    return {"temperature": temperature, "num_examples": store.num_examples, "rows": rows}


def analysis_step(pipeline):
    """The step "store/analysis": accuracy of every teacher and ensemble on the test store, their disagreement
    matrix, and how far their soft targets on the student's training images are from the labels."""
    return Step(
        "store/analysis", functools.partial(_analyze, pipeline), needs=("store/test",), makes=("store/analysis.json",)
    )


def _analyze(pipeline, announce):
    folder = pipeline.folder
    store = TeacherStore.open(folder.store_split("test"), expect=pipeline.split("test"))
    teachers = {n: read_json(folder.teacher_json(n)) or {} for n in pipeline.config.teacher_names}
    accuracy = analyses.teacher_accuracy(store, list(teachers), ensemble=())
    rows, labels, predictions = [], list(teachers), [analyses.scores(store, n) for n in teachers]
    for name, members in ensembles(pipeline.config):
        logits = store.logits(members)
        for rule in choices.ENSEMBLES:
            scores = analyses.ensemble_scores(logits, rule)
            k = min(5, store.num_classes)
            params, size = teacher_set_size(teachers, members)
            rows.append(
                {
                    "name": name,
                    "members": members,
                    "rule": rule,
                    "top1": top_k_accuracy(scores, store.labels, 1),
                    "top5": top_k_accuracy(scores, store.labels, k),
                    "params": params,
                    "size_mb": size,
                }
            )
            if rule == "soft":
                labels.append(f"{name} (soft)")
                predictions.append(scores)
    matrix = [[analyses.disagreement(a, b) for b in predictions] for a in predictions]
    write_json_atomic(
        folder.store_analysis,
        {
            "split": "test",
            "num_examples": store.num_examples,
            "teachers": accuracy,
            "ensembles": rows,
            "disagreement": {"labels": labels, "matrix": matrix},
            "train_targets": _train_targets(pipeline),
        },
    )
    best = max(rows, key=lambda e: e["top1"], default=None)
    detail = f"best ensemble {best['name']} ({best['rule']}) top-1 {100 * best['top1']:.1f}%" if best else ""
    return Made(detail=detail)


# ------------------------------------------------------------- several workers (sharded precompute)

WORKER_HINT = "'libkd precompute --worker-index I --num-workers N' with the run's options"


def open_shared(root, config):
    """The run folder `root` of `config`, opened beside other workers: checked, but not locked."""
    root = Path(root)
    stored = load_run_config(root)
    if stored is None:
        raise ConfigError(
            f"{str(root)!r} is not a libkd run folder (no config.toml). Sharded precompute works in the run "
            "folder the teachers were trained in: train them first ('libkd train-teacher'), then pass that "
            "folder with --out on every worker."
        )
    differences = config_differences(stored, config)
    if differences:
        raise ConfigError(
            f"Run folder {str(root)!r} holds a different run (its config.toml differs: "
            f"{differences_text(differences)}). Every worker must use the run's own settings: pass only --out "
            "(the stored config is used) or the options the teachers were trained with."
        )
    owner = lock_owner(RunFolder(root, config).lock)
    if owner is not None:
        raise RunFolderLocked(
            f"Run folder {str(root)!r} is in use by another libkd command (pid {owner.get('pid')} on host "
            f"{owner.get('host')!r}, since {owner.get('since')}); precompute workers share a folder only with "
            "each other. Wait for it to finish; if that process is gone, delete "
            f"{str(RunFolder(root, config).lock)!r}."
        )
    return RunFolder(root, config)


def _write_share(pipeline, which, announce, worker_index, num_workers):
    """Worker `worker_index` of `num_workers`: its share of store `which`; a `Made` when its share completed it."""
    folder, names = pipeline.folder, pipeline.config.teacher_names
    who = f"worker {worker_index} of {num_workers}"
    split, path = pipeline.split(which), folder.store_split(which)
    if (path / "manifest.json").exists():
        pipeline.say(
            f"[skip] store {which}: {who}: the store is already finalized (its manifest exists); the worker "
            "that finalized it marks the step done, or run 'libkd precompute --finalize'"
        )
        return None
    announce(f": {who}, {len(names)} teacher(s) over its share of {len(split):,} images")
    store = run_teachers(pipeline, names, split, path, write_share, worker_index=worker_index, num_workers=num_workers)
    if store is None:
        pipeline.say(f"[share] store {which}: {_still_missing(path, worker_index, num_workers)}")
        return None
    return _made(pipeline, which)


def _still_missing(path, worker_index, num_workers):
    """The line of a worker whose share did not complete the store."""
    missing = [i for i in range(num_workers) if not (Path(path) / share_file(i, num_workers)).exists()]
    written = f"worker {worker_index} of {num_workers} wrote its share"
    if not missing:
        return f"{written}; all {num_workers} shares are written, the worker that wrote the last finalizes the store"
    return (
        f"{written}; {len(missing)} of {num_workers} shares still missing (worker(s) "
        f"{', '.join(map(str, missing))}); the worker that writes the last one finalizes the store (or "
        "'libkd precompute --finalize' once all are written)"
    )


def _finalize(pipeline, which, announce):
    """`libkd precompute --finalize`: the manifest of store `which`, whose shares are all written."""
    folder, names = pipeline.folder, pipeline.config.teacher_names
    split, path = pipeline.split(which), folder.store_split(which)
    try:
        store = finalize_store(str(path))
        store.check_matches(split)
    except StoreError as error:
        raise StoreError(f"Cannot finalize store {which}: {error} (a worker is run with {WORKER_HINT}).") from None
    absent = [n for n in names if n not in store.teacher_names]
    if absent:
        raise ConfigError(
            f"Store {which} ({str(path)!r}) holds no logits of teacher(s) {absent}; run 'libkd precompute' "
            "(one process) with the run's options to add them."
        )
    return _made(pipeline, which)
