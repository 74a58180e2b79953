"""A run folder: claimed for one configuration and one process, with one marker per finished step.

`RunFolder.open(path, config, overwrite)` creates the folder or reopens it for the same run.
A folder holding a different run's `config.toml` is refused (the message lists what differs)
unless `overwrite=True` (the CLI's `--overwrite`). That moves the old run aside, into the sibling
folder `<name>.replaced-<date>-<time>` (`folder.replaced`; `replaced.json` in the run folder
records it), and deletes it only once the new run finishes its first step (`finish` returns
what it deleted), so a new run that fails early leaves the old one whole to rename back. A run
that holds nothing but its config (e.g. it stopped at a data error) is simply replaced. A
non-empty folder that is not a run folder is never touched. `folder_problem` says, without
writing anything, why `open` would refuse.

One process at a time: `open` takes the lock file `.libkd.lock` (owner pid, host, process start
time) and `close()` (or leaving a `with` block, or the process's exit) releases it. A second
process is refused with a message naming the owner; a lock whose process is gone is taken over by
renaming a new lock file over it, by one process only even when several find it at once (`_take_lock`).
Temporaries an interrupted writer left behind are deleted on open.

A step is finished when its marker `steps/<step>.json` exists, every output it lists still exists,
and its model files (`.keras`, `.tflite`) still have the size and sha256 the marker recorded;
markers are written last, atomically, so an interrupted step, or one whose model file was damaged
since, is simply run again.

Example:
>>> with RunFolder.open("saved_models/quick", config) as folder:
...     if not folder.done("teacher/resnet26_s0"):
...         folder.finish("teacher/resnet26_s0", seconds=73.1, outputs=["teachers/resnet26_s0.keras"])
"""

import atexit
import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on this platform: the stale-lock takeover is then not serialised
    fcntl = None

from libkd_keras.atomic_files import (
    file_digest,
    is_temporary,
    read_json,
    remove_stale_temporaries,
    temporary_sibling,
    write_json_atomic,
    write_text_atomic,
)
from libkd_keras.data.names import missing_path
from libkd_keras.pipeline.config_text import config_differences, parse_config_text, to_toml
from libkd_keras.pipeline.schema import ConfigError
from libkd_keras.pipeline.settings import teacher_specs
from libkd_keras.run_layout import RunLayout

RUN_ENTRIES = {
    "config.toml",
    "steps",
    "teachers",
    "store",
    "students",
    "exports",
    "checkpoints",
    "logs",
    "plots",
    "report.md",
    "ablation",
    "cka",
}
LOCK_NAME = ".libkd.lock"
REPLACED_NAME = "replaced.json"  # the runs --overwrite moved aside; deleted with them after the first step

# The outputs whose size and sha256 a marker records: the model files later steps load (records such
# as students/<name>.json are rewritten by later steps, and a store checks its own shards).
CHECKED_FILES = (".keras", ".tflite")
_DIGESTS = {}  # (path, size, mtime) -> sha256: each model file is hashed once per process
_HELD = {}  # lock path -> how many open RunFolders of this process hold it


def differences_text(differences, most=8):
    """The first `most` config differences, joined for a one-paragraph error."""
    return "; ".join(differences[:most]) + ("; ..." if len(differences) > most else "")


class RunFolderLocked(ConfigError):
    """Another live process works in the run folder (the message names it)."""


