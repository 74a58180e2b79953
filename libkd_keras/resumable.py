"""What makes `model.fit` resumable and honest, for teachers and students alike.

- `EpochLog`: every finished epoch's logs and wall time in a JSON file (the history of a run that
  was interrupted and resumed is whole).
- `backup_callback(dir)`: `keras.callbacks.BackupAndRestore` keeping two training states
  (`double_checkpoint=True`), so a kill while one is being written leaves the other.
- `repair_backup(dir)`: run before `fit`; if the latest state is unreadable it falls back to the
  previous one, or, if both are, deletes the backup so the step starts again (one notice line).
- `check_finite(history)`: a `TrainingDiverged` error when the loss went NaN or infinite.
- `validation_epochs(epochs, every)`: the epochs `fit` validates on (`validation_freq`), always the last.

Example:
>>> repair_backup("run/checkpoints/student_x", say=print)
>>> callbacks = [EpochLog("run/logs/student_x/epochs.json"), backup_callback("run/checkpoints/student_x")]
"""

import contextlib
import json
import math
import os
import shutil
import time

import keras
import numpy as np

from libkd_keras.atomic_files import write_json_atomic

WEIGHTS, METADATA = "latest.weights.h5", "training_metadata.json"
PREVIOUS = ".bkp"  # Keras' suffix of the previous state under double_checkpoint


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite (the message says at which epoch)."""


class BackupUnreadable(ValueError):
    """A training backup that cannot be loaded even after `repair_backup` (the message says what to delete)."""


def validation_epochs(epochs, every=1):
    """`fit(validation_freq=...)`: epochs `every`, 2 * `every`, ... (1-based) and always the last one.

    Validating on a large test split every epoch can cost as much as training a small model; the
    last epoch is always scored, so a record's final accuracy is never a stale one.

    >>> validation_epochs(10, 4)
    [4, 8, 10]
    """
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"`validate_every` must be a positive number of epochs; got {every!r}.")
    return sorted(set(range(every, epochs + 1, every)) | {epochs})


class EpochLog(keras.callbacks.Callback):
    """Writes every finished epoch's logs and wall time to a JSON file, keyed by epoch number.

    It sits before the backup callback in the callback list, so an epoch the backup counts as done
    is always in the file; an epoch that is rerun after an interruption overwrites its entry.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.epochs = {}
        if os.path.exists(path):
            try:
                with open(path) as f:
                    self.epochs = {int(k): v for k, v in json.load(f).items()}
            except ValueError:
                self.epochs = {}  # written whole or not at all; unreadable only if edited by hand
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs = {k: v for k, v in self.epochs.items() if k < epoch}
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        entry["time_s"] = time.perf_counter() - self._started
        self.epochs[epoch] = entry
        write_json_atomic(self.path, {str(k): v for k, v in sorted(self.epochs.items())})

    def history(self):
        """`{metric: [value per epoch]}` over the epochs recorded so far."""
        keys = sorted({k for entry in self.epochs.values() for k in entry})
        ordered = [self.epochs[e] for e in sorted(self.epochs)]
        return {"epoch": sorted(self.epochs), **{k: [entry.get(k) for entry in ordered] for k in keys}}


class _Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose restore failures are one clear error instead of a raw OSError."""

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as error:
            raise BackupUnreadable(
                f"Cannot resume training from the backup in {self.backup_dir!r} ({type(error).__name__}: "
                f"{error}). Delete that folder to start the step again."
            ) from None


def backup_callback(backup_dir):
    """The backup/restore callback of every libkd training run (two states kept)."""
    return _Backup(str(backup_dir), double_checkpoint=True)


def _readable(weights, metadata):
    """Whether a saved training state can be loaded: its JSON parses and every HDF5 dataset reads."""
    import h5py

    try:
        with open(metadata, encoding="utf-8") as f:
            int(json.load(f)["epoch"])
        with h5py.File(weights, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
        return True
    except Exception:  # noqa: BLE001 - any failure means "cannot resume from it"
        return False


def repair_backup(backup_dir, say=print):
    """Makes `backup_dir` loadable before `fit`: "ok", "previous" (fell back), "restart" or "none"."""
    backup_dir = str(backup_dir)
    latest = (os.path.join(backup_dir, WEIGHTS), os.path.join(backup_dir, METADATA))
    previous = tuple(path + PREVIOUS for path in latest)
    if not os.path.isdir(backup_dir) or not any(os.path.exists(p) for p in latest + previous):
        return "none"
    if _readable(*latest):
        return "ok"
    if _readable(*previous):
        for old, new in zip(previous, latest):
            shutil.copyfile(old, new + ".restoring")
            os.replace(new + ".restoring", new)
        say(
            f"libkd: notice: the last backup in {backup_dir} was cut off while being written; resuming from "
            "the epoch before it."
        )
        return "previous"
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(backup_dir)
    say(
        f"libkd: notice: the backup in {backup_dir} was unreadable (cut off while being written); this step "
        "starts again from its first epoch."
    )
    return "restart"


def check_finite(history, what):
    """Raises `TrainingDiverged` if any epoch's `loss` in `history` is NaN or infinite."""
    for epoch, loss in zip(history.get("epoch", []), history.get("loss", [])):
        if loss is None or not math.isfinite(loss):
            raise TrainingDiverged(
                f"{what}: the training loss became {'NaN' if loss is None else loss} at epoch {epoch}, so nothing "
                "was saved. The learning rate is probably too high for this model (or the data holds invalid "
                "values): lower it and train again."
            )
