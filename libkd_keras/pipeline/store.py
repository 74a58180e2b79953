"""Steps "store/<split>" and "store/analysis": every teacher once over each split, then their accuracy.

    store/train/, store/test/     teacher logits (libkd_keras.store)
    store/analysis.json           teacher and ensemble accuracy, disagreement matrix

`force=True` (`libkd precompute --force`) rebuilds a split's store from the trained teachers, the
repair for a store that was damaged on disk; the old store and its marker stay until the new one
is whole, so a rebuild that fails (e.g. a damaged teacher file) leaves the run as it was. Several
workers share the precompute through `store_shares.py` (`libkd precompute --worker-index I
--num-workers N`, `--finalize`).
"""

import shutil

from libkd_keras import choices
from libkd_keras.atomic_files import read_json, write_json_atomic
from libkd_keras.distill import RECIPES
from libkd_keras.distill.students import teacher_set_size
from libkd_keras.evaluation import top_k_accuracy
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.teachers import load_teacher
from libkd_keras.store import StoreError, TeacherStore, analyses, rebuild_store
from libkd_keras.store import precompute as store_precompute
from libkd_keras.store.write import finish_interrupted_replace, view_spec_for


def precompute(pipeline, splits=("train", "test"), force=False):
    """Runs every teacher once over each split and stores the logits; then the store analysis."""
    config, folder = pipeline.config, pipeline.folder
    names = config.teacher_names
    if not names:
        pipeline.say("[skip] store  (no teachers configured)")
        return
    pipeline.require([f"teacher/{n}" for n in names], "train-teacher")
    for which in splits:
        step = f"store/{which}"
        if not force and pipeline.finished(step):
            pipeline.skip(step, f"store {which}")
            continue
        split, path = pipeline.split(which), folder.store_split(which)
        finish_interrupted_replace(path)  # first: a kill between --force's renames left the new store aside
        remove_incomplete(path)
        started = pipeline.clock()
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
            pipeline.say(
                f"[....] store {which}: {'rebuilding, ' if force else ''}{len(missing)} teacher(s) over "
                f"{len(split):,} images"
            )
            run_teachers(pipeline, missing, split, path, write=rebuild_store if force else store_precompute)
        mark_done(pipeline, which, started)  # with force: the old store and its marker stayed until here
        if force:
            folder.forget("store/analysis")
    if "test" in splits or (force and folder.done("store/test")):
        analyze_store(pipeline)


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
    pad-4 crop, store/views.py) on the train split when store.views is set, else none."""
    if config.store.views and split.split == "train":
        return {"views": config.store.views, "view_padding": RECIPES["baseline"]().crop_padding}
    return {}


def check_views(config, train):
    """A ConfigError unless the images of `train` have store.views distinct flips and crops (before training)."""
    options = view_options(config, train)
    if options:
        try:
            view_spec_for(train, options["views"], options["view_padding"], seed=0)
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


def mark_done(pipeline, which, started):
    """Marks "store/<which>" finished: its manifest is in place."""
    pipeline.done(
        f"store/{which}",
        f"store {which}",
        started,
        outputs=[f"store/{which}/manifest.json"],
        detail=f"{len(pipeline.config.teacher_names)} teachers x {len(pipeline.split(which)):,} images",
    )


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


def analyze_store(pipeline):
    """Accuracy of every teacher and ensemble on the test store, their disagreement matrix, and how
    far their soft targets on the student's training images are from the labels."""
    step, folder = "store/analysis", pipeline.folder
    if pipeline.finished(step):
        pipeline.skip(step, "store analysis")
        return
    pipeline.require(["store/test"], "precompute")
    started = pipeline.clock()
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
    pipeline.done(step, "store analysis", started, outputs=["store/analysis.json"], detail=detail)
