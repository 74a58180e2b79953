"""What makes `model.fit` resumable and honest, for teachers and students alike.

- `EpochLog`: every finished epoch's logs and wall time in a JSON file (the history of a run that
  was interrupted and resumed is whole).
- `backup_callback(dir)`: `keras.callbacks.BackupAndRestore` keeping two training states
  (`double_checkpoint=True`), so a kill while one is being written leaves the other. Every file is
  written under a temporary name and renamed, and the epoch number's file records the size and
  sha256 of the weights it goes with, so a kill between the two writes leaves a pair that does not
  match, and is refused, instead of weights one epoch ahead of their epoch number (that epoch would
  train twice). The backup is kept after `fit` until `discard_backup(dir)`, called once the final
  model file is whole: a kill while it is saved resumes at the end instead of at epoch 1.
- `repair_backup(dir)`: run before `fit`; if the latest state is unreadable, or its weights are
  not the ones its epoch number was written for, it falls back to the previous state, or, if that
  fails too, deletes the backup so the step starts again (one notice line).
- `check_finite(history)`: a `TrainingDiverged` error when the loss went NaN or infinite.
- `validation_epochs(epochs, every)`: the epochs `fit` validates on (`validation_freq`), always the last.

Example:
>>> repair_backup("run/checkpoints/student_x", say=print)
>>> callbacks = [EpochLog("run/logs/student_x/epochs.json"), backup_callback("run/checkpoints/student_x")]
>>> model.fit(..., callbacks=callbacks); save_model_atomic(model, "run/students/x.keras")
>>> discard_backup("run/checkpoints/student_x")
"""

import contextlib
import json
import math
import os
import shutil
import time

import keras
import numpy as np

from libkd_keras.atomic_files import file_digest, temporary_sibling, write_json_atomic

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


def _copy_atomic(source, target):
    with temporary_sibling(target) as tmp:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


class _Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose states are written whole and matched, and whose restore failures are one clear error.

    Keras writes `latest.weights.h5` and then `training_metadata.json` in place; a kill between them
    leaves weights after epoch N + 1 beside "epoch": N, and the resumed run trains epoch N + 1 again.
    Here each file is written under a temporary name and renamed, and the metadata records the
    size and sha256 of its weights file (`repair_backup` refuses a pair that does not match). The
    previous state (`.bkp`) is copied, also whole, before the latest one is replaced.
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as error:
            raise BackupUnreadable(
                f"Cannot resume training from the backup in {self.backup_dir!r} ({type(error).__name__}: "
                f"{error}). Delete that folder to start the step again."
            ) from None

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights, metadata = self._weights_path, self._training_metadata_path
        if self.double_checkpoint and os.path.exists(weights) and os.path.exists(metadata):
            _copy_atomic(weights, self._prev_weights_path)  # a kill between these two copies leaves
            _copy_atomic(metadata, self._prev_training_metadata_path)  # a mismatched .bkp, but a whole latest
        with temporary_sibling(weights, suffix=".weights.h5") as tmp:  # Keras wants the .weights.h5 ending
            self.model.save_weights(filepath=tmp, overwrite=True)
            size, sha256 = file_digest(tmp)
            os.replace(tmp, weights)
        # A kill here leaves new weights beside the old epoch number: refused by `repair_backup`.
        write_json_atomic(
            metadata,
            {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "weights_bytes": size,
                "weights_sha256": sha256,
            },
        )


def backup_callback(backup_dir):
    """The backup/restore callback of every libkd training run (two states kept, kept after `fit`).

    Call `discard_backup(backup_dir)` once the trained model is saved.
    """
    return _Backup(str(backup_dir), double_checkpoint=True, delete_checkpoint=False)


def discard_backup(backup_dir):
    """Deletes a training backup: call it only once the final model file is whole."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(backup_dir)


def _readable(weights, metadata):
    """Whether a saved training state can be loaded and is one pair.

    Its JSON parses, every HDF5 dataset reads, and the weights are the ones the metadata was
    written for (their size and sha256, where the metadata records them: backups of libkd 0.x
    before this check record none).
    """
    import h5py

    try:
        with open(metadata, encoding="utf-8") as f:
            state = json.load(f)
        int(state["epoch"])
        if "weights_sha256" in state and file_digest(weights) != (state["weights_bytes"], state["weights_sha256"]):
            return False  # weights of another epoch: a kill between writing the weights and the epoch number
        with h5py.File(weights, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
        return True
    except Exception:  # noqa: BLE001 - any failure means "cannot resume from it"
        return False


def repair_backup(backup_dir, say=print):
    """Makes `backup_dir` loadable before `fit`: "ok", "previous" (fell back), "restart" or "none".

    A state is used only when its weights and epoch number were written together (`_readable`).
    """
    backup_dir = str(backup_dir)
    latest = (os.path.join(backup_dir, WEIGHTS), os.path.join(backup_dir, METADATA))
    previous = tuple(path + PREVIOUS for path in latest)
    if not os.path.isdir(backup_dir) or not any(os.path.exists(p) for p in latest + previous):
        return "none"
    if _readable(*latest):
        return "ok"
    if _readable(*previous):
        for old, new in zip(previous, latest):
            _copy_atomic(old, new)
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
