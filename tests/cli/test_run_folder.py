"""The run folder: one process at a time (a lock with stale-lock recovery), stale temporaries removed."""

import json
import os
import subprocess
import sys

import pytest

from libkd_keras.cli.main import EXIT_BAD_INPUT, main
from libkd_keras.pipeline.config import resolve_config
from libkd_keras.pipeline.run_folder import LOCK_NAME, RunFolder, RunFolderLocked


@pytest.fixture
def config():
    return resolve_config(preset="quick")


def _lock_of(pid, root):
    root.mkdir(parents=True, exist_ok=True)
    import socket

    (root / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "earlier"}))


def test_a_folder_is_locked_while_open_and_released_on_close(tmp_path, config):
    with RunFolder.open(tmp_path / "run", config) as folder:
        owner = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid()
        RunFolder.open(tmp_path / "run", config).close()  # the same process may reopen it
        assert (tmp_path / "run" / LOCK_NAME).exists()
        assert folder.done("teacher/x") is False
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_second_live_process_is_refused_with_its_pid(tmp_path, config):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_of(other.pid, tmp_path / "run")
        with pytest.raises(RunFolderLocked, match=f"pid {other.pid}") as error:
            RunFolder.open(tmp_path / "run", config)
        assert "--out" in str(error.value) and "overwrite=True" not in str(error.value)
        assert not (tmp_path / "run" / "config.toml").exists()  # nothing written under another's lock
    finally:
        other.kill()
        other.wait()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path, config):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_of(dead.pid, tmp_path / "run")
    with RunFolder.open(tmp_path / "run", config):
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_the_cli_refuses_a_locked_folder_in_one_paragraph(tmp_path, tiny_config, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_of(other.pid, tmp_path / "run")
        code = main(["pipeline", "--config", str(tiny_config), "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1
        assert f"pid {other.pid}" in err and "in use by another libkd process" in err
    finally:
        other.kill()
        other.wait()


def test_opening_removes_temporaries_a_kill_left_behind(tmp_path, config):
    RunFolder.open(tmp_path / "run", config).close()
    steps = tmp_path / "run" / "steps"
    steps.mkdir()
    stale = [steps / ".teacher-resnet26_s0.json.ab12cd_9.tmp", tmp_path / "run" / ".report.md.zz99yy00.tmp.png"]
    for path in stale:
        path.write_text("half")
    (steps / "teacher-resnet26_s0.json").write_text("{}")
    with RunFolder.open(tmp_path / "run", config):
        assert not any(p.exists() for p in stale)
        assert (steps / "teacher-resnet26_s0.json").exists()
