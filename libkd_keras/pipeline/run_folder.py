"""A run folder: claimed for one configuration and one process, with one marker per finished step.

`RunFolder.open(path, config, overwrite)` creates the folder or reopens it for the same run.
A folder holding a different run's `config.toml` is refused (the message lists what differs)
unless `overwrite=True` (the CLI's `--overwrite`), which deletes that run first; a run that
finished no step yet (e.g. it stopped at a data error) holds nothing to lose and is replaced. A
non-empty folder that is not a run folder is never touched.

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
from libkd_keras.pipeline.config_text import config_differences, parse_config_text, to_toml
from libkd_keras.pipeline.schema import ConfigError
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
        self._locked = False

    @classmethod
    def open(cls, root, config, overwrite=False):
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"Output path {str(root)!r} is a file; pass a folder to --out.")
        if load_run_config(root) is None and root.exists():
            entries = sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME and not is_temporary(p.name))
            if entries:
                raise ConfigError(
                    f"Output folder {str(root)!r} is not empty and is not a libkd run folder (it has no "
                    f"config.toml and holds {', '.join(entries[:5])}); pass an empty or new folder to --out."
                )
        folder = cls(root, config)
        folder.root.mkdir(parents=True, exist_ok=True)
        folder.acquire()
        try:
            stored = load_run_config(root)  # read again under the lock
            if stored is not None:
                differences = config_differences(stored, config)
                if differences and not overwrite and _holds_work(root):
                    raise ConfigError(
                        f"Output folder {str(root)!r} holds a different run (its config.toml differs: "
                        f"{differences_text(differences)}). Choose another folder with --out or --name, rerun "
                        "with the same settings to resume it, or pass --overwrite to delete it and start again."
                    )
                if differences:
                    _delete_run(root)
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
        """Records `step` as finished (call after its outputs are in place)."""
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


def _holds_work(root):
    """Whether a run folder holds anything beyond its config: finished steps, checkpoints, logs."""
    return any(p.is_file() and p.name not in ("config.toml", LOCK_NAME) for p in Path(root).rglob("*"))


def _delete_run(root):
    """Deletes a run folder's entries (only the ones libkd writes)."""
    for entry in Path(root).iterdir():
        if entry.name in RUN_ENTRIES:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


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
