"""Fault cases at precise instants, injected in-process (the whole-pipeline kills are in test_faults.py).

Each test builds the state a SIGKILL at one instant leaves (or wraps the call a kill would cut
short), then checks that the next run neither repeats nor loses work, or refuses with a clear message.
"""

import json
import shutil

import keras
import pytest

from libkd_keras import resumable
from libkd_keras.distill import baseline, train_student
from libkd_keras.teachers import TeacherRecipe, train_teacher
from tests.distill.test_training import Stop
from tests.distill.test_training import _build as tiny_deit
from tests.teachers.test_training import CountEpochs, tiny_cnn, toy_split

# ------------------------------------------------------------------ 1. weights and epoch number


class Iterations(keras.callbacks.Callback):
    """Records the optimizer's step count when `fit` ends: how many updates the model really got."""

    def on_train_end(self, logs=None):
        self.iterations = int(self.model.optimizer.iterations.numpy())


def _teacher(tmp_path, epochs=4, **kwargs):
    train, test = toy_split(36, "train", 0), toy_split(12, "test", 1)
    recipe = TeacherRecipe(epochs=epochs, batch_size=12)  # 3 steps per epoch
    return train_teacher(tiny_cnn, train, test, tmp_path, seed=1, recipe=recipe, verbose=0, **kwargs)


def _interrupt_teacher(tmp_path, stop_at):
    with pytest.raises(KeyboardInterrupt):
        _teacher(tmp_path, callbacks=[CountEpochs(stop_at)])
    return tmp_path / "tiny_cnn_seed1.backup"


def test_weights_ahead_of_their_epoch_number_are_refused_and_no_epoch_trains_twice(tmp_path):
    backup = _interrupt_teacher(tmp_path, stop_at=3)  # epochs 0, 1, 2 done: latest = epoch 3, .bkp = epoch 2
    # A kill between writing the weights and the epoch number: weights after 3 epochs beside "epoch": 2.
    shutil.copyfile(backup / "training_metadata.json.bkp", backup / "training_metadata.json")
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    notices, resumed, steps = [], CountEpochs(), Iterations()
    meta = _teacher(tmp_path, callbacks=[resumed, steps], say=notices.append)
    assert resumed.started == [2, 3]  # from the matching pair of the epoch before, not epoch 2 on top of 3
    assert steps.iterations == 4 * 3  # 4 epochs of 3 steps: none trained twice
    assert len(notices) == 1 and "resuming from the epoch before" in notices[0]
    assert meta["history"]["epoch"] == [0, 1, 2, 3]


def test_a_kill_right_after_the_weights_are_written_resumes_at_the_right_epoch(tmp_path, monkeypatch):
    written = []
    real = resumable.write_json_atomic

    def killed_before_the_epoch_number(path, data, **kwargs):
        if str(path).endswith(resumable.METADATA):
            if data["epoch"] == 3:
                raise KeyboardInterrupt("SIGKILL after the weights of epoch 3 were renamed into place")
            written.append(data["epoch"])
        real(path, data, **kwargs)

    monkeypatch.setattr(resumable, "write_json_atomic", killed_before_the_epoch_number)
    with pytest.raises(KeyboardInterrupt):
        _teacher(tmp_path)
    monkeypatch.undo()
    assert written == [1, 2]
    backup = tmp_path / "tiny_cnn_seed1.backup"
    assert resumable.repair_backup(backup, say=lambda line: None) == "previous"
    resumed, steps = CountEpochs(), Iterations()
    _teacher(tmp_path, callbacks=[resumed, steps])
    assert resumed.started == [2, 3] and steps.iterations == 4 * 3


def test_repair_backup_restarts_when_neither_state_is_a_matching_pair(tmp_path):
    backup = _interrupt_teacher(tmp_path, stop_at=3)
    for suffix in ("", ".bkp"):  # each state's weights swapped with the other's
        (backup / f"latest.weights.h5{suffix}").rename(backup / f"w{suffix}")
    (backup / "w").rename(backup / "latest.weights.h5.bkp")
    (backup / "w.bkp").rename(backup / "latest.weights.h5")
    notices = []
    assert resumable.repair_backup(backup, say=notices.append) == "restart"
    assert not backup.exists() and "starts again from its first epoch" in notices[0]


