"""The one training engine: `fit_resumably` trains every teacher and every student (and so the ablation).

`train_teacher` (teachers/training.py) and `train_student` (distill/training.py) say what to build; this
module runs `fit` on it the same way for both, and writes the same files with the same keys:

    <out_dir>/<name>.keras      the trained model, uncompiled, written whole (temporary name, renamed)
    <out_dir>/<name>.json       its record: `RECORD_KEYS` for every model, then the caller's own keys
    <log_dir>/epochs.json       every finished epoch's logs (`EpochLog`; metric names `acc`/`top5`)
    <log_dir>/                  TensorBoard logs (default `<out_dir>/logs/<name>`)
    <backup_dir>/               the training state while it trains (default `<out_dir>/<name>.backup`)

`Artifact(out_dir, name)` names these paths. What the engine owns, written once:

- the seed (`keras.utils.set_random_seed`, then `EpochSeeds` for the input pipeline), the precision
  (Keras' global dtype policy, put back afterwards), the `tf.distribute` strategy's scope, XLA
  (`jit_compile`) and the check that the training data make exactly `steps` batches an epoch;
- backups: `backup_callback(dir)`, `keras.callbacks.BackupAndRestore` keeping two training states
  (`double_checkpoint=True`), so a kill while one is being written leaves the other. Every file is
  written under a temporary name and renamed, and the epoch number's file records the size and
  sha256 of the weights it goes with, so a kill between the two writes leaves a pair that does not
  match, and is refused, instead of weights one epoch ahead of their epoch number (that epoch would
  train twice). `repair_backup(dir)` runs before `fit`: if the latest state is unreadable, or its
  weights are not the ones its epoch number was written for, it falls back to the previous state,
  or, if that fails too, deletes the backup so the step starts again (one notice line). The backup
  is kept after `fit` until the record is written (`discard_backup`): a kill while the files are
  saved resumes at the end instead of at epoch 1;
- the history: `EpochLog`, every finished epoch's logs and wall time in a JSON file, so the history
  of a run that was interrupted and resumed is whole (a fresh start removes a stale one; a teacher
  interrupted under libkd <= 0.x, whose history was `<name>.history.json` with `accuracy` names,
  resumes with that history moved and renamed);
- `check_finite(history)`: a `TrainingDiverged` error when the loss went NaN or infinite (nothing is
  saved, and the backup and history are removed so a rerun starts afresh);
- `validation_epochs(epochs, every)`: the epochs `fit` validates on (`validation_freq`), always the last.

Example:
>>> def build(seeds):  # called after the seed and the precision are set, in the strategy's scope
...     model = make_model()
...     model.compile(optimizer="adam", loss=..., metrics=accuracy_metrics(10))
...     return Training(model, split.dataset(128, shuffle=True, seed=seeds), steps=math.ceil(len(split) / 128))
>>> record = fit_resumably(build, Artifact("runs/models", "m"), FitSettings(epochs=10), (split, test))
"""

import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

import libkd_keras
from libkd_keras import distribute
from libkd_keras.atomic_files import file_digest, read_json, save_model_atomic, temporary_sibling, write_json_atomic
from libkd_keras.data.epochs import EpochSeeds, check_epoch_length

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


# ------------------------------------------------------------------------------------------ the engine

ACCURACY, TOP5 = "acc", "top5"  # every history's metric names, teachers' and students' alike (and `val_` ones)
_OLD_METRICS = {"accuracy": ACCURACY, "top5_accuracy": TOP5}  # teachers' names before one engine (libkd <= 0.x)


def current_metric(key):
    """A history key in today's names: `accuracy` -> `acc`, `val_top5_accuracy` -> `val_top5` (older teachers)."""
    prefix = "val_" if key.startswith("val_") else ""
    return prefix + _OLD_METRICS.get(key[len(prefix) :], key[len(prefix) :])


def accuracy_metrics(num_classes):
    """Top-1 and top-k (k = min(5, classes)) of logits against one-hot labels, named `acc` and `top5`."""
    return [
        keras.metrics.CategoricalAccuracy(name=ACCURACY),
        keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name=TOP5),
    ]


def dataset_record(split):
    """How a record names the data a model trained or was scored on (`"dataset"`, `"test_dataset"`)."""
    return {"name": split.name, "split": split.split, "num_examples": len(split), "fingerprint": split.fingerprint}


