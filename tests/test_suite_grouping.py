"""The suite's `xdist_group`s hold: the tests that share one expensive fixture run on one worker.

The export tests share tiny models and their LiteRT files, and `tests/cli/test_pipeline.py` shares
one pipeline run, each marked `xdist_group` and run under `--dist loadgroup` (pyproject). pytest 9.2
with pytest-xdist 3.8 stopped grouping without a word (pytest-dev/pytest-xdist#1386): every worker
then built those fixtures itself and the suite took minutes longer. pyproject keeps pytest below
9.2 for that; this test fails if grouping is lost again.
"""

import os
import subprocess
import sys

import pytest

GROUPED = """
import os

import pytest

pytestmark = pytest.mark.xdist_group("shared")


@pytest.mark.parametrize("i", range(6))
def test_records_its_worker(i):
    with open(os.environ["LIBKD_WORKERS_FILE"], "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_an_xdist_group_runs_on_one_worker(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # its own config, whatever folders hold it
    workers_file = tmp_path / "workers.txt"
    command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "test_grouped.py"],
        cwd=tmp_path,
        env={**os.environ, "LIBKD_WORKERS_FILE": str(workers_file)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workers = workers_file.read_text().split()
    assert len(workers) == 6
    assert len(set(workers)) == 1, (
        f"the 6 tests of one xdist_group ran on workers {sorted(set(workers))}: this pytest "
        "(with pytest-xdist) no longer groups them; see pyproject's pin of pytest."
    )
