"""Writing a teacher store: explicit functions, one per kind of write, and everything they use below them.

    write_store(teachers, split, path)          a new store (`views=V`: also the teachers' logits on V views)
    add_teachers(store_or_path, teachers)       more teachers into a store; the others are not rewritten
    rebuild_store(teachers, split, path)        a new store in place of whatever store is at `path` (a damaged one)
    write_share(teachers, split, path, i, n)    worker i's share of a store written by n workers
    finalize_store(path)                        the manifest of a store whose n shares are all written
    precompute(teachers, split, path)           `write_store`, or `add_teachers` when `path` holds a store

The layout is `format.py`'s; `TeacherStore` (read.py) only reads. No write leaves a half store
under a name that opens, because the manifest is always written last:
- a new local store is written under `<path>.incomplete-<token>` and renamed to `path` once whole;
- `rebuild_store` then moves the old one to `<path>.replaced-<token>`, renames the new one in and
  deletes the old; a kill between the two renames is finished by the next write to `path`
  (`finish_interrupted_replace`), so nothing is lost at any instant;
- added teachers get new folders that join the store only when the new manifest is renamed in;
- a share joins the store only when `finalize_store` has checked every share and writes the manifest.
On other `tf.io.gfile` filesystems (`gs://`, `ram://`: renames may be copies) a new store is written
in place, manifest last, so a folder that opens is always whole; `rebuild_store` there first deletes
the old manifest (the old store stops opening), then its files, then writes the new store.

Read from the top: the entry points, then the checks they make before writing anything, then
running the teachers, writing shards and manifests, replacing a local store, and the shares.
"""

import dataclasses
import inspect
import json
import os
import shutil
import types
import typing

import numpy as np
import tensorflow as tf

from libkd_keras.data import Split
from libkd_keras.store import files
from libkd_keras.store.format import (
    DEFAULT_SHARD_SIZE,
    EXAMPLES_DIR,
    INCOMPLETE,
    LOGIT_DTYPES,
    MANIFEST_FILE,
    REPLACED,
    SHARE_FORMAT,
    SHARE_NAME,
    SHARES_DIR,
    STORE_PARTS,
    TEACHER_NAME,
    TEACHERS_DIR,
    VIEWS_DIR,
    StoreError,
    aside,
    example_record,
    finish_manifest,
    logits_record,
    manifest_head,
    new_token,
    now,
    shard_bounds,
    shard_file,
    share_file,
    share_token,
    teacher_folder,
)
from libkd_keras.store.read import TeacherStore, ViewRecipe, recipe_of, view_images

ENCODE_BATCH = 512
REBUILD_HINT = "rebuild_store(teachers, split, path) (the CLI's `libkd precompute --force`)"


# ================================================================================ entry points
def write_store(
    teachers,
    split,
    path,
    *,
    dtype="float16",
    include_images=True,
    batch_size=256,
    shard_size=DEFAULT_SHARD_SIZE,
    teacher_metadata=None,
    views=None,
    verbose=0,
    **removed,
):
    """Run each teacher once (`predict`, `training=False`) over `split`; store logits, labels, ids (+ images).

    Args:
        teachers: dict. `{name: keras.Model}`; each maps raw pixels in [0, 255] to logits `(B, C)`.
        split: Split. The data to label (its fingerprint goes into the manifest).
        path: str or path. The new store's folder, on any `tf.io.gfile` filesystem (local, `gs://`, ...):
            missing or empty. A store already there is an error naming `add_teachers` and `rebuild_store`.
        dtype: str. `"float16"` (default, half the size) or `"float32"` for the stored logits.
        include_images: bool. Store PNG images so the store alone can feed training.
        batch_size: int. Images per teacher forward pass.
        shard_size: int. Examples per TFRecord shard.
        teacher_metadata: dict or None. `{name: dict}` (e.g. `train_teacher`'s metadata) kept in the manifest.
        views: `StoredViews(count, padding=4, seed=0)`, an int or "all" (that count, padding 4, seed 0),
            or None. Also store each teacher's logits on `count` flip-and-crop views of every image
            (`read.py`; "all": every distinct one), for `dataset(..., views=True)`.
        verbose: int or str. `predict`'s progress bar for each teacher's pass (0: none, "auto"/1: a progbar).

    Returns the `TeacherStore`.

    Example:
    >>> store = write_store({"resnet26_seed0": resnet, "rednet26_seed0": rednet}, train, "runs/store")
    >>> store.logits().shape
    (50000, 2, 10)
    >>> store = write_store(teachers, train, "runs/views", views=16)   # + logits on 16 views per image
    >>> store = write_store(teachers, train, "runs/views2", views=StoredViews(16, padding=2))
    """
    if removed:
        write_options(removed)  # a TypeError naming the options write_store takes
    path, view_spec = _store_path(split, path), view_spec_for(split, views)
    finish_interrupted_replace(path)
    if files.isfile(files.join(path, MANIFEST_FILE)):
        raise StoreError(
            f"{path!r} already holds a teacher store: add teachers to it with add_teachers(path, teachers), or "
            f"replace it with {REBUILD_HINT}."
        )
    metadata = check_teachers(teachers, teacher_metadata, dtype)
    check_shard_size(shard_size)
    check_fresh(path)
    options = (metadata, dtype, include_images, batch_size, shard_size, verbose, view_spec)
    return _write_new(path, teachers, split, *options)


