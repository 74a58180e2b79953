"""Fault cases at precise instants, injected in-process (the whole-pipeline kills are in test_faults.py).

Each test builds the state a SIGKILL at one instant leaves (or wraps the call a kill would cut
short), then checks that the next run neither repeats nor loses work, or refuses with a clear message.
"""

import json
import shutil

import keras
import numpy as np
import pytest

from libkd_keras import training as engine
from libkd_keras.distill import baseline, train_student
from libkd_keras.teachers import TeacherRecipe, train_teacher
from libkd_keras.training import FitOptions
from tests.builders import tiny_cnn, toy_split
from tests.distill.test_training import Stop
from tests.distill.test_training import _build as tiny_deit
from tests.teachers.test_training import CountEpochs

# ------------------------------------------------------------------ 1. weights and epoch number


class Iterations(keras.callbacks.Callback):
    """Records the optimizer's step count when `fit` ends: how many updates the model really got."""

    def on_train_end(self, logs=None):
        self.iterations = int(self.model.optimizer.iterations.numpy())


def _teacher(tmp_path, epochs=4, **options):
    train, test = toy_split(36, "train", 0), toy_split(12, "test", 1)
    recipe = TeacherRecipe(epochs=epochs, batch_size=12)  # 3 steps per epoch
    options = FitOptions(verbose=0, **options)
    return train_teacher(tiny_cnn, train, test, tmp_path, seed=1, recipe=recipe, options=options)


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
    real = engine.write_json_atomic

    def killed_before_the_epoch_number(path, data, **kwargs):
        if str(path).endswith(engine.METADATA):
            if data["epoch"] == 3:
                raise KeyboardInterrupt("SIGKILL after the weights of epoch 3 were renamed into place")
            written.append(data["epoch"])
        real(path, data, **kwargs)

    monkeypatch.setattr(engine, "write_json_atomic", killed_before_the_epoch_number)
    with pytest.raises(KeyboardInterrupt):
        _teacher(tmp_path)
    monkeypatch.undo()
    assert written == [1, 2]
    backup = tmp_path / "tiny_cnn_seed1.backup"
    assert engine.repair_backup(backup, say=lambda line: None) == "previous"
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
    assert engine.repair_backup(backup, say=notices.append) == "restart"
    assert not backup.exists() and "starts again from its first epoch" in notices[0]


# ------------------------------------------------------------------------ 7. the final save


def test_a_kill_while_the_final_teacher_file_is_saved_resumes_after_the_last_epoch(tmp_path, monkeypatch):
    def killed(model, path):
        raise KeyboardInterrupt("SIGKILL while the .keras file is written")

    monkeypatch.setattr(engine, "save_model_atomic", killed)  # the engine saves every model
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
    train, test = toy_split(24, "train", 0), toy_split(6, "test", 1)
    recipe = baseline(distillation="none", batch_size=12, warmup_epochs=0, precision="float32", epochs=2)

    def student(callbacks, name="b"):
        options = FitOptions(callbacks=callbacks, verbose=0)
        return train_student(tiny_deit(), train, test, tmp_path, recipe=recipe, name=name, options=options)

    uninterrupted = Iterations()
    student([uninterrupted], name="reference")

    def killed(model, path):
        raise KeyboardInterrupt("SIGKILL while the .keras file is written")

    monkeypatch.setattr(engine, "save_model_atomic", killed)  # the engine saves every model
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


# ------------------------------------------------------------- 9. a CIFAR meta with extra names


def test_a_cifar_meta_naming_more_classes_than_the_data_has_is_refused(tmp_path):
    from libkd_keras.data import DataError, load_split
    from tests.data.test_source_safety import cifar_members, write_tarball

    names = [f"c{i}".encode() for i in range(12)]  # labels 0..9 in the batches
    meta = {b"label_names": names, b"num_cases_per_batch": 3, b"num_vis": 3072}
    tarball = write_tarball(tmp_path / "cifar-10-python.tar.gz", cifar_members(meta=meta))
    with pytest.raises(DataError, match=r"names 12 classes.*up to 9 only: 'c10', 'c11'.*came with these batches"):
        load_split(tarball, "train")