class RunFolder(RunLayout):
    """The run folder of one configuration; see the module docstring."""

    def __init__(self, root, config):
        super().__init__(root)
        self.run_config = config
        self.replaced = None  # where `open` moved the run this one replaced (None: nothing moved)
        self._locked = False

    @classmethod
    def open(cls, root, config, overwrite=False):
        root = Path(root)
        problem = folder_problem(root, config, overwrite)
        if problem:
            raise ConfigError(problem)
        folder = cls(root, config)
        folder.root.mkdir(parents=True, exist_ok=True)
        folder.acquire()
        try:
            _undo_interrupted_moves(root)
            problem = folder_problem(root, config, overwrite)  # again, under the lock
            if problem:
                raise ConfigError(problem)
            stored = load_run_config(root)
            if stored is not None and config_differences(stored, config):
                folder.replaced = _replace_run(root)
            remove_stale_temporaries(root)
            if load_run_config(root) is None:
                write_text_atomic(folder.config, to_toml(config))
        except BaseException:
            folder.close()
            raise
        return folder

    # -------------------------------------------------------------------------------- the lock

    def acquire(self):
        """Takes the folder's lock for this process (again, if it holds it already)."""
        key = str(self.lock.resolve())
        if _HELD.get(key):
            _HELD[key] += 1
        else:
            _take_lock(self.lock)
            _HELD[key] = 1
        self._locked = True

    def close(self):
        """Releases this folder's hold on the lock (the file goes when the last hold goes)."""
        if not self._locked:
            return
        self._locked = False
        key = str(self.lock.resolve())
        _HELD[key] = _HELD.get(key, 1) - 1
        if _HELD[key] <= 0:
            _HELD.pop(key, None)
            _release_lock(self.lock)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------ the markers

    def done(self, step):
        """Whether `step` finished and its outputs are all still there, its model files as they were written."""
        marker = read_json(self.marker(step))
        if marker is None:
            return False
        return all((self.root / output).exists() for output in marker.get("outputs", [])) and not self.damaged(step)

    def damaged(self, step):
        """What is wrong with the model files a finished `step` wrote: one line each, [] when they are whole.

        `finish` records each `.keras` / `.tflite` output's size and sha256 (a file is hashed once
        per process, `_digest`); a file cut short or altered since no longer matches, and the step
        counts as not finished, so the command that makes it makes it again.
        """
        marker = read_json(self.marker(step)) or {}
        problems = []
        for output, recorded in (marker.get("files") or {}).items():
            path = self.root / output
            if not path.is_file():
                problems.append(f"{output} is missing")
                continue
            size, sha256 = _digest(path)
            if size != recorded["bytes"]:
                problems.append(f"{output} is damaged: {size:,} bytes, {recorded['bytes']:,} when it was written")
            elif sha256 != recorded["sha256"]:
                problems.append(f"{output} is damaged: its sha256 differs from the one recorded when it was written")
        return problems

    def damaged_steps(self):
        """`{step: problems}` of every finished step whose model files are damaged (see `damaged`)."""
        found = {}
        for path in sorted(self.steps.glob("*.json")) if self.steps.is_dir() else []:
            try:
                step = (read_json(path) or {}).get("step")
            except (ValueError, AttributeError):  # not a marker (markers are written whole)
                continue
            problems = self.damaged(step) if step else []
            if problems:
                found[step] = problems
        return found

    def finished(self, step):
        """The marker of a finished step (None if it has not finished)."""
        return read_json(self.marker(step)) if self.done(step) else None

    def finish(self, step, seconds, outputs=(), summary=None):
        """Records `step` as finished (call after its outputs are in place).

        Returns `[(folder, kept), ...]`: the runs `--overwrite` moved aside that are now deleted
        (`kept`: the folder itself stays because it also holds files libkd did not write).
        """
        missing = [o for o in outputs if not (self.root / o).exists()]
        if missing:
            raise RuntimeError(f"Step {step!r} claims outputs that do not exist: {missing}.")
        checked = [str(o) for o in outputs if str(o).endswith(CHECKED_FILES) and (self.root / o).is_file()]
        files = {}
        for output in checked:
            size, sha256 = _digest(self.root / output)
            files[output] = {"bytes": size, "sha256": sha256}
        write_json_atomic(
            self.marker(step),
            {
                "step": step,
                "seconds": round(float(seconds), 2),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "outputs": [str(o) for o in outputs],
                "files": files,
                "summary": summary or {},
            },
        )
        return _remove_replaced(self.root)

    def forget(self, step):
        """Removes a step's marker so it runs again."""
        self.marker(step).unlink(missing_ok=True)

    def relative(self, path):
        return str(Path(path).relative_to(self.root))