@dataclasses.dataclass(frozen=True)
class Artifact:
    """Where one trained model's files go (module docstring).

    Args:
        out_dir: str. The folder of `<name>.keras` and `<name>.json`.
        name: str. The file stem.
        kind: str. What it is, for messages ("teacher", "student").
        backup_dir: str or None. The training state (default `<out_dir>/<name>.backup`).
        log_dir: str or None. TensorBoard logs and `epochs.json` (default `<out_dir>/logs/<name>`).

    >>> Artifact("run/students", "kd", "student").history
    'run/students/logs/kd/epochs.json'
    """

    out_dir: str
    name: str
    kind: str = "model"
    backup_dir: str = None
    log_dir: str = None

    def __post_init__(self):
        for field in ("out_dir", "backup_dir", "log_dir"):
            if getattr(self, field) is not None:
                object.__setattr__(self, field, os.fspath(getattr(self, field)))

    @property
    def model(self):
        return os.path.join(self.out_dir, f"{self.name}.keras")

    @property
    def record(self):
        return os.path.join(self.out_dir, f"{self.name}.json")

    @property
    def backup(self):
        return self.backup_dir or os.path.join(self.out_dir, f"{self.name}.backup")

    @property
    def logs(self):
        return self.log_dir or os.path.join(self.out_dir, "logs", self.name)

    @property
    def history(self):
        """Every finished epoch's logs (`EpochLog`), kept beside the TensorBoard logs."""
        return os.path.join(self.logs, "epochs.json")

    @property
    def old_history(self):
        """Where a teacher's history was kept while it trained, before one engine (`<name>.history.json`)."""
        return os.path.join(self.out_dir, f"{self.name}.history.json")

    @property
    def what(self):
        return f"{self.kind} {self.name}"

    def finished(self):
        """Whether both final files exist (the record is written last, so the model is whole)."""
        return os.path.exists(self.model) and os.path.exists(self.record)


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How `fit` runs, the same for every model.

    Args:
        epochs: int. Training epochs.
        seed: int. `keras.utils.set_random_seed` before the build, and the `EpochSeeds` of the input pipeline.
        precision: str or None. Keras' global dtype policy while the model is built and trained (put
            back afterwards); None keeps the current one.
        jit_compile: bool or "auto". XLA for the train step ("auto": as `compile` decided).
        validate_every: int. Validate every that many epochs, and always after the last one.
        strategy: tf.distribute.Strategy or None. The model is built in its scope (default: the current one).
    """

    epochs: int
    seed: int = 0
    precision: str = None
    jit_compile: object = "auto"
    validate_every: int = 1
    strategy: object = None

    def __post_init__(self):
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise ValueError(f"`epochs` must be a positive integer; got {self.epochs!r}.")
        validation_epochs(self.epochs, self.validate_every)  # checks validate_every
        if self.jit_compile not in (True, False, "auto"):
            raise ValueError(f"`jit_compile` must be True, False or 'auto'; got {self.jit_compile!r}.")


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How one `train_teacher` / `train_student` call runs and reports, apart from what it trains.

    None of these changes the trained weights (XLA aside, which agrees to float rounding).

    Args:
        callbacks: sequence of Keras callbacks, run after the engine's own.
        verbose: Keras `fit` verbosity.
        say: callable. Receives notice lines (a repaired backup, a damaged model file trained again).
        validate: bool. Score the test split during training (the history's `val_*`, on the recipe's
            `validate_every` epochs); False: no validation while training.
        compile_options: dict or None. Extra `compile` arguments (not the optimizer, loss or metrics), e.g.
            `{"jit_compile": True}`: XLA (`libkd_keras/xla.py`; the pipeline's `run.jit_compile = "auto"`
            chooses it for you) or `{"run_eagerly": True}`.
        overwrite: bool. Train again even if the model's `.keras` and `.json` exist.
        record: dict or None. Keys merged into the model's record (e.g. which run or experiment it belongs to).

    >>> FitOptions(verbose=0, compile_options={"jit_compile": False})
    """

    callbacks: tuple = ()
    verbose: object = "auto"
    say: object = print
    validate: bool = True
    compile_options: dict = None
    overwrite: bool = False
    record: dict = None

    def __post_init__(self):
        object.__setattr__(self, "callbacks", tuple(self.callbacks or ()))
        object.__setattr__(self, "compile_options", dict(self.compile_options or {}))
        object.__setattr__(self, "record", dict(self.record or {}))
        reserved = {"optimizer", "loss", "metrics"} & set(self.compile_options)
        if reserved:
            raise ValueError(
                f"`compile_options` may not set {sorted(reserved)}: they come from the recipe. "
                "Change the recipe instead."
            )
        if not callable(self.say):
            raise ValueError(f"`say` must be a callable taking one line (e.g. print); got {self.say!r}.")

    def compile_arguments(self):
        """`(jit_compile, the other compile arguments)`: XLA is the engine's (`FitSettings`), the rest `compile`'s."""
        rest = dict(self.compile_options)
        return rest.pop("jit_compile", "auto"), rest


