"""Sharded precompute of a run's store: `libkd precompute --worker-index I --num-workers N`, and `--finalize`.

Each of N worker processes (several on one host, or on several hosts sharing the run folder, e.g.
over NFS) runs the trained teachers over its disjoint share of each split's shards
(`libkd_keras.store.write_share`). The worker whose share completes a split's store writes its manifest
and marks "store/<split>" done, as one `libkd precompute` process would (and, for the test split,
runs "store/analysis"); every other worker prints one line saying what is still missing and
leaves the step unmarked. `--finalize` writes the manifest of a store whose shares are all written
(a worker stopped after writing its share) or names the missing or duplicated share.

The workers share the run folder, so they do not take its lock (`RunFolder.open`): they need an
existing run folder of the same configuration (the one the teachers were trained in), never write
its config, and refuse a folder another libkd command holds.
"""

from pathlib import Path

from libkd_keras.pipeline.config_text import config_differences
from libkd_keras.pipeline.run_folder import RunFolder, RunFolderLocked, differences_text, load_run_config, lock_owner
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.store import analyze_store, mark_done, run_teachers
from libkd_keras.store import StoreError, finalize_store, write_share
from libkd_keras.store.format import share_file

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


def precompute_share(pipeline, splits, worker_index, num_workers):
    """Worker `worker_index` of `num_workers`: its share of each split's store (see the module docstring)."""
    folder, names = pipeline.folder, pipeline.config.teacher_names
    if not names:
        pipeline.say("[skip] store  (no teachers configured)")
        return
    pipeline.require([f"teacher/{n}" for n in names], "train-teacher")
    who = f"worker {worker_index} of {num_workers}"
    analyze = False
    for which in splits:
        step = f"store/{which}"
        if folder.done(step):
            pipeline.skip(step, f"store {which}")
            analyze |= which == "test"
            continue
        split, path = pipeline.split(which), folder.store_split(which)
        started = pipeline.clock()
        if (path / "manifest.json").exists():
            pipeline.say(
                f"[skip] store {which}: {who}: the store is already finalized (its manifest exists); the worker "
                "that finalized it marks the step done, or run 'libkd precompute --finalize'"
            )
            continue
        pipeline.say(f"[....] store {which}: {who}, {len(names)} teacher(s) over its share of {len(split):,} images")
        store = run_teachers(
            pipeline, names, split, path, write_share, worker_index=worker_index, num_workers=num_workers
        )
        if store is None:
            pipeline.say(f"[share] store {which}: {_still_missing(path, worker_index, num_workers)}")
            continue
        mark_done(pipeline, which, started)
        analyze |= which == "test"
    if analyze:
        analyze_store(pipeline)


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


def finalize(pipeline, splits):
    """`libkd precompute --finalize`: the manifest of each split whose shares are all written; marks it done."""
    folder, names = pipeline.folder, pipeline.config.teacher_names
    for which in splits:
        step = f"store/{which}"
        if folder.done(step):
            pipeline.skip(step, f"store {which}")
            continue
        split, path = pipeline.split(which), folder.store_split(which)
        started = pipeline.clock()
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
        mark_done(pipeline, which, started)
    if "test" in splits:
        analyze_store(pipeline)
