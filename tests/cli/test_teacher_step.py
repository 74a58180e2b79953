"""The pipeline's teacher step around `train_teacher`: `--teachers-from RUN` (`teachers.reuse_from`), non-chief
workers, and the precision each family trains at.

The teachers here are records written by a stand-in for `train_teacher` (fast); the round trip with real
tiny teachers and a store built from copied ones is in test_precompute_workers.py, real multi-worker teacher
training in tests/distribute/test_multi_worker.py.
"""

import json

from libkd_keras import distribute, precision
from libkd_keras.cli.main import EXIT_BAD_INPUT, main
from libkd_keras.pipeline.run_folder import RunFolder, load_run_config
from tests.cli.conftest import write_image_tree


def _train(options, out, *extra):
    return main(["train-teacher", *options, "--out", str(out), *extra])


def test_finished_teachers_are_copied_not_trained(tmp_path, options, trained_by, capsys):
    assert _train(options, tmp_path / "a") == 0
    assert len(trained_by) == 2
    capsys.readouterr()
    # another run, the same teachers: its students differ, which the teachers do not depend on
    assert _train(options, tmp_path / "b", "--teachers-from", str(tmp_path / "a"), "--set", "student.alpha=0.3") == 0
    out = capsys.readouterr().out
    assert len(trained_by) == 2, "a teacher was trained again instead of copied"
    b = RunFolder(tmp_path / "b", load_run_config(tmp_path / "b"))
    for name in ("resnet_s0", "rednet_s0"):
        assert f"[done] teacher {name} (copied from {tmp_path / 'a'})" in out
        assert b.done(f"teacher/{name}")
        for suffix in (".keras", ".json"):
            copied = (tmp_path / "b" / "teachers" / f"{name}{suffix}").read_bytes()
            assert copied == (tmp_path / "a" / "teachers" / f"{name}{suffix}").read_bytes()
    assert load_run_config(tmp_path / "b")["teachers"]["reuse_from"] == str(tmp_path / "a")
    assert _train(options, tmp_path / "b", "--teachers-from", str(tmp_path / "a"), "--set", "student.alpha=0.3") == 0
    assert "[skip] teacher resnet_s0" in capsys.readouterr().out  # a rerun resumes like any other
    assert _train(options, tmp_path / "b", "--set", "student.alpha=0.3") == 0  # also without the flag
    assert "[skip] teacher rednet_s0" in capsys.readouterr().out and len(trained_by) == 2


def _refused(options, out, capsys, *extra):
    code = _train(options, out, *extra)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert not (out / "teachers" / "resnet_s0.keras").exists()  # nothing copied
    return err


def test_other_teacher_settings_are_refused_with_the_difference(tmp_path, options, trained_by, capsys):
    assert _train(options, tmp_path / "a") == 0
    source = ["--teachers-from", str(tmp_path / "a")]
    err = _refused(options, tmp_path / "b", capsys, *source, "--set", "teachers.learning_rate=0.05")
    assert "teachers.learning_rate: 0.02 -> 0.05" in err and 'reuse_from = ""' in err
    err = _refused(options, tmp_path / "c", capsys, *source, "--seed", "1")
    assert "run.seed: 0 -> 1" in err
    err = _refused(options, tmp_path / "d", capsys, *source, "--precision", "mixed_bfloat16")
    assert "trained in float32" in err and "--precision float32" in err
    assert len(trained_by) == 2


def test_other_images_are_refused(tmp_path, options, trained_by, capsys):
    assert _train(options, tmp_path / "a") == 0
    other = write_image_tree(tmp_path / "other", classes=2, train=4, test=2, seed=1)
    other_options = [options[0], options[1], "--dataset", str(other)]
    err = _refused(other_options, tmp_path / "b", capsys, "--teachers-from", str(tmp_path / "a"))
    assert "fingerprints differ" in err and "teacher train split" in err


def test_a_source_without_the_teacher_is_refused(tmp_path, options, trained_by, capsys):
    err = _refused(options, tmp_path / "b", capsys, "--teachers-from", str(tmp_path / "nowhere"))
    assert "not a libkd run folder" in err
    assert _train(options, tmp_path / "a", "--set", "teachers.rednet_seeds=[]") == 0  # ResNet only
    err = _refused(options, tmp_path / "c", capsys, "--teachers-from", str(tmp_path / "a"))
    assert "teachers.rednet_seeds: [] -> [0]" in err
    assert not trained_by[1:], "only the source run trained"


def test_a_non_chief_worker_keeps_its_copy_of_the_teacher_in_its_run_folder(tmp_path, options, trained_by, monkeypatch):
    """`train-teacher --strategy multi_worker` on worker 1: `train_teacher` writes beside the run's teachers/
    (the chief owns teachers/ in the Python API); the step then installs that copy in the worker's own run folder."""
    monkeypatch.setattr(distribute, "is_chief", lambda strategy=None: False)
    monkeypatch.setattr(distribute, "worker_task", lambda strategy=None: ("worker", 1))
    assert _train(options, tmp_path / "w1") == 0
    own = tmp_path / "w1" / "teachers-workertemp_worker_1"
    assert {out for out, _ in trained_by} == {str(own)}
    folder = RunFolder(tmp_path / "w1", load_run_config(tmp_path / "w1"))
    for name in ("resnet_s0", "rednet_s0"):
        assert folder.done(f"teacher/{name}")
        assert folder.teacher_model(name).read_bytes() == (own / f"{name}.keras").read_bytes()


def test_each_teacher_trains_at_its_familys_precision(tmp_path, options, trained_by, monkeypatch):
    """On an AVX512-BF16 CPU (no AMX), `--precision auto` trains the ResNet teacher in bf16, the RedNet in float32."""
    monkeypatch.setattr(precision, "bf16_hardware", lambda: frozenset({"avx512_bf16"}))
    assert _train(options, tmp_path / "a", "--precision", "auto") == 0
    records = {
        n: json.loads((tmp_path / "a" / "teachers" / f"{n}.json").read_text()) for n in ("resnet_s0", "rednet_s0")
    }
    assert {n: r["precision"] for n, r in records.items()} == {"resnet_s0": "mixed_bfloat16", "rednet_s0": "float32"}


def test_workers_that_disagree_on_a_finished_teacher_stop_with_one_message(
    tmp_path, options, trained_by, capsys, monkeypatch
):
    """Each step asks `same_on_every_worker` (one collective under MWMS) before it skips or runs; a
    disagreement (a worker whose run folder lost the teacher) is exit 2, and nothing is trained or removed."""
    from libkd_keras.pipeline import steps

    assert _train(options, tmp_path / "a") == 0
    asked = []

    def peers_lost_it(flag, what, fix="", strategy=None):
        asked.append((flag, what))
        if flag:
            raise distribute.WorkersDisagree(f"The workers disagree on {what}: yes on worker(s) [0], no on [1]. {fix}")
        return flag

    monkeypatch.setattr(steps, "same_on_every_worker", peers_lost_it)
    before = sorted(p.name for p in (tmp_path / "a" / "teachers").iterdir())
    capsys.readouterr()
    assert _train(options, tmp_path / "a") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert asked == [(True, "whether step teacher/resnet_s0 is finished")]
    assert "error: The workers disagree on whether step teacher/resnet_s0 is finished" in err
    assert "Copy the run folder of a worker that finished it (the chief's)" in err
    assert len(trained_by) == 2 and sorted(p.name for p in (tmp_path / "a" / "teachers").iterdir()) == before
