"""Fault injection: a tiny real `libkd pipeline` killed (SIGKILL) at chosen points, then rerun to success.

The points: while a teacher's backup is written (the weights cut in half, as a kill mid-write
leaves them), while the store is written, and while the student is exported. Each kill also
leaves the run folder's lock behind with a dead pid, which the next run must take over.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.conftest import TINY_CONFIG, write_image_tree

pytestmark = pytest.mark.slow

SETTINGS = [
    "teachers.rednet_seeds=[]",
    "teachers.epochs=3",
    'export.quantizations=["float32", "dynamic"]',
    "export.latency_runs=2",
]


def _command(root):
    config = root / "tiny.toml"
    config.write_text(TINY_CONFIG)
    argv = [
        sys.executable,
        "-m",
        "libkd_keras",
        "pipeline",
        "--config",
        str(config),
        "--dataset",
        str(write_image_tree(root / "data")),
        "--out",
        str(root / "run"),
    ]
    for setting in SETTINGS:
        argv += ["--set", setting]
    return argv


def _run_until(argv, log, reached, timeout=300):
    """Runs `argv`; SIGKILLs it as soon as `reached()` is true. Returns True if it was killed there."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if reached():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.005)
        if process.poll() is None:
            process.kill()
            pytest.fail(f"the run took over {timeout} s; see {log}")
    return False


def _any_file(folder, pattern="*"):
    return folder.exists() and any(p.is_file() for p in folder.rglob(pattern))


def test_a_run_killed_at_any_step_finishes_when_rerun(tmp_path):
    argv, run, log = _command(tmp_path), tmp_path / "run", tmp_path / "log.txt"
    backup = run / "teachers" / "resnet_s0.backup"

    # 1. While the teacher's second backup is written (the first is kept as latest.weights.h5.bkp).
    assert _run_until(argv, log, lambda: (backup / "latest.weights.h5.bkp").exists()), log.read_text()
    weights = backup / "latest.weights.h5"
    if weights.exists():
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    # 2. While the store is written.
    assert _run_until(argv, log, lambda: _any_file(run / "store", "*.tfrecord")), log.read_text()
    assert (run / "steps" / "teacher-resnet_s0.json").exists()  # the teacher finished before the kill
    # 3. While the student is exported.
    assert _run_until(argv, log, lambda: _any_file(run / "exports")), log.read_text()
    # 4. To the end.
    assert not _run_until(argv, log, lambda: False), log.read_text()

    text = log.read_text()
    assert "Traceback" not in text and "libkd: pipeline finished" in text
    for path in (
        "report.md",
        "students/ensemble.keras",
        "exports/ensemble/ensemble_dynamic.tflite",
        "store/train/manifest.json",
    ):
        assert (run / path).is_file(), path
    leftovers = [p for p in run.rglob("*") if p.is_file() and (".tmp" in p.name or p.name == ".libkd.lock")]
    assert leftovers == []
    assert not (run / "checkpoints").exists()  # every backup was used up, and the empty folder removed