def test_student_given_as_a_file_says_what_to_do_instead():
    from libkd_keras.pipeline.config import resolve_config
    from libkd_keras.pipeline.schema import ConfigError
    from libkd_keras.pipeline.settings import Config

    config = Config.from_dict(resolve_config(preset="quick"))
    with pytest.raises(ConfigError, match=r"not a file \('out/student_int8.tflite'\).*evaluate_litert"):
        config.select_students(["out/student_int8.tflite"])
    with pytest.raises(ConfigError, match=r"Unknown student\(s\) \['nope'\]; this run's students: [^.]*\.$"):
        config.select_students(["nope"])  # a name: no hint about files


# --------------------------------------------------- 9. the export's temporaries after a kill

_EXPORT = """
import sys
import keras
from libkd_keras.export import to_litert
inputs = keras.Input((8, 8, 3))
model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs)))
to_litert(model, sys.argv[1], "float32")
"""


def test_a_killed_export_leaves_no_savedmodel_in_tmpdir_and_its_folder_is_cleaned_on_reopen(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from libkd_keras.atomic_files import remove_stale_temporaries

    tmpdir, out = tmp_path / "tmpdir", tmp_path / "exports"
    tmpdir.mkdir()
    out.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    export = subprocess.Popen([sys.executable, "-c", _EXPORT, str(out / "m.tflite")], env=env)
    deadline = time.monotonic() + 120
    while export.poll() is None and time.monotonic() < deadline:
        if any(out.rglob("saved_model.pb")):
            export.send_signal(signal.SIGKILL)  # while the converter's SavedModel is on disk
            break
        time.sleep(0.002)
    assert export.wait() == -signal.SIGKILL, "the export finished before the kill"
    assert not any(tmpdir.iterdir())  # nothing in $TMPDIR, where nothing would ever clean it up
    assert any(out.rglob("saved_model.pb"))  # the leftovers are beside the file instead
    remove_stale_temporaries(out)  # what reopening the run folder does
    assert not any(p.is_dir() for p in out.iterdir()) and not (out / "m.tflite").exists()


# ------------------------------------------------------- a tiny run: stores and model files

SETTINGS = [
    "teachers.rednet_seeds=[]",
    "teachers.resnet_seeds=[0, 1]",  # two teachers whose shards have the same size
    'students=[{name = "ensemble", teachers = ["resnet_s0", "resnet_s1"]}]',
    "export.quantizations=[]",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two tiny trained teachers and their stores (`train-teacher`, `precompute`), made once; tests copy it."""
    from libkd_keras.cli.main import main
    from tests.cli.conftest import TINY_CONFIG, write_image_tree

    root = tmp_path_factory.mktemp("tiny_run")
    config = root / "tiny.toml"
    config.write_text(TINY_CONFIG)
    argv = ["--preset", "quick", "--config", str(config), "--dataset", str(write_image_tree(root / "data", train=16))]
    for setting in SETTINGS:
        argv += ["--set", setting]
    for command in ("train-teacher", "precompute"):
        assert main([command, *argv, "--out", str(root / "run")]) == 0
    return root / "run", argv


@pytest.fixture
def run(tiny_run, tmp_path):
    shutil.copytree(tiny_run[0], tmp_path / "run")
    return tmp_path / "run"


def _main(capsys, *argv):
    from libkd_keras.cli.main import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ------------------------------------------- 2. precompute --force killed between its renames


class Killed(BaseException):
    """What a SIGKILL leaves: no `except` and no `finally` below it runs."""


@pytest.mark.slow  # the tiny run it copies takes about 40 s to make, once per module
def test_a_kill_between_the_renames_of_precompute_force_keeps_the_new_store(run, capsys, monkeypatch):
    import os

    from libkd_keras.store import TeacherStore

    shard = sorted((run / "store" / "train").rglob("logits-*.tfrecord"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])  # the damage --force repairs
    real = os.rename

    def rename(source, target, *args, **kwargs):  # as ../shared/faults/kill_after_rename.py ".replaced-"
        real(source, target, *args, **kwargs)
        if ".replaced-" in str(target):
            raise Killed

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(Killed):
        _main(capsys, "precompute", "--out", run, "--force", "--split", "train")
    monkeypatch.undo()
    assert not (run / "store" / "train").exists()  # the old store aside, the new one not yet renamed in
    code, out = _main(capsys, "precompute", "--out", run, "--split", "train")
    assert code == 0, out
    TeacherStore.open(run / "store" / "train", verify=True)  # the new store, whole: the damaged shard is gone
    assert sorted(p.name for p in (run / "store").iterdir()) == ["analysis.json", "test", "train"]


def test_the_stored_teacher_error_names_the_cli_flag(tmp_path):
    from libkd_keras.store import StoreError, add_teachers, precompute
    from tests.store.helpers import TableTeacher, logit_table, make_split

    split, teacher = make_split(), TableTeacher(logit_table(10))
    store = precompute({"a": teacher}, split, tmp_path / "s")
    with pytest.raises(StoreError, match=r"overwrite=True.*`libkd precompute --force`"):
        add_teachers(store, {"a": teacher})


# --------------------------------------------------------- 6. a shard of another teacher


@pytest.mark.slow  # the tiny run it copies takes about 40 s to make, once per module
def test_distill_refuses_a_logits_shard_swapped_for_another_teachers_of_the_same_size(run, capsys):
    shards = sorted((run / "store" / "train" / "teachers").glob("*/logits-*.tfrecord"))
    assert len(shards) == 2 and shards[0].stat().st_size == shards[1].stat().st_size
    first, second = shards[0].read_bytes(), shards[1].read_bytes()
    assert first != second
    shards[0].write_bytes(second)  # what `cp` of the other teacher's shard leaves
    code, out = _main(capsys, "distill", "--out", run)
    assert code == 2 and "sha256 differs from the manifest" in out and "--force" in out
    assert not (run / "students" / "ensemble.keras").exists()  # nothing trained on the wrong teacher


# ----------------------------------------------------------------------- 8. damaged model files


@pytest.mark.slow  # the tiny run it copies takes about 40 s to make, once per module
def test_a_truncated_teacher_is_reported_and_trained_again_by_rerunning(run, capsys):
    model = run / "teachers" / "resnet_s0.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    code, out = _main(capsys, "precompute", "--out", run, "--force")
    assert code == 2
    assert "teachers/resnet_s0.keras is damaged" in out and "'libkd train-teacher'" in out  # why, and what to run
    assert "Not finished yet: teacher/resnet_s0" in out
    code, out = _main(capsys, "train-teacher", "--out", run)
    assert code == 0 and "[done] teacher resnet_s0" in out and "[skip] teacher resnet_s1" in out
    assert "not a whole .keras file" in out and "training it again" in out
    keras.saving.load_model(model, compile=False)  # whole again


@pytest.mark.slow  # the tiny run it copies takes about 40 s to make, once per module
def test_teachers_from_a_run_whose_teacher_is_truncated_copies_nothing(run, tiny_run, tmp_path, capsys):
    model = run / "teachers" / "resnet_s0.keras"
    model.write_bytes(model.read_bytes()[:1000])
    code, out = _main(capsys, "train-teacher", *tiny_run[1], "--teachers-from", run, "--out", tmp_path / "new")
    assert code == 2 and "resnet_s0 is damaged" in out and f"libkd train-teacher --out {run}" in out
    assert not (tmp_path / "new" / "teachers" / "resnet_s0.keras").exists()
    assert not (tmp_path / "new" / "steps" / "teacher-resnet_s0.json").exists()


@pytest.mark.slow  # the tiny run it copies takes about 40 s to make, once per module
def test_a_truncated_tflite_is_noticed_and_its_export_runs_again(run, capsys):
    from libkd_keras.pipeline.run_folder import RunFolder, load_run_config

    folder = RunFolder(run, load_run_config(run))
    tflite = run / "exports" / "ensemble" / "ensemble_float32.tflite"
    tflite.parent.mkdir(parents=True)
    tflite.write_bytes(np.random.default_rng(0).bytes(4096))
    (tflite.parent / "export_report.json").write_text("{}")
    outputs = ["exports/ensemble/export_report.json", "exports/ensemble/ensemble_float32.tflite"]
    folder.finish("export/ensemble", 1.0, outputs=outputs)
    assert folder.done("export/ensemble")
    tflite.write_bytes(tflite.read_bytes()[:3000])  # cut short
    assert not folder.done("export/ensemble")  # so `libkd export` (and `pipeline`) export it again
    assert folder.damaged("export/ensemble") == [
        "exports/ensemble/ensemble_float32.tflite is damaged: 3,000 bytes, 4,096 when it was written"
    ]
    _, out = _main(capsys, "evaluate", "--out", run)
    assert "ensemble_float32.tflite is damaged" in out and "'libkd export'" in out