def rebuild_store(teachers, split, path, **options):
    """A new store of exactly `teachers` in place of whatever store is at `path`: the repair path.

    `options` are `write_store`'s keyword arguments (a name it does not take is a `TypeError`). The
    store at `path` may be damaged, of another split, or
    unfinished (shares). Locally the old store is replaced only once the new one is whole, so a
    rebuild that fails leaves it as it was; on other filesystems it is deleted first (module
    docstring). A folder holding anything but store files is refused, and nothing is deleted.

    Example:
    >>> store = rebuild_store(teachers, train, "runs/store")   # a shard was truncated on disk
    """
    o = write_options(options)
    path, view_spec = _store_path(split, path), view_spec_for(split, o.views)
    finish_interrupted_replace(path)
    metadata = check_teachers(teachers, o.teacher_metadata, o.dtype)
    check_shard_size(o.shard_size)
    check_replaceable(path)
    if not files.is_local(path):
        delete_store(path)
    layout = (metadata, o.dtype, o.include_images, o.batch_size, o.shard_size, o.verbose, view_spec)
    return _write_new(path, teachers, split, *layout)


def write_options(options):
    """`write_store`'s keyword arguments in `options`, with its defaults for the rest (as attributes).

    `rebuild_store` and `write_share` take the same options; they are declared once, on `write_store`.
    """
    keyword_only = [p for p in inspect.signature(write_store).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - {p.name for p in keyword_only})
    if unknown:
        hint = ""
        if {"view_padding", "view_seed"} & set(unknown):  # the keywords of before
            hint = " The views' padding and seed are part of `views` now: views=StoredViews(count, padding, seed)."
        raise TypeError(f"unknown store option(s) {unknown}; write_store takes {[p.name for p in keyword_only]}.{hint}")
    return types.SimpleNamespace(**{p.name: options.get(p.name, p.default) for p in keyword_only})


def precompute(teachers, split, path, *, overwrite=False, **options):
    """`write_store(teachers, split, path, **options)`, or, when `path` already holds a store of `split`,
    `add_teachers` of `teachers` to it (a stored name is an error unless `overwrite=True`).

    The options are `write_store`'s; adding keeps the store's layout (`include_images`, `shard_size`)
    and refuses other `views` than the store's.

    Example:
    >>> store = precompute(teachers, train, "runs/store")                 # written
    >>> store = precompute({"rednet26_seed1": rednet}, train, "runs/store")  # added
    """
    for key in sorted({"force", "worker_index", "num_workers"} & options.keys()):  # the modes it once had
        raise TypeError(
            f"precompute() takes no {key}= any more: a damaged store is rebuilt with rebuild_store(teachers, split, "
            "path, ...), and worker i of n writes its share with write_share(teachers, split, path, i, n)."
        )
    o = write_options(options)  # a name write_store does not take: TypeError
    path = _store_path(split, path)
    finish_interrupted_replace(path)
    if not files.isfile(files.join(path, MANIFEST_FILE)):
        return write_store(teachers, split, path, **options)
    store = TeacherStore.open(path, expect=split)
    check_same_views(store, view_spec_for(split, o.views))
    adding = {k: options[k] for k in ("dtype", "batch_size", "teacher_metadata", "verbose") if k in options}
    return add_teachers(store, teachers, split, overwrite=overwrite, **adding)