def _digest(path):
    """`(size, sha256)` of `path`, hashed once per process for each size and modification time."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)[1]
    return stat.st_size, _DIGESTS[key]


def load_run_config(root):
    """The resolved config stored in a run folder, or None when it holds none."""
    path = Path(root) / "config.toml"
    if not path.is_file():
        return None
    return parse_config_text(path.read_text(encoding="utf-8"), f"{str(path)!r}")


def aside_name(root, stamp="<date>-<time>"):
    """The sibling folder `--overwrite` moves the run in `root` to."""
    return f"{Path(root).name}.replaced-{stamp}"


def folder_problem(root, config, overwrite=False):
    """Why `RunFolder.open(root, config, overwrite)` would refuse `root`, or None. Writes nothing."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        return f"Output path {str(root)!r} is a file; pass a folder to --out."
    if not root.exists():
        return None
    stored = load_run_config(root)
    if stored is None and (root / REPLACED_NAME).exists():
        return None  # a run folder whose run is being moved aside (`open` finishes or undoes that first)
    if stored is None:
        entries = sorted(
            p.name for p in root.iterdir() if p.name not in (LOCK_NAME, REPLACED_NAME) and not is_temporary(p.name)
        )
        if entries:
            return (
                f"Output folder {str(root)!r} is not empty and is not a libkd run folder (it has no "
                f"config.toml and holds {', '.join(entries[:5])}); pass an empty or new folder to --out."
            )
        return None
    differences = config_differences(stored, config)
    if differences and not overwrite and _holds_work(root):
        return (
            f"Output folder {str(root)!r} holds a different run (its config.toml differs: "
            f"{differences_text(differences)}). Choose another folder with --out or --name, rerun with the same "
            f"settings to resume it, or pass --overwrite to start again there: the old run is then moved aside to "
            f"{aside_name(root)!r} beside it and deleted once the new run finishes its first step."
        )
    return None


def check_before_start(config, root, overwrite=False):
    """Every check of a run that needs neither TensorFlow nor the images, before anything is written.

    The data source path, `teachers.reuse_from` (when a teacher is still to be copied) and the
    output folder; one `ConfigError` names every problem found, the missing data path first.
    """
    root = Path(root)
    problems = [missing_path(config["data"]["dataset"])]
    source = config["teachers"]["reuse_from"]
    if source and teachers_to_copy(root, config):
        problems.append(reuse_problem(source, config, root))
    try:
        problems.append(folder_problem(root, config, overwrite))
    except ConfigError as error:  # an unreadable config.toml
        problems.append(str(error))
    problems = [p for p in problems if p]
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems: " + " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)))


def teachers_to_copy(root, config):
    """The teachers of `config` not finished in `root` (all of them where `root` holds another run)."""
    root = Path(root)
    stored = load_run_config(root) if root.is_dir() else None
    names = [name for name, _, _ in teacher_specs(config)]
    if stored is None or config_differences(stored, config):
        return names
    folder = RunFolder(root, config)
    return [name for name in names if not folder.done(f"teacher/{name}")]


def teacher_settings(config):
    """What decides a teacher's weights besides its data: [teachers] and run.seed (compared by
    `config_differences`, which leaves out `teachers.reuse_from` itself; the user's own
    `teachers.models` are not trained, so they do not count)."""
    teachers = {k: v for k, v in config["teachers"].items() if k != "models"}
    return {"teachers": teachers, "run": {"seed": config["run"]["seed"]}}


def reuse_problem(source, config, root=None):
    """Why run folder `source` cannot give the run of `config` (in `root`) its teachers, or None.

    What can be told from the configs alone: `source` is another libkd run folder whose teachers
    were trained with the same [teachers] settings and run.seed. Their images and precision are
    checked when a teacher is copied (`pipeline.teachers.reuse_teacher`).
    """
    fix = 'use the same settings and data as that run, or set teachers.reuse_from = "" to train here'
    if root is not None and Path(source).resolve() == Path(root).resolve():
        return (
            f"teachers.reuse_from = {source!r} is this run's own folder (--out); pass the folder of another "
            'run, or set teachers.reuse_from = "" (omit --teachers-from) to train the teachers here.'
        )
    try:
        other = load_run_config(source)
    except ConfigError as error:
        return f"teachers.reuse_from = {source!r}: {error}"
    if other is None:
        return f"teachers.reuse_from = {source!r} is not a libkd run folder (no config.toml)."
    differences = config_differences(teacher_settings(other), teacher_settings(config))
    if differences:
        return (
            f"teachers.reuse_from = {source!r} trained its teachers with other settings "
            f"({differences_text(differences)}); {fix}."
        )
    return None


