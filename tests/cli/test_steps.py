"""The run protocol written once (`pipeline/steps.py`): a `Step` is skipped when finished, refused before its
needs, leaves no marker when it fails, and runs again with a notice when its model file changed."""

import json

import pytest

from libkd_keras.pipeline.config import resolve_config
from libkd_keras.pipeline.run_folder import RunFolder
from libkd_keras.pipeline.steps import Made, Step, StepOrderError, StepRunner


@pytest.fixture
def runner(tmp_path):
    said = []
    with RunFolder.open(tmp_path / "run", resolve_config(preset="quick")) as folder:
        steps = StepRunner(folder, say=said.append)
        steps.said = said
        yield steps


def _teacher_step(folder, calls, name="t", fail=False):
    """A step "teacher/<name>" that writes teachers/<name>.keras (bytes standing for a model) and its record."""

    def run(announce):
        calls.append(name)
        announce(": 1 epochs on 10 images")
        folder.teachers.mkdir(exist_ok=True)
        folder.teacher_model(name).write_bytes(b"weights of " + name.encode() * len(calls))
        if fail:
            raise RuntimeError("training failed")
        folder.teacher_json(name).write_text("{}")
        return Made(summary={"top1": 0.5}, detail="top-1 50.0%")

    makes = (f"teachers/{name}.keras", f"teachers/{name}.json")
    return Step(f"teacher/{name}", run, makes=makes)


def test_a_step_runs_once_then_is_skipped(runner):
    calls = []
    step = _teacher_step(runner.folder, calls)
    made = runner.run_step(step)
    assert made.detail == "top-1 50.0%" and calls == ["t"]
    assert runner.said[0] == "[....] teacher t: 1 epochs on 10 images"
    assert runner.said[1].startswith("[done] teacher t  ") and runner.said[1].endswith("  top-1 50.0%")
    marker = json.loads(runner.folder.marker("teacher/t").read_text())
    assert marker["outputs"] == ["teachers/t.keras", "teachers/t.json"]
    assert marker["summary"]["top1"] == 0.5 and "cpu_seconds" in marker["summary"]
    assert marker["files"]["teachers/t.keras"]["bytes"] == runner.folder.teacher_model("t").stat().st_size
    assert runner.run_step(step) is None and calls == ["t"]  # finished: not run again
    assert runner.said[-1].startswith("[skip] teacher t  (finished earlier in ")


def test_a_step_whose_needs_are_not_finished_names_the_command_that_makes_them(runner):
    calls = []
    step = Step("store/train", lambda announce: calls.append(1), needs=("teacher/a", "teacher/b"))
    with pytest.raises(StepOrderError, match=r"Not finished yet: teacher/a, teacher/b\. Run 'libkd train-teacher'"):
        runner.run_step(step)
    assert calls == [] and not runner.folder.marker("store/train").exists()
    runner.run_step(_teacher_step(runner.folder, [], "a"))
    with pytest.raises(StepOrderError, match=r"Not finished yet: teacher/b\. "):
        runner.run_step(step)
    mixed = Step("student/s", lambda announce: None, needs=("store/train", "evaluate/x"))
    with pytest.raises(StepOrderError, match=r"Run 'libkd precompute' then 'libkd evaluate' with the same options"):
        runner.run_step(mixed)


def test_a_step_that_fails_leaves_no_marker_and_runs_again(runner):
    calls = []
    with pytest.raises(RuntimeError, match="training failed"):
        runner.run_step(_teacher_step(runner.folder, calls, fail=True))
    assert not runner.folder.marker("teacher/t").exists() and not runner.folder.done("teacher/t")
    assert not any(line.startswith("[done]") for line in runner.said)
    runner.run_step(_teacher_step(runner.folder, calls))
    assert calls == ["t", "t"] and runner.folder.done("teacher/t")


def test_a_step_not_finished_here_writes_no_marker(runner):
    runner.run_step(Step("store/train", lambda announce: None))  # e.g. a worker whose share left the store open
    assert not runner.folder.marker("store/train").exists() and runner.said == []


def test_a_changed_model_file_is_noticed_once_and_the_step_runs_again(runner):
    calls = []
    runner.run_step(_teacher_step(runner.folder, calls))
    model = runner.folder.teacher_model("t")
    model.write_bytes(model.read_bytes()[:-3])  # cut short since its marker was written
    runner.notice_damaged()  # what each command does first (cli/main.py)
    runner.run_step(_teacher_step(runner.folder, calls))
    notices = [line for line in runner.said if "notice" in line]
    assert len(notices) == 1 and "teachers/t.keras is damaged" in notices[0]
    assert "Step teacher/t counts as not finished: 'libkd train-teacher'" in notices[0]
    assert calls == ["t", "t"] and runner.folder.done("teacher/t")  # made again, its new file recorded
    model.unlink()
    runner.noticed.clear()
    runner.run_step(_teacher_step(runner.folder, calls))  # no notice up front: the step gives it
    assert "teachers/t.keras is missing" in [line for line in runner.said if "notice" in line][-1]
    assert calls == ["t", "t", "t"] and runner.folder.done("teacher/t")


def test_redo_runs_a_finished_step_and_keeps_its_marker_until_the_new_one(runner):
    calls = []
    runner.run_step(_teacher_step(runner.folder, calls))
    before = json.loads(runner.folder.marker("teacher/t").read_text())

    def failing(announce):
        raise RuntimeError("rebuild failed")

    with pytest.raises(RuntimeError):
        runner.run_step(Step("teacher/t", failing, redo=True))
    assert json.loads(runner.folder.marker("teacher/t").read_text()) == before  # the old marker stays
    step = _teacher_step(runner.folder, calls)
    runner.run_step(Step(step.name, step.run, makes=step.makes, redo=True))
    assert calls == ["t", "t"] and runner.folder.done("teacher/t")


def test_a_step_without_a_marker_runs_every_time(runner):
    calls = []
    step = Step("analyze", lambda announce: calls.append(1) or Made(detail="cka/"), marker=False)
    runner.run_step(step)
    runner.run_step(step)
    assert calls == [1, 1] and not runner.folder.marker("analyze").exists()
    assert runner.said[-1].startswith("[done] analyze  ") and runner.said[-1].endswith("  cka/")