@dataclasses.dataclass
class Training:
    """What a build function gives `fit_resumably`.

    Args:
        model: the keras.Model that is saved (a teacher, a student).
        train: tf.data.Dataset. Exactly `steps` batches an epoch, of known length.
        steps: int. Batches an epoch (`ceil(examples / batch size)`).
        validation: tf.data.Dataset or None. Scored on the epochs of `validation_epochs`.
        fit_model: keras.Model or None. What `fit` runs, compiled (a `Distiller`, a strategy's view of
            `model`); default `model` itself.
    """

    model: keras.Model
    train: object
    steps: int
    validation: object = None
    fit_model: keras.Model = None


def fit_resumably(build, artifact, settings, splits, *, describe=None, callbacks=None, verbose="auto", say=print):
    """Builds, trains (resumably), saves and records one model: the engine of teachers and students.

    Args:
        build: callable `build(seeds) -> Training`, called after `keras.utils.set_random_seed(seed)`,
            under `settings.precision` and in the strategy's scope; `seeds` is the `EpochSeeds` the
            input pipeline draws from (pass it to `Split.dataset(seed=...)`, `TeacherStore.dataset`, ...).
        artifact: Artifact. Where the files go.
        settings: FitSettings. Epochs, seed, precision, XLA, validation, strategy.
        splits: `(train_split, test_split)`, `data.Split`s named in the record.
        describe: callable or None. `describe(training, history) -> dict`, called once the model file is
            saved: the caller's own record keys (they may replace the engine's, e.g. the test accuracy).
        callbacks: list. Extra Keras callbacks, after the engine's.
        verbose: Keras `fit` verbosity.
        say: callable. Receives notice lines (a repaired backup).

    Returns the record, also written to `artifact.record`. A run interrupted after epoch k resumes
    from its backup at epoch k + 1 and repeats the epochs of the run never stopped (`EpochSeeds`).
    Raises `TrainingDiverged` (nothing saved) when the loss went NaN or infinite.
    """
    settings = dataclasses.replace(settings, strategy=settings.strategy or tf.distribute.get_strategy())
    policy = keras.mixed_precision.dtype_policy()
    try:
        seeds = EpochSeeds(settings.seed)  # each epoch's order and augmentation from (seed, epoch)
        with settings.strategy.scope():  # the model, its optimizer and metrics live on the strategy's devices
            keras.utils.set_random_seed(settings.seed)
            if settings.precision is not None:
                keras.mixed_precision.set_dtype_policy(settings.precision)
            training = build(seeds)
        check_epoch_length(training.train, training.steps, artifact.what)
        fitted = training.fit_model or training.model
        if settings.jit_compile != "auto":
            fitted.jit_compile = settings.jit_compile
        history, seconds = _fit(training, artifact, settings, [seeds, *(callbacks or [])], verbose, say)
        _save_uncompiled(training.model, artifact.model)
        record = _record(training, artifact, settings, splits, history, seconds)
        record.update(describe(training, history) if describe else {})
        record["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record["versions"] = {
            "libkd_keras": libkd_keras.__version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        }
        write_json_atomic(artifact.record, record)
        discard_backup(
            artifact.backup
        )  # only now: a kill while the files above were saved resumes after the last epoch
        return record
    finally:
        keras.mixed_precision.set_dtype_policy(policy)