def _holds_work(root):
    """Whether a run folder holds anything beyond its config: finished steps, checkpoints, logs."""
    return any(p.is_file() and p.name not in ("config.toml", LOCK_NAME, REPLACED_NAME) for p in Path(root).rglob("*"))


def _delete_run(root):
    """Deletes a run folder's entries (only the ones libkd writes)."""
    for entry in Path(root).iterdir():
        if entry.name in RUN_ENTRIES:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


# ------------------------------------------------------------------- runs replaced by --overwrite


def _replaced(root):
    """The records of the runs moved aside from `root`: `[{"path": folder, "state": "moving"|"moved"}]`."""
    return list((read_json(Path(root) / REPLACED_NAME) or {}).get("replaced", []))


def _write_replaced(root, records):
    if records:
        write_json_atomic(Path(root) / REPLACED_NAME, {"replaced": records})
    else:
        (Path(root) / REPLACED_NAME).unlink(missing_ok=True)


def _replace_run(root):
    """Makes room in `root` for another run (the caller holds the lock); returns where the old run went.

    A run that holds work moves aside into a new sibling folder: the record first, then every entry
    libkd writes, `config.toml` last; a kill part-way is undone by the next `open`
    (`_undo_interrupted_moves`). A run holding only its config is deleted (None).
    """
    if not _holds_work(root):
        _delete_run(root)
        return None
    real = Path(root).resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = real.parent / aside_name(real, stamp), 1
    while aside.exists():
        n += 1
        aside = real.parent / aside_name(real, f"{stamp}-{n}")
    aside.mkdir()
    records = [*_replaced(root), {"path": str(aside), "state": "moving"}]
    _write_replaced(root, records)
    _move_run(root, aside)
    records[-1]["state"] = "moved"
    _write_replaced(root, records)
    return aside


def _move_run(root, aside):
    """Renames the entries libkd writes from `root` into `aside`, `config.toml` last."""
    entries = sorted((p for p in Path(root).iterdir() if p.name in RUN_ENTRIES), key=lambda p: p.name == "config.toml")
    for entry in entries:
        entry.rename(aside / entry.name)


def _undo_interrupted_moves(root):
    """Moves back a run whose move aside a kill cut short, so `open` starts from the state before it."""
    records = _replaced(root)
    if not any(r.get("state") == "moving" for r in records):
        return
    for record in records:
        aside = Path(record["path"])
        if record.get("state") == "moving" and aside.is_dir():
            for entry in aside.iterdir():
                if entry.name in RUN_ENTRIES and not (Path(root) / entry.name).exists():
                    entry.rename(Path(root) / entry.name)
            with contextlib.suppress(OSError):
                aside.rmdir()
    _write_replaced(root, [r for r in records if r.get("state") != "moving"])


def _remove_replaced(root):
    """Deletes the runs moved aside from `root` (its new run finished a step); returns `[(folder, kept)]`."""
    records = _replaced(root)
    if not records:
        return []
    removed = []
    for record in records:
        if record.get("state") != "moved":
            continue
        aside = Path(record["path"])
        if aside.is_dir():
            removed.append((aside, _delete_aside(aside)))
    (Path(root) / REPLACED_NAME).unlink(missing_ok=True)
    return removed


def _delete_aside(aside):
    """Deletes what libkd wrote in `aside`, `config.toml` last, then the folder; True if other files keep it."""
    entries = sorted(aside.iterdir(), key=lambda p: p.name == "config.toml")
    for entry in entries:
        if entry.name in RUN_ENTRIES or entry.name == LOCK_NAME or is_temporary(entry.name):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    try:
        aside.rmdir()
    except OSError:
        return True
    return False