def add_teachers(
    store, teachers, split=None, *, dtype="float16", batch_size=256, teacher_metadata=None, overwrite=False, verbose=0
):
    """Run only the given teachers over the stored data and add their logits; other teachers are untouched.

    Args:
        store: TeacherStore or path. The store to add to (a path is opened and verified).
        teachers: dict. `{name: keras.Model}`, as for `write_store`.
        split: Split or None. Where the images come from (checked against the store); default the store's own.
        dtype, batch_size, teacher_metadata, verbose: as for `write_store`.
        overwrite: bool. Replace teachers of the same names; without it a stored name is an error.

    Returns the updated store, a new `TeacherStore` (the one given still describes the old manifest).
    The new manifest is switched in whole-or-nothing: an interruption leaves the store as it was. A
    multi-view store's new teachers label its stored views too.

    Example:
    >>> store = add_teachers("runs/store", {"rednet26_seed1": rednet})
    """
    if not isinstance(store, TeacherStore):
        finish_interrupted_replace(files.normalise(store))
        store = TeacherStore.open(store)
    metadata = check_teachers(teachers, teacher_metadata, dtype)
    existing = sorted(set(teachers) & set(store.manifest["teachers"]))
    if existing and not overwrite:
        raise StoreError(
            f"Teacher(s) {existing} are already in store {store.path!r}; pass overwrite=True to replace them "
            "or choose new names (the CLI's `libkd precompute --force` rebuilds the whole store from the run's "
            "teachers)."
        )
    if split is not None:
        store.check_matches(split)
        images = split.images[split.positions_of(store.ids)]
    elif store.includes_images:
        images = store.images()
    else:
        raise StoreError(
            f"Store {store.path!r} holds no images; pass `split=` (the split it was computed on) to run teachers."
        )
    bounds = shard_bounds(store.num_examples, store.manifest["shard_size"])
    manifest = json.loads(json.dumps(store.manifest))
    view_recipe = recipe_of(manifest)
    params = None if view_recipe is None else store.view_params()
    written = []
    try:
        for name, model in teachers.items():
            logits = teacher_logits(name, model, images, store.num_classes, batch_size, dtype, verbose)
            folder = teacher_folder(name, new_token())
            written.append(folder)
            entry = write_teacher_shards(store.path, folder, store.ids, logits, bounds, dtype, metadata.get(name, {}))
            if params is not None:  # a multi-view store: the new teacher labels the stored views too
                view_logits = teacher_view_logits(
                    name, model, images, params, view_recipe.padding, store.num_classes, batch_size, dtype, verbose
                )
                entry["view_shards"] = write_teacher_views(store.path, folder, store.ids, view_logits, bounds, dtype)
            manifest["teachers"][name] = entry
        manifest["updated"] = now()
        write_manifest(store.path, manifest)
    except BaseException:
        for folder in written:
            files.rmtree(files.join(store.path, folder))
        raise
    for name in existing:  # the replaced folders, no longer listed
        for folder in _folders(store.manifest["teachers"][name]):
            files.rmtree(files.join(store.path, folder))
    return TeacherStore(store.path, manifest)