# ------------------------------------------------------------------------ 7. the final save


def test_a_kill_while_the_final_teacher_file_is_saved_resumes_after_the_last_epoch(tmp_path, monkeypatch):
    from libkd_keras.teachers import training

    def killed(model, path):
        raise KeyboardInterrupt("SIGKILL while the .keras file is written")

    monkeypatch.setattr(training, "save_model_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        _teacher(tmp_path, epochs=2)
    monkeypatch.undo()
    backup = tmp_path / "tiny_cnn_seed1.backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2  # kept until the file is whole
    resumed, steps = CountEpochs(), Iterations()
    meta = _teacher(tmp_path, epochs=2, callbacks=[resumed, steps])
    assert resumed.started == [] and steps.iterations == 2 * 3  # nothing trained again
    assert meta["history"]["epoch"] == [0, 1] and (tmp_path / "tiny_cnn_seed1.keras").is_file()
    assert not backup.exists()  # discarded once the files are saved


def test_a_kill_while_the_final_student_file_is_saved_resumes_after_the_last_epoch(tmp_path, monkeypatch):
    from libkd_keras.distill import training

    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32")

    def student(callbacks, name="b"):
        return train_student(
            tiny_deit(), train, test, tmp_path, recipe=recipe, epochs=2, name=name, callbacks=callbacks, verbose=0
        )

    uninterrupted = Iterations()
    student([uninterrupted], name="reference")

    def killed(model, path):
        raise KeyboardInterrupt("SIGKILL while the .keras file is written")

    monkeypatch.setattr(training, "save_model_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        student([])
    monkeypatch.undo()
    assert (tmp_path / "b.backup" / "training_metadata.json").is_file()
    resumed, steps = Stop(), Iterations()
    record = student([resumed, steps])
    assert resumed.begun == [] and steps.iterations == uninterrupted.iterations
    assert record["history"]["epoch"] == [0, 1] and not (tmp_path / "b.backup").exists()


# ---------------------------------------------------------------------------- 3. the stale lock

_RACER = """
import json, sys, time
from pathlib import Path
from libkd_keras.pipeline import run_folder as rf
t0, rounds, gap, folder = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
owned = []
for r in range(rounds):
    while time.time() < t0 + r * gap:
        pass  # spin to the same instant as the other racer
    try:
        rf._take_lock(folder / f"r{r}" / rf.LOCK_NAME)
        owned.append(r)
    except rf.RunFolderLocked:
        pass
print(json.dumps(owned))
"""


def test_two_processes_taking_one_stale_lock_at_the_same_instant_never_both_own_it(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    from libkd_keras.pipeline.run_folder import LOCK_NAME

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "host": socket.gethostname(), "start": 1, "since": "2026-01-01T00:00:00"}
    rounds, gap = 150, 0.03
    for r in range(rounds):
        (tmp_path / f"r{r}").mkdir()
        (tmp_path / f"r{r}" / LOCK_NAME).write_text(json.dumps(stale))
    t0 = time.time() + 3  # both interpreters are up by then
    argv = [sys.executable, "-c", _RACER, str(t0), str(rounds), str(gap), str(tmp_path)]
    racers = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=os.environ.copy()) for _ in range(2)]
    owned = [set(json.loads(racer.communicate(timeout=60)[0])) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert owned[0] & owned[1] == set()  # never both
    assert owned[0] | owned[1] == set(range(rounds))  # and always one: the stale lock was taken over
    for r in range(rounds):
        holder = racers[0] if r in owned[0] else racers[1]
        assert json.loads((tmp_path / f"r{r}" / LOCK_NAME).read_text())["pid"] == holder.pid
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name != LOCK_NAME] == []  # no temporaries left