# ------------------------------------------------------------------------------------ lock files


def _process_start(pid):
    """The start time of process `pid` in clock ticks (Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(owner):
    """Whether the lock's owner (on this host) still runs: its pid exists with the same start time."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    start = _process_start(pid)
    return owner.get("start") is None or start is None or start == owner["start"]


def lock_owner(path):
    """The owner of the lock file `path` while it holds the lock; None when the file is absent or stale.

    Stale: unreadable or half-written (a process killed while writing it), or its process, on this
    host, is gone. An owner on another host cannot be checked and counts as live.
    """
    try:
        owner = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict):
        return None
    here = owner.get("host", socket.gethostname()) == socket.gethostname()
    return None if here and not _alive(owner) else owner


def _locked_error(path, owner):
    return RunFolderLocked(
        f"Run folder {str(path.parent)!r} is in use by another libkd process (pid {owner.get('pid')} on "
        f"host {owner.get('host')!r}, since {owner.get('since')}); two runs in one folder would overwrite "
        "each other's files. Wait for it to finish, or choose another folder with --out or --name; if "
        f"that process is gone, delete {str(path)!r}."
    )


def _take_lock(path):
    """Takes the lock file `path` for this process, or raises `RunFolderLocked` naming its live owner.

    The lock is written whole under a temporary name first, then put in place by `os.link` (which
    fails if a lock exists) or, over a stale lock, by `os.replace`: the lock file never goes
    missing and is never half-written. Two processes that find the same stale lock take turns on an
    `flock` of that stale file, and each checks, holding it, that the stale file is still the lock,
    so only the first one replaces it; the other then finds a live owner. Never remove and retry:
    two processes that both saw a dead owner would each remove the other's new lock.
    """
    path = Path(path)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start": _process_start(os.getpid()),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "token": uuid.uuid4().hex,  # tells this process's lock from one of an earlier process with the same pid
    }
    for _ in range(5):
        with temporary_sibling(path) as mine:
            Path(mine).write_text(json.dumps(me), encoding="utf-8")
            try:
                os.link(mine, path)  # atomic, and only if no lock exists
                return
            except FileExistsError:
                pass
            except FileNotFoundError:
                continue  # our temporary was removed (by the owner's clean-up of temporaries): try again
            except OSError:  # a filesystem without hard links
                if _create_exclusive(path, me):
                    return
            owner = lock_owner(path)
            if owner is not None:
                raise _locked_error(path, owner) from None
            if _replace_stale(path, mine) and _owns(path, me):
                return
    raise RunFolderLocked(f"Could not take the lock {str(path)!r}; delete it if no libkd process uses the folder.")


def _create_exclusive(path, me):
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(me))
    return True


def _replace_stale(path, mine):
    """Renames the whole lock file `mine` over the stale lock at `path`, if it is still that stale lock.

    Returns False when the lock changed meanwhile (another process took it, or it was released).
    """
    try:
        try:
            stale = os.open(path, os.O_RDWR)  # read-write: NFS emulates flock with POSIX locks, which need it
        except PermissionError:  # another user's lock file
            stale = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # released meanwhile: take it fresh on the next round
    try:
        if fcntl is not None:
            fcntl.flock(stale, fcntl.LOCK_EX)  # one taker at a time per stale file; released at close or death
        try:
            still = os.stat(path).st_ino == os.fstat(stale).st_ino
        except FileNotFoundError:
            still = False
        if not still or lock_owner(path) is not None:
            return False  # someone replaced it first (its owner is live) or released it
        try:
            os.replace(mine, path)
        except FileNotFoundError:
            return False  # our temporary was removed meanwhile
        return True
    finally:
        os.close(stale)


def _owns(path, me):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")).get("token") == me["token"]
    except (OSError, ValueError):
        return False


def _release_lock(path):
    try:
        owner = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if owner.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@atexit.register
def _release_all():
    for key in list(_HELD):
        _release_lock(Path(key))
    _HELD.clear()
