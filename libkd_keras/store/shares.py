"""Sharded precompute: `n` workers each write a disjoint share of one store's shards; the manifest comes last.

Shard `j` of the id-ordered store (`shard_bounds`) belongs to worker `j % n`, so the shares follow
from the example ids alone and every worker names its files exactly as one process would. A worker
writes its shards into the store folder, then `shares/share-<i>-of-<n>.json` (what it wrote, with
sizes, sha256 and id ranges); the worker that then finds all `n` shares calls `finalize_store`,
which checks that they agree and cover every id exactly once and writes `manifest.json`. Until then
the folder never opens as a store. Two workers finalising at once write the same manifest.
"""

import hashlib
import json
import re

import numpy as np

from libkd_keras.store import files
from libkd_keras.store.errors import StoreError
from libkd_keras.store.format import MANIFEST_FILE, SHARES_DIR, shard_bounds
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

SHARE_FORMAT = "libkd_keras.teacher_store_share"
SHARE_NAME = re.compile(r"^share-(\d{5})-of-(\d{5})\.json$")


def share_file(index, count):
    return f"{SHARES_DIR}/share-{index:05d}-of-{count:05d}.json"


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


def _token(fingerprint, name):
    """The teacher folder's token: the same on every worker, so all shards of a teacher share one folder."""
    return hashlib.sha256(f"{fingerprint}:{name}".encode()).hexdigest()[:8]


def write_share(
    teachers,
    split,
    path,
    worker_index,
    num_workers,
    *,
    dtype,
    include_images,
    batch_size,
    shard_size,
    teacher_metadata,
    verbose,
):
    """Worker `worker_index`'s part of `precompute(..., worker_index=, num_workers=)` (see there)."""
    from libkd_keras.store.writer import check_fresh, check_shard_size

    _check_workers(worker_index, num_workers)
    metadata = check_teachers(teachers, teacher_metadata, dtype)
    check_shard_size(shard_size)
    if files.exists(files.join(path, MANIFEST_FILE)):
        raise StoreError(
            f"Store {path!r} is already finished (it has a {MANIFEST_FILE}); worker {worker_index} wrote nothing. "
            "Sharded precompute writes only into an unfinished store: add teachers with `precompute(...)` "
            "without worker_index, or write the shares to a new path."
        )
    check_fresh(path, allowed=("examples", "teachers", SHARES_DIR))
    config = {
        **manifest_head(split, include_images, shard_size),
        "num_workers": num_workers,
        "dtype": dtype,
        "teachers": list(teachers),
        "metadata": metadata,
    }
    config = json.loads(json.dumps(config))  # compared with configs read back from JSON
    for name, share in _read_shares(path).items():  # a share of another run: refuse before writing anything
        _check_agrees(path, share_file(worker_index, num_workers), config, name, share["config"])

    ids, labels, images = sorted_rows(split)
    bounds = shard_bounds(len(ids), shard_size)
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
            teacher_logits(name, model, images, split.num_classes, batch_size, dtype, verbose)
            if mine
            else np.zeros((0, split.num_classes), np.float32)
        )
        entry = write_teacher_shards(
            path,
            teacher_folder(name, _token(split.fingerprint, name)),
            ids,
            logits,
            local,
            dtype,
            metadata.get(name, {}),
            numbering,
        )
        entry["num_classes"] = split.num_classes
        entry["shards"] = [{**r, **s} for r, s in zip(ranges, entry["shards"])]
        written[name] = entry
    examples = write_example_shards(path, ids, labels, images if include_images else None, local, numbering)
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
        raise StoreError(f"No shares under {path!r}/{SHARES_DIR}: run precompute(..., worker_index=i, num_workers=n).")
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
            f"precompute(..., worker_index=i, num_workers={count}) for i in {missing}; the manifest is written "
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
