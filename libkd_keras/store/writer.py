"""The store's one writer: `precompute` a store, `add_teachers` to it, rebuild it (`force=True`).

`TeacherStore` (reader.py) only reads; the layout is `format.py`'s. No write leaves a half store
under a name that opens: a new store is written under `<path>.incomplete-<token>` and renamed to
`path` once whole; `force=True` then moves the old one to `<path>.replaced-<token>`, renames the new
one in and deletes the old (a kill between the two renames is finished by the next write to `path`,
so nothing is lost at any instant); added teachers get new folders that join the store only when
the new manifest is renamed into place.

On other `tf.io.gfile` filesystems (`gs://`, `ram://`: renames may be copies) a new store is written
in place, manifest last, so a folder that opens is always whole; `force=True` there first deletes
the old manifest (the old store stops opening), then its files, then writes the new store.
Several workers write one store with `precompute(..., worker_index=i, num_workers=n)` (`shares.py`).
"""

import json
import uuid

from libkd_keras.data import Split
from libkd_keras.store import files, rebuild
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import DEFAULT_SHARD_SIZE, MANIFEST_FILE, TEACHERS_DIR, shard_bounds
from libkd_keras.store.inference import check_teachers, teacher_logits
from libkd_keras.store.reader import TeacherStore
from libkd_keras.store.shard_io import (
    finish_manifest,
    manifest_head,
    now,
    sorted_rows,
    teacher_folder,
    write_example_shards,
    write_manifest,
    write_teacher_shards,
)
from libkd_keras.store.views import (
    check_same_views,
    read_params,
    recipe_of,
    teacher_view_logits,
    view_spec_for,
    write_params,
    write_teacher_views,
)


def precompute(
    teachers,
    split,
    path,
    *,
    dtype="float16",
    include_images=True,
    batch_size=256,
    shard_size=DEFAULT_SHARD_SIZE,
    teacher_metadata=None,
    overwrite=False,
    force=False,
    verbose=0,
    worker_index=None,
    num_workers=None,
    views=None,
    view_padding=4,
    view_seed=0,
):
    """Run each teacher once (`predict`, `training=False`) over `split`; store logits, labels, ids (+ images).

    Args:
        teachers: dict. `{name: keras.Model}`; each maps raw pixels in [0, 255] to logits `(B, C)`.
        split: Split. The data to label (its fingerprint goes into the manifest).
        path: str or path. The store folder, on any `tf.io.gfile` filesystem (local, `gs://`, ...). If it
            already holds a store of the same split, only the teachers not in it are run and added
            (`add_teachers`); a stored name is an error unless `overwrite=True`.
        dtype: str. `"float16"` (default, half the size) or `"float32"` for the stored logits.
        include_images: bool. Store PNG images so the store alone can feed training.
        batch_size: int. Images per teacher forward pass.
        shard_size: int. Examples per TFRecord shard.
        teacher_metadata: dict or None. `{name: dict}` (e.g. `train_teacher`'s metadata) kept in the manifest.
        overwrite: bool. Replace stored teachers of the same names (others are kept).
        force: bool. Rebuild the store from scratch with exactly `teachers`, whatever is at `path` (a
            damaged store, one of another split): the repair path. Locally the old store is replaced
            only once the new one is whole; on other filesystems it is deleted first (see above). A
            folder holding anything but store files is refused.
        verbose: int or str. `predict`'s progress bar for each teacher's pass (0: none, "auto"/1: a progbar).
        worker_index: int or None. With `num_workers`: write only this worker's share of the shards
            (shard `j` of the id-ordered store belongs to worker `j % num_workers`) into `path`. The
            worker that finds every share written writes the manifest (`shares.finalize_store`).
        num_workers: int or None. How many workers share the precompute (the same on every worker).
        views: int, "all" or None. Also store each teacher's logits on this many flip-and-crop views of
            every image (`views.py`; "all": every distinct one), for `dataset(..., views=True)`.
        view_padding: int. The views' reflect padding before the crop (the student recipe's `crop_padding`).
        view_seed: int. Which views each example gets (drawn from the seed and the example's id).

    Returns the `TeacherStore`; a worker whose share did not complete the store returns None.

    Example:
    >>> store = precompute({"resnet26_seed0": resnet, "rednet26_seed0": rednet}, train, "runs/store")
    >>> store.logits().shape
    (50000, 2, 10)
    >>> store = precompute(teachers, train, "runs/store", force=True)   # a damaged store, rebuilt
    >>> precompute(teachers, train, "gs://bucket/store", worker_index=0, num_workers=4)  # on each of 4 hosts
    >>> store = precompute(teachers, train, "runs/store", views=16)   # + logits on 16 views per image
    """
    if not isinstance(split, Split):
        raise StoreError(f"`split` must be a libkd_keras.data.Split; got {type(split).__name__}.")
    if not len(split):
        raise StoreError("The split is empty; there is nothing to precompute.")
    path = files.normalise(path)
    if worker_index is not None or num_workers is not None:
        from libkd_keras.store import shares

        if views is not None:
            raise StoreError(
                "views cannot be combined with worker_index/num_workers yet: precompute a multi-view store with "
                "one process."
            )
        if force:
            raise StoreError(
                "force=True cannot be combined with worker_index/num_workers: rebuild a damaged store with one "
                "process, or delete it and run the workers again."
            )
        return shares.write_share(
            teachers,
            split,
            path,
            worker_index,
            num_workers,
            dtype=dtype,
            include_images=include_images,
            batch_size=batch_size,
            shard_size=shard_size,
            teacher_metadata=teacher_metadata,
            verbose=verbose,
        )
    view_spec = view_spec_for(split, views, view_padding, view_seed)
    rebuild.finish_interrupted_replace(path)
    if not force and files.isfile(files.join(path, MANIFEST_FILE)):
        store = TeacherStore.open(path, expect=split)
        check_same_views(store, view_spec)
        return add_teachers(
            store,
            teachers,
            split,
            dtype=dtype,
            batch_size=batch_size,
            teacher_metadata=teacher_metadata,
            overwrite=overwrite,
            verbose=verbose,
        )
    metadata = check_teachers(teachers, teacher_metadata, dtype)
    check_shard_size(shard_size)
    if force:
        rebuild.check_replaceable(path)
    else:
        check_fresh(path)
    if not files.is_local(path):
        if force:
            rebuild.delete_store(path)
        _write_store(path, teachers, split, metadata, dtype, include_images, batch_size, shard_size, verbose, view_spec)
        return TeacherStore.open(path, verify=False)
    tmp = f"{path}.incomplete-{uuid.uuid4().hex[:8]}"
    _write_store(tmp, teachers, split, metadata, dtype, include_images, batch_size, shard_size, verbose, view_spec)
    rebuild.swap_in(tmp, path)
    return TeacherStore.open(path, verify=False)