def write_share(teachers, split, path, worker_index, num_workers, **options):
    """Worker `worker_index` of `num_workers`: its share of the store at `path`, then, if it is the last, the manifest.

    Shard `j` of the id-ordered store belongs to worker `j % num_workers`; every worker names its
    files exactly as one process writing them all would, so the finished store is the one
    `write_store` makes, byte for byte in its shards. The worker writes its shards and
    `shares/share-<i>-of-<n>.json`; the one that then finds all `n` shares runs `finalize_store`.
    Until then the folder never opens as a store. `options` are `write_store`'s keyword arguments, the
    same on every worker (a share written with other settings is refused before anything is written).
    `views` is not supported here yet: write a multi-view store with one process.

    Returns the `TeacherStore` when this worker's share completed it, else None.

    Example:
    >>> write_share(teachers, train, "gs://bucket/store", worker_index=i, num_workers=4)  # on each of 4 hosts
    """
    o = write_options(options)
    path = _store_path(split, path)
    if o.views is not None:
        raise StoreError(
            "views cannot be written by several workers yet: write a multi-view store with one process "
            "(write_store(..., views=N))."
        )
    _check_workers(worker_index, num_workers)
    metadata = check_teachers(teachers, o.teacher_metadata, o.dtype)
    check_shard_size(o.shard_size)
    if files.exists(files.join(path, MANIFEST_FILE)):
        raise StoreError(
            f"Store {path!r} is already finished (it has a {MANIFEST_FILE}); worker {worker_index} wrote nothing. "
            "A share is written only into an unfinished store: add teachers with add_teachers(path, teachers), "
            "or write the shares to a new path."
        )
    check_fresh(path, allowed=(EXAMPLES_DIR, TEACHERS_DIR, SHARES_DIR))
    config = {
        **manifest_head(split, o.include_images, o.shard_size),
        "num_workers": num_workers,
        "dtype": o.dtype,
        "teachers": list(teachers),
        "metadata": metadata,
    }
    config = json.loads(json.dumps(config))  # compared with configs read back from JSON
    for name, share in _read_shares(path).items():  # a share of another run: refuse before writing anything
        _check_agrees(path, share_file(worker_index, num_workers), config, name, share["config"])

    ids, labels, images = sorted_rows(split)
    bounds = shard_bounds(len(ids), o.shard_size)
    mine = [j for j in range(len(bounds)) if j % num_workers == worker_index]
    rows = np.concatenate([np.arange(*bounds[j]) for j in mine]) if mine else np.zeros(0, int)
    local, start = [], 0
    for j in mine:
        local.append((start, start + bounds[j][1] - bounds[j][0]))
        start = local[-1][1]
    numbering = (mine, len(bounds))
    ids, labels, images = ids[rows], labels[rows], images[rows]
    ranges = [{"index": j, "first_id": int(ids[a]), "last_id": int(ids[b - 1])} for j, (a, b) in zip(mine, local)]

    written = {}
    for name, model in teachers.items():
        logits = (
            teacher_logits(name, model, images, split.num_classes, o.batch_size, o.dtype, o.verbose)
            if mine
            else np.zeros((0, split.num_classes), np.float32)
        )
        folder = teacher_folder(name, share_token(split.fingerprint, name))
        entry = write_teacher_shards(path, folder, ids, logits, local, o.dtype, metadata.get(name, {}), numbering)
        entry["num_classes"] = split.num_classes
        entry["shards"] = [{**r, **s} for r, s in zip(ranges, entry["shards"])]
        written[name] = entry
    examples = write_example_shards(path, ids, labels, images if o.include_images else None, local, numbering)
    share = {
        "format": SHARE_FORMAT,
        "worker_index": worker_index,
        "num_workers": num_workers,
        "num_shards": len(bounds),
        "config": config,
        "examples": [{**r, **s} for r, s in zip(ranges, examples)],
        "teachers": written,
        "finished": now(),
    }
    files.makedirs(files.join(path, SHARES_DIR))
    files.write_json(files.join(path, share_file(worker_index, num_workers)), share)
    shares = _read_shares(path)
    if len(shares) == num_workers and all(s["num_workers"] == num_workers for s in shares.values()):
        return finalize_store(path)
    return None


def finalize_store(path):
    """Check the shares under `path` and write the manifest; returns the `TeacherStore`.

    Raises `StoreError` naming what is wrong: a missing share (and the worker to run), shares of
    different `num_workers` or settings, a shard in two shares (duplicated) or in none. Nothing is
    written unless all checks pass. A store that is already finished is just opened.
    """
    path = files.normalise(path)
    if files.exists(files.join(path, MANIFEST_FILE)):
        return TeacherStore.open(path, verify=False)
    shares = _read_shares(path)
    if not shares:
        raise StoreError(
            f"No shares under {path!r}/{SHARES_DIR}: run write_share(teachers, split, path, i, n) on each worker."
        )
    first_name, first = min(shares.items())
    for name, share in shares.items():
        _check_agrees(path, first_name, first["config"], name, share["config"])
    count = first["num_workers"]
    by_index = {share["worker_index"]: name for name, share in shares.items()}
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        names = [share_file(i, count) for i in missing]
        raise StoreError(
            f"Store {path!r} is not finished: share(s) {names} of {count} are missing. Run "
            f"write_share(..., worker_index=i, num_workers={count}) for i in {missing}; the manifest is written "
            "when every share exists."
        )
    config = first["config"]
    examples = _cover(path, shares, lambda share: share["examples"], config["num_examples"], "examples")
    teachers = {}
    for teacher in config["teachers"]:
        shards = _cover(
            path, shares, lambda share, name=teacher: share["teachers"][name]["shards"], None, f"teacher {teacher}"
        )
        entry = shares[first_name]["teachers"][teacher]
        teachers[teacher] = {**entry, "added": max(s["finished"] for s in shares.values()), "shards": shards}
    head = {key: value for key, value in config.items() if key not in ("num_workers", "dtype", "teachers", "metadata")}
    created = max(s["finished"] for s in shares.values())  # the same manifest from any finaliser
    write_manifest(path, finish_manifest(head, examples, teachers, created))
    return TeacherStore.open(path, verify=False)


def remove_stale_files(store):
    """Delete teacher folders the manifest does not list (left by an interrupted `add_teachers`)."""
    store = store if isinstance(store, TeacherStore) else TeacherStore.open(store, verify=False)
    listed = {folder for t in store.manifest["teachers"].values() for folder in _folders(t)}
    root = files.join(store.path, TEACHERS_DIR)
    for folder in files.listdir(root):
        if f"{TEACHERS_DIR}/{folder}" not in listed:
            files.rmtree(files.join(root, folder))