def _fit(training, artifact, settings, callbacks, verbose, say):
    """`fit` with backups and the epoch log: `(history, seconds)`; `TrainingDiverged` on a NaN loss."""
    seeds, *extra = callbacks
    os.makedirs(artifact.out_dir, exist_ok=True)
    repair_backup(artifact.backup, say=say)
    _start_history(artifact)
    epoch_log = EpochLog(artifact.history)
    fit_callbacks = [
        seeds,
        epoch_log,  # before the backup, see EpochLog
        backup_callback(artifact.backup),
        keras.callbacks.TensorBoard(artifact.logs),
        keras.callbacks.TerminateOnNaN(),
        *extra,
    ]
    fitted = training.fit_model or training.model
    started = time.perf_counter()
    with distribute.synchronized_batch_norm(training.model, settings.strategy):  # the saved model keeps plain BN
        fitted.fit(
            training.train,
            validation_data=training.validation,
            validation_freq=validation_epochs(settings.epochs, settings.validate_every),
            epochs=settings.epochs,
            callbacks=fit_callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles (EpochSeeds)
        )
    seconds = time.perf_counter() - started
    history = epoch_log.history()
    try:
        check_finite(history, artifact.what)
    except TrainingDiverged:
        with contextlib.suppress(FileNotFoundError):
            os.remove(artifact.history)
        discard_backup(artifact.backup)  # NaN weights: a rerun starts afresh
        raise
    return history, seconds


def _start_history(artifact):
    """The epoch log `fit` continues: the backed-up epochs' on a resume, none on a fresh start.

    A teacher interrupted under libkd <= 0.x kept its history in `<name>.history.json` with the metric
    names `accuracy`/`top5_accuracy`: on its resume that history moves to `artifact.history`, renamed,
    so the resumed teacher's history is whole.
    """
    resuming = os.path.exists(os.path.join(artifact.backup, METADATA))
    if resuming and os.path.exists(artifact.old_history):
        old = _epochs(artifact.old_history)
        old = {epoch: {current_metric(k): v for k, v in entry.items()} for epoch, entry in old.items()}
        write_json_atomic(artifact.history, {**old, **_epochs(artifact.history)})  # written before the old is removed
    for stale in [artifact.old_history] + ([] if resuming else [artifact.history]):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)  # a fresh start: no backed-up epoch, so no history either


def _epochs(path):
    try:
        return dict(read_json(path, default={}))
    except ValueError:
        return {}  # written whole or not at all; unreadable only if edited by hand (as EpochLog reads it)


def _save_uncompiled(model, path):
    """`model` saved whole (temporary name, renamed), without an optimizer: a compiled one as a copy from its config."""
    if model.compiled:
        clone = type(model).from_config(model.get_config())  # clone_model would compile the clone too
        clone.set_weights(model.get_weights())
        model = clone
    save_model_atomic(model, path)


def _record(training, artifact, settings, splits, history, seconds):
    """The record keys every model has (`RECORD_KEYS`), from its history and its files."""
    train_split, test_split = splits
    model = training.model
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))

    def last(key):
        return (history.get(key) or [None])[-1]

    return {
        "name": artifact.name,
        "seed": settings.seed,
        "dataset": dataset_record(train_split),
        "test_dataset": dataset_record(test_split),
        "num_classes": train_split.num_classes,
        "class_names": list(train_split.class_names),
        "input_shape": list(train_split.image_shape),
        "top1_test_accuracy": last(f"val_{ACCURACY}"),  # the last epoch always validates (validation_epochs)
        "top5_test_accuracy": last(f"val_{TOP5}"),
        "top_k": min(5, train_split.num_classes),
        "train_accuracy": last(ACCURACY),  # last epoch, on augmented batches
        "training_time_s": float(sum(t for t in history.get("time_s", []) if t) or seconds),
        "trainable_parameters": trainable,
        "size_mb": trainable * 4 / 2**20,  # float32 parameters, the paper's "Param Size (MB)"
        "file_size_mb": os.path.getsize(artifact.model) / 2**20,
        "epochs": settings.epochs,
        "precision": settings.precision or model.dtype_policy.name,  # the dtype policy it trained under
        "history": history,
        "model_file": os.path.basename(artifact.model),
        "tensorboard_dir": os.path.relpath(artifact.logs, artifact.out_dir),
    }


RECORD_KEYS = (  # in every teacher's and student's record (`_record`, then "created" and "versions")
    "name",
    "seed",
    "dataset",
    "test_dataset",
    "num_classes",
    "class_names",
    "input_shape",
    "top1_test_accuracy",
    "top5_test_accuracy",
    "top_k",
    "train_accuracy",
    "training_time_s",
    "trainable_parameters",
    "size_mb",
    "file_size_mb",
    "epochs",
    "precision",
    "history",
    "model_file",
    "tensorboard_dir",
    "created",
    "versions",
)