def check_shard_size(shard_size):
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise StoreError(f"`shard_size` must be a positive integer; got {shard_size!r}.")


def check_fresh(path, allowed=()):
    """A new store goes to a missing or empty folder (or one holding only `allowed` names)."""
    if files.exists(path) and (not files.isdir(path) or set(files.listdir(path)) - set(allowed)):
        raise StoreError(
            f"{path!r} exists and is not a teacher store; choose a new path or remove it (a damaged store "
            "is rebuilt with precompute(..., force=True))."
        )


def _write_store(target, teachers, split, metadata, dtype, include_images, batch_size, shard_size, verbose, views):
    """A whole new store in `target` (with the `ViewSpec` `views`, or None), manifest last; removed again on failure."""
    ids, labels, images = sorted_rows(split)
    bounds = shard_bounds(len(ids), shard_size)
    files.makedirs(target)
    try:
        params = None if views is None else views.recipe.draw(ids, views.count, views.seed)
        entries = {}
        for name, model in teachers.items():
            logits = teacher_logits(name, model, images, split.num_classes, batch_size, dtype, verbose)
            folder = teacher_folder(name, uuid.uuid4().hex[:8])
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


def add_teachers(
    store, teachers, split=None, *, dtype="float16", batch_size=256, teacher_metadata=None, overwrite=False, verbose=0
):
    """Run only the given teachers over the stored data and add their logits; other teachers are untouched.

    Args:
        store: TeacherStore or path. The store to add to (a path is opened and verified).
        teachers: dict. `{name: keras.Model}`, as for `precompute`.
        split: Split or None. Where the images come from (checked against the store); default the store's own.
        dtype, batch_size, teacher_metadata, verbose: as for `precompute`.
        overwrite: bool. Replace teachers of the same names; without it a stored name is an error.

    Returns the updated store, a new `TeacherStore` (the one given still describes the old manifest).
    The new manifest is switched in whole-or-nothing: an interruption leaves the store as it was.

    Example:
    >>> store = add_teachers(TeacherStore.open("runs/store"), {"rednet26_seed1": rednet})
    """
    store = store if isinstance(store, TeacherStore) else TeacherStore.open(store)
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
    params = None if view_recipe is None else read_params(store)
    written = []
    try:
        for name, model in teachers.items():
            logits = teacher_logits(name, model, images, store.num_classes, batch_size, dtype, verbose)
            folder = teacher_folder(name, uuid.uuid4().hex[:8])
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


def _folders(teacher):
    return sorted({s["file"].rsplit("/", 1)[0] for s in teacher["shards"]})


def remove_stale_files(store):
    """Delete teacher folders the manifest does not list (left by an interrupted `add_teachers`)."""
    store = store if isinstance(store, TeacherStore) else TeacherStore.open(store, verify=False)
    listed = {folder for t in store.manifest["teachers"].values() for folder in _folders(t)}
    root = files.join(store.path, TEACHERS_DIR)
    for folder in files.listdir(root):
        if f"{TEACHERS_DIR}/{folder}" not in listed:
            files.rmtree(files.join(root, folder))