def _folders(teacher):
    return sorted({s["file"].rsplit("/", 1)[0] for s in teacher["shards"]})


# ================================================================ checks, before anything is written
def _store_path(split, path):
    """`path` normalised, once `split` is a non-empty `Split`."""
    if not isinstance(split, Split):
        raise StoreError(f"`split` must be a libkd_keras.data.Split; got {type(split).__name__}.")
    if not len(split):
        raise StoreError("The split is empty; there is nothing to store.")
    return files.normalise(path)


def check_teachers(teachers, teacher_metadata, dtype):
    """Validate the `{name: model}` dict, the optional metadata dict and the logits dtype; returns the metadata."""
    if not isinstance(teachers, dict) or not teachers:
        raise StoreError("`teachers` must be a non-empty dict {name: keras.Model}.")
    for name, model in teachers.items():
        if not isinstance(name, str) or not TEACHER_NAME.match(name):
            raise StoreError(
                f"Teacher name {name!r} is not allowed: use letters, digits, '_', '.', '+', '-' "
                "(no '/', ':' or '*'), starting with a letter or digit."
            )
        if not callable(getattr(model, "predict", None)):
            raise StoreError(f"Teacher {name!r} must be a keras.Model (with `predict`); got {type(model).__name__}.")
    metadata = teacher_metadata or {}
    unknown = sorted(set(metadata) - set(teachers))
    if unknown:
        raise StoreError(f"`teacher_metadata` names teachers that are not given: {unknown}.")
    try:
        json.dumps(metadata)
    except TypeError as error:
        raise StoreError(f"`teacher_metadata` must be JSON-serialisable ({error}).") from None
    if dtype not in LOGIT_DTYPES:
        raise StoreError(f"`dtype` must be one of {LOGIT_DTYPES}; got {dtype!r}.")
    return metadata


def check_shard_size(shard_size):
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise StoreError(f"`shard_size` must be a positive integer; got {shard_size!r}.")


def check_fresh(path, allowed=()):
    """A new store goes to a missing or empty folder (or one holding only `allowed` names)."""
    if files.exists(path) and (not files.isdir(path) or set(files.listdir(path)) - set(allowed)):
        raise StoreError(
            f"{path!r} exists and is not a teacher store; choose a new path or remove it (a damaged store "
            f"is rebuilt with {REBUILD_HINT})."
        )


def check_replaceable(path):
    """`rebuild_store` replaces a store, damaged or not, but never a folder holding other files."""
    if not files.exists(path):
        return
    if not files.isdir(path):
        raise StoreError(f"{path!r} is a file, not a teacher store; rebuild_store replaces only a store folder.")
    others = sorted(n for n in files.listdir(path) if n not in STORE_PARTS and not n.startswith(f".{MANIFEST_FILE}."))
    if others:
        raise StoreError(
            f"{path!r} holds {others[:5]}, which are not part of a teacher store; rebuild_store replaces only "
            "a store. Move those files away or choose another path."
        )


def _check_workers(worker_index, num_workers):
    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if not is_int(num_workers) or num_workers < 1:
        raise StoreError(f"`num_workers` must be a positive integer (the same on every worker); got {num_workers!r}.")
    if not is_int(worker_index) or not 0 <= worker_index < num_workers:
        raise StoreError(
            f"`worker_index` must be an integer in [0, {num_workers}) for num_workers={num_workers}; "
            f"got {worker_index!r}."
        )


@dataclasses.dataclass(frozen=True)
class StoredViews:
    """The flip-and-crop views a multi-view store holds: `write_store(..., views=StoredViews(16))`.

    Attributes:
        count: int or "all". Views per example ("all": every distinct flip and crop, 2 (2 padding + 1)^2).
        padding: int. The reflect padding before the crop (the student recipe's `crop_padding`).
        seed: int. Which views each example gets (drawn from the seed and the example's id).
    """

    count: typing.Union[int, str]
    padding: int = 4
    seed: int = 0


class ViewSpec(typing.NamedTuple):
    """The views a write is asked for, for one split: how they are made, how many per example, and their seed."""

    recipe: ViewRecipe
    count: int
    seed: int


def view_spec_for(split, views):
    """The `ViewSpec` of `views` (a `StoredViews`, its count alone, or None: clean images only) for `split`.

    A `StoreError` names a bad request.
    """
    if views is None:
        return None
    if not isinstance(views, StoredViews):
        views = StoredViews(views)
    recipe = ViewRecipe(padding=views.padding, image_shape=tuple(split.image_shape))
    return ViewSpec(recipe, recipe.count_for(views.count), views.seed)


def check_same_views(store, spec):
    """Adding teachers to a store keeps its views: refuse a different view request, naming both."""
    stored = store.manifest.get("views")
    mine = None if spec is None else {"count": spec.count, "padding": spec.recipe.padding, "seed": spec.seed}
    theirs = None if stored is None else {k: stored[k] for k in ("count", "padding", "seed")}
    if mine is not None and mine != theirs:
        raise StoreError(
            f"Store {store.path!r} holds views {theirs or 'none (clean images only)'}; asked for {mine}. Teachers "
            f"added to a store get its views; {REBUILD_HINT} changes them."
        )


# ============================================================================ running the teachers
def teacher_logits(name, model, images, num_classes, batch_size, dtype, verbose=0):
    """Run `model` once over `images` (uint8, store order) with `predict`; refuse non-finite logits.

    Returns float32 `(N, num_classes)` holding exactly the values that `dtype` can store.
    """
    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    ds = ds.map(lambda x: tf.cast(x, tf.float32), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    logits = model.predict(ds, verbose=verbose)  # Keras' compiled predict loop, training=False
    if isinstance(logits, (list, tuple, dict)):
        raise StoreError(
            f"Teacher {name!r} returned {type(logits).__name__}; a teacher must return logits (batch, classes)."
        )
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape != (len(images), num_classes):
        raise StoreError(
            f"Teacher {name!r} returned logits of shape {logits.shape}; expected ({len(images)}, {num_classes}) "
            "(one row per example, one column per class)."
        )
    _refuse_non_finite(name, logits, "")
    with np.errstate(over="ignore"):
        stored = logits.astype(dtype)
    _refuse_non_finite(name, stored, f" once stored as {dtype} (values beyond its range); use dtype='float32'")
    return stored.astype(np.float32)


def _refuse_non_finite(name, logits, how):
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        raise StoreError(
            f"Teacher {name!r} produced NaN or infinite logits{how} for {int(bad.sum())} of {len(logits)} "
            f"examples (first rows: {np.flatnonzero(bad)[:5].tolist()}). Nothing was stored for it; "
            "check the teacher's weights and inputs (raw pixels in [0, 255])."
        )


def teacher_view_logits(name, model, images, params, padding, num_classes, batch_size, dtype, verbose=0):
    """float32 `(N, V, C)`: the teacher once over each of the V stored views of every image."""
    per_view = []
    for view in range(params.shape[1]):
        pixels = view_images(images, params, view, padding)
        per_view.append(teacher_logits(name, model, pixels, num_classes, batch_size, dtype, verbose))
    return np.stack(per_view, axis=1)


# ======================================================================= shards and manifests
def sorted_rows(split):
    """`(ids, labels, images)` of `split` in ascending id order, the row order of every store."""
    order = np.argsort(split.ids, kind="stable")
    images = split.images if np.array_equal(order, np.arange(len(order))) else split.images[order]
    return split.ids[order], split.labels[order], images


def _write_new(path, teachers, split, metadata, dtype, include_images, batch_size, shard_size, verbose, views):
    """A whole new store at `path` (with the `ViewSpec` `views`, or None), manifest last.

    Locally it is written under a temporary name and swapped in when whole (`swap_in`); elsewhere in
    place. A failure removes what was written.
    """
    target = aside(path, INCOMPLETE) if files.is_local(path) else path
    ids, labels, images = sorted_rows(split)
    bounds = shard_bounds(len(ids), shard_size)
    files.makedirs(target)
    try:
        params = None if views is None else views.recipe.draw(ids, views.count, views.seed)
        entries = {}
        for name, model in teachers.items():
            logits = teacher_logits(name, model, images, split.num_classes, batch_size, dtype, verbose)
            folder = teacher_folder(name, new_token())
            entries[name] = write_teacher_shards(target, folder, ids, logits, bounds, dtype, metadata.get(name, {}))
            if views is not None:
                view_logits = teacher_view_logits(
                    name, model, images, params, views.recipe.padding, split.num_classes, batch_size, dtype, verbose
                )
                entries[name]["view_shards"] = write_teacher_views(target, folder, ids, view_logits, bounds, dtype)
        examples = write_example_shards(target, ids, labels, images if include_images else None, bounds)
        manifest = finish_manifest(manifest_head(split, include_images, shard_size), examples, entries)
        if views is not None:
            manifest["views"] = write_params(target, ids, params, bounds, views.recipe, views.seed)
        write_manifest(target, manifest)
    except BaseException:
        files.rmtree(target)
        raise
    if target != path:
        swap_in(target, path)
    return TeacherStore.open(path, verify=False)


def _write_shard(store_dir, relative, records):
    path = files.join(store_dir, relative)
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
            count += 1
    return {"file": relative, "num_examples": count, "num_bytes": files.size(path), "sha256": files.sha256(path)}


def _numbered(bounds, numbering):
    """`[(index, start, stop)]` and the shard count; `numbering=(indices, count)` renumbers local `bounds`.

    Shards are numbered in the whole store (`index` of `count`), so a worker that writes only some of
    them names them exactly as one process writing all would.
    """
    indices, count = numbering if numbering is not None else (range(len(bounds)), len(bounds))
    return [(index, start, stop) for index, (start, stop) in zip(indices, bounds)], count


def write_example_shards(store_dir, ids, labels, images, bounds, numbering=None):
    """Write `examples/` shards (PNG images when `images` is not None); returns the shard entries."""
    files.makedirs(files.join(store_dir, EXAMPLES_DIR))
    pngs = None
    if images is not None:
        encode = tf.data.Dataset.from_tensor_slices(images).map(
            tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        batches = encode.batch(ENCODE_BATCH).prefetch(tf.data.AUTOTUNE)  # batches: far less per-item overhead
        pngs = (png for batch in batches.as_numpy_iterator() for png in batch)
    shards, count = _numbered(bounds, numbering)
    entries = []
    for index, start, stop in shards:
        records = (
            example_record(ids[row], labels[row], None if pngs is None else next(pngs)) for row in range(start, stop)
        )
        entries.append(_write_shard(store_dir, shard_file(EXAMPLES_DIR, index, count, "examples"), records))
    return entries


def write_row_shards(store_dir, folder, prefix, ids, rows, bounds, dtype, numbering=None):
    """Write `(id, row as little-endian dtype bytes)` records as `<folder>/<prefix>-*` shards; returns their entries.

    The rows of teacher logits (`(N, C)`), of view logits (`(N, V, C)`, flattened) and of view parameters.
    """
    files.makedirs(files.join(store_dir, folder))
    shards, count = _numbered(bounds, numbering)
    entries = []
    for index, start, stop in shards:
        records = (logits_record(ids[row], np.ravel(rows[row]), dtype) for row in range(start, stop))
        entries.append(_write_shard(store_dir, shard_file(folder, index, count, prefix), records))
    return entries


def write_teacher_shards(store_dir, folder, ids, logits, bounds, dtype, metadata, numbering=None):
    """Write one teacher's shards into `folder` (`teacher_folder(...)`); returns its manifest entry."""
    entries = write_row_shards(store_dir, folder, "logits", ids, logits, bounds, dtype, numbering)
    return {
        "dtype": dtype,
        "num_classes": int(logits.shape[1]),
        "metadata": metadata,
        "added": now(),
        "shards": entries,
    }


def write_teacher_views(store_dir, folder, ids, logits, bounds, dtype):
    """One teacher's view logits `(N, V, C)` as `<folder>/views-*` shards; returns the entry's "view_shards"."""
    return write_row_shards(store_dir, folder, "views", ids, logits, bounds, dtype)


def write_params(store_dir, ids, params, bounds, recipe, seed):
    """Write the views' parameters (uint8 `(N, V, 3)`); returns the manifest's "views" entry."""
    shards = write_row_shards(store_dir, VIEWS_DIR, "params", ids, params, bounds, "uint8")
    return {
        "count": int(params.shape[1]),
        "padding": recipe.padding,
        "image_shape": list(recipe.image_shape),
        "seed": int(seed),
        "shards": shards,
    }


def write_manifest(store_dir, manifest):
    """Write `manifest.json` whole-or-nothing (a temporary, then a rename; atomic on local POSIX paths)."""
    files.write_json(files.join(store_dir, MANIFEST_FILE), manifest)


# ==================================================================== replacing a local store
def swap_in(tmp, path):
    """Rename the whole new store `tmp` to `path`, moving an old store aside first and deleting it last."""
    replaced = None
    if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
        os.rmdir(path)  # an empty folder given as the destination
    elif os.path.lexists(path):
        replaced = aside(os.path.normpath(path), REPLACED)
        os.rename(path, replaced)
    try:
        os.rename(tmp, path)
    except BaseException:
        if replaced is not None:
            os.rename(replaced, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)


def finish_interrupted_replace(path):
    """Finish a local `rebuild_store` that a kill interrupted between its renames; nothing when none was.

    With `<path>` missing, the whole new store (`<path>.incomplete-*` holding a manifest) is moved
    in, or else the old one (`<path>.replaced-*`) back; then the old ones are deleted. Every write
    function calls it first.
    """
    if not files.is_local(path):
        return  # no renames are used there
    base = os.path.normpath(path)
    parent, name = os.path.split(base)
    parent = parent or os.curdir
    siblings = os.listdir(parent) if os.path.isdir(parent) else []
    replaced = [os.path.join(parent, n) for n in siblings if n.startswith(f"{name}.{REPLACED}-")]
    if not replaced:
        return
    if not os.path.lexists(base):
        whole = [
            os.path.join(parent, n)
            for n in siblings
            if n.startswith(f"{name}.{INCOMPLETE}-") and os.path.isfile(os.path.join(parent, n, MANIFEST_FILE))
        ]
        newest = max(whole or replaced, key=os.path.getmtime)
        os.rename(newest, base)
    for folder in replaced:
        shutil.rmtree(folder, ignore_errors=True)


def delete_store(path):
    """The gfile form of replacing: the manifest first (the store stops opening), then the rest."""
    manifest = files.join(path, MANIFEST_FILE)
    if files.exists(manifest):
        files.rmtree(manifest)
    for name in files.listdir(path):
        files.rmtree(files.join(path, name))


# ======================================================================================= shares
def _read_shares(path):
    """`{file: share}` of every share file under `path`; an unreadable one is an error naming it."""
    shares = {}
    for name in files.listdir(files.join(path, SHARES_DIR)):
        if not SHARE_NAME.match(name):
            continue
        relative = f"{SHARES_DIR}/{name}"
        try:
            share = files.read_json(files.join(path, relative))
        except Exception as error:  # noqa: BLE001 (any read or parse failure means the same)
            raise StoreError(
                f"Share {relative!r} of {path!r} cannot be read ({error}); run its worker again."
            ) from None
        if not isinstance(share, dict) or share.get("format") != SHARE_FORMAT:
            raise StoreError(f"{relative!r} in {path!r} is not a share file; run its worker again.")
        shares[relative] = share
    return shares


def _check_agrees(path, mine, config, other, theirs):
    if theirs.get("num_workers") != config["num_workers"]:
        raise StoreError(
            f"Inconsistent num_workers in {path!r}: {mine!r} is for {config['num_workers']} workers but {other!r} "
            f"is for {theirs.get('num_workers')}. Every worker must pass the same num_workers; delete the shares "
            "of the wrong run (or the whole unfinished folder) and run the workers again."
        )
    differs = [key for key in config if key != "teachers" and config[key] != theirs.get(key)]
    if sorted(config["teachers"]) != sorted(theirs.get("teachers", [])):
        differs.insert(0, "teachers")
    if differs:
        raise StoreError(
            f"Share {other!r} of {path!r} was written with other settings than {mine!r} (differs in {differs}). "
            "Every worker must use the same teachers, split and options."
        )


def _cover(path, shares, shards_of, num_examples, what):
    """The shard entries of all shares in store order; each shard index exactly once, ids ascending."""
    owner, entries = {}, {}
    for name, share in sorted(shares.items()):
        for shard in shards_of(share):
            if shard["index"] in owner:
                raise StoreError(
                    f"Shard {shard['index']} ({what}) of {path!r} is in two shares, {owner[shard['index']]!r} and "
                    f"{name!r} (duplicated): its examples would be stored twice. Delete the wrong share and run its "
                    "worker again."
                )
            owner[shard["index"]], entries[shard["index"]] = name, shard
    num_shards = next(iter(shares.values()))["num_shards"]
    absent = sorted(set(range(num_shards)) - set(entries))
    if absent:
        raise StoreError(f"Shard(s) {absent[:5]} ({what}) of {path!r} are in no share; run the workers again.")
    ordered = [entries[j] for j in range(num_shards)]
    last = None
    for shard in ordered:
        if shard["num_examples"] and last is not None and shard["first_id"] <= last:
            raise StoreError(f"Shard {shard['index']} ({what}) of {path!r} repeats ids of an earlier shard.")
        last = shard["last_id"] if shard["num_examples"] else last
        file = files.join(path, shard["file"])
        if not files.exists(file) or files.size(file) != shard["num_bytes"]:
            raise StoreError(
                f"Shard {shard['file']!r} ({what}) of {path!r}, written by {owner[shard['index']]!r}, is missing or "
                "altered; run that worker again."
            )
    total = sum(s["num_examples"] for s in ordered)
    if num_examples is not None and total != num_examples:
        raise StoreError(f"The shares of {path!r} hold {total} examples; the split has {num_examples}.")
    keep = ("file", "num_examples", "num_bytes", "sha256")
    return [{key: shard[key] for key in keep} for shard in ordered]
