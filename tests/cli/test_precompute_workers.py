"""`libkd precompute --worker-index I --num-workers N` and `--finalize`: the run's store written by several workers."""

import shutil

import numpy as np
import pytest

from libkd_keras.cli.main import EXIT_BAD_INPUT, EXIT_INTERRUPTED, main
from libkd_keras.pipeline import run_folder
from libkd_keras.pipeline.run_folder import RunFolder, load_run_config
from libkd_keras.store import TeacherStore, write
from tests.cli.conftest import TINY_CONFIG, write_image_tree

# The tests with trained teachers share one run folder (copied per test): one xdist worker trains it once.
shares_teachers = pytest.mark.xdist_group("precompute_workers")

SHARD_SIZE = 8  # 32 train images -> 4 shards, 12 test images -> 2: both workers get some


@pytest.fixture(autouse=True)
def small_shards(monkeypatch):
    # write_share and rebuild_store take write_store's options, with its defaults (store.write.write_options)
    monkeypatch.setitem(write.write_store.__kwdefaults__, "shard_size", SHARD_SIZE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder whose two tiny teachers are trained (no store yet), and the options of its commands."""
    root = tmp_path_factory.mktemp("workers")
    data = write_image_tree(root / "data", classes=2, train=16, test=6)
    config = root / "tiny.toml"
    config.write_text(TINY_CONFIG)
    options = ["--config", str(config), "--dataset", str(data)]
    assert main(["train-teacher", *options, "--out", str(root / "run")]) == 0
    return root / "run", options


def _copy(trained, tmp_path, name="run"):
    run, options = trained
    shutil.copytree(run, tmp_path / name)
    return tmp_path / name, [*options, "--out", str(tmp_path / name)]


def _run(argv, capsys, code=0):
    got = main(argv)
    captured = capsys.readouterr()
    assert got == code, captured.out + captured.err
    return captured.out, captured.err


def _worker(index, count=2):
    return ["--worker-index", str(index), "--num-workers", str(count)]


def _done(run, step):
    return RunFolder(run, load_run_config(run)).done(step)


@pytest.mark.slow
@shares_teachers
def test_two_workers_make_the_store_of_one_process(trained, tmp_path, capsys, monkeypatch):
    one, one_options = _copy(trained, tmp_path, "one")
    _run(["precompute", *one_options], capsys)
    many, options = _copy(trained, tmp_path, "many")

    def no_lock(path):
        raise AssertionError("a precompute worker took the run folder's lock")

    monkeypatch.setattr(run_folder, "_take_lock", no_lock)  # workers run side by side: none takes the lock
    out, _ = _run(["precompute", *options, *_worker(0)], capsys)
    for which in ("train", "test"):
        line = f"[share] store {which}: worker 0 of 2 wrote its share; 1 of 2 shares still missing (worker(s) 1)"
        assert line in out
        assert not _done(many, f"store/{which}") and not (many / "store" / which / "manifest.json").exists()
    assert "[done]" not in out and not _done(many, "store/analysis")

    out, _ = _run(["precompute", *options, *_worker(1)], capsys)
    assert "[done] store train" in out and "[done] store test" in out and "[done] store analysis" in out
    for which in ("train", "test"):
        assert _done(many, f"store/{which}")
        single = TeacherStore.open(one / "store" / which)
        store = TeacherStore.open(many / "store" / which)  # verified: sizes and sha256 of every shard
        assert len(store.manifest["examples"]) == {"train": 4, "test": 2}[which]
        assert store.teacher_names == single.teacher_names and len(store.teacher_names) == 2
        np.testing.assert_array_equal(store.ids, single.ids)
        np.testing.assert_array_equal(store.labels, single.labels)
        np.testing.assert_allclose(store.logits(), single.logits(), rtol=1e-5, atol=1e-5)
        marker, single_marker = (RunFolder(r, None).finished(f"store/{which}") for r in (many, one))
        assert marker["outputs"] == single_marker["outputs"] == [f"store/{which}/manifest.json"]
    monkeypatch.undo()
    out, _ = _run(["precompute", *options], capsys)  # finished, as a one-process store is
    assert "[skip] store train" in out and "[skip] store test" in out and "[skip] store analysis" in out


@pytest.mark.slow
@shares_teachers
def test_a_worker_alone_marks_nothing_and_finalize_names_the_missing_share(trained, tmp_path, capsys, monkeypatch):
    run, options = _copy(trained, tmp_path)
    out, _ = _run(["precompute", *options, *_worker(1), "--split", "train"], capsys)
    assert "[share] store train: worker 1 of 2 wrote its share; 1 of 2 shares still missing (worker(s) 0)" in out
    assert "finalize" in out and not _done(run, "store/train")

    _, err = _run(["precompute", *options, "--finalize", "--split", "train"], capsys, EXIT_BAD_INPUT)
    assert "Cannot finalize store train" in err and "share-00000-of-00002.json" in err and "missing" in err
    assert "--worker-index I --num-workers N" in err and len(err.strip().splitlines()) == 1
    _, err = _run(["precompute", *options, "--split", "train"], capsys, EXIT_BAD_INPUT)
    assert "several workers" in err and "--finalize" in err  # one process does not write over the shares

    def killed(path):
        raise KeyboardInterrupt  # worker 0 dies right after writing its share

    monkeypatch.setattr(write, "finalize_store", killed)
    _run(["precompute", *options, *_worker(0), "--split", "train"], capsys, EXIT_INTERRUPTED)
    monkeypatch.undo()
    assert not _done(run, "store/train") and not (run / "store" / "train" / "manifest.json").exists()
    out, _ = _run(["precompute", *options, "--finalize", "--split", "train"], capsys)
    assert "[done] store train" in out and _done(run, "store/train")
    assert TeacherStore.open(run / "store" / "train").num_examples == 32
    out, _ = _run(["precompute", *options, "--finalize", "--split", "train"], capsys)
    assert "[skip] store train" in out


@pytest.mark.slow
@shares_teachers
def test_a_worker_is_refused_while_another_command_holds_the_folder(trained, tmp_path, capsys):
    run, options = _copy(trained, tmp_path)
    with RunFolder.open(run, load_run_config(run)):
        _, err = _run(["precompute", *options, *_worker(0)], capsys, EXIT_BAD_INPUT)
    assert "in use by another libkd command" in err
    assert not (run / "store").exists()


def _bad(argv, capsys, *words):
    got = main(argv)
    err = capsys.readouterr().err
    assert got == EXIT_BAD_INPUT, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1  # one paragraph
    for word in words:
        assert word in err, err


@pytest.mark.slow
@shares_teachers
def test_a_run_with_teachers_from_another_stores_the_same_logits(trained, tmp_path, capsys):
    """`--teachers-from`: the copied teachers load and label the data exactly as in the run that trained them."""
    one, one_options = _copy(trained, tmp_path, "one")
    _run(["precompute", *one_options], capsys)
    _, options = trained
    other = tmp_path / "other"
    other_options = [*options, "--out", str(other), "--teachers-from", str(one)]
    out, _ = _run(["train-teacher", *other_options], capsys)
    assert "[....] teacher" not in out and out.count("(copied from") == 2  # nothing trained
    _run(["precompute", *other_options], capsys)
    for which in ("train", "test"):
        mine, theirs = TeacherStore.open(other / "store" / which), TeacherStore.open(one / "store" / which)
        assert mine.teacher_names == theirs.teacher_names
        for name in theirs.teacher_names:
            np.testing.assert_array_equal(mine.logits([name]), theirs.logits([name]))


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--worker-index", "0"], ["--worker-index needs --num-workers"]),
        (["--num-workers", "2"], ["--num-workers needs --worker-index"]),
        (_worker(2), ["--worker-index must be in [0, 2)", "got 2"]),
        (_worker(-1), ["--worker-index must be in [0, 2)", "got -1"]),
        (_worker(0, 0), ["--num-workers must be >= 1", "got 0"]),
        ([*_worker(0), "--force"], ["--force cannot be combined with --worker-index/--num-workers"]),
        (["--finalize", "--force"], ["--force cannot be combined with --finalize"]),
        ([*_worker(0), "--finalize"], ["--finalize cannot be combined with --worker-index/--num-workers"]),
        ([*_worker(0), "--overwrite"], ["--overwrite cannot be combined with --worker-index/--num-workers"]),
    ],
)
def test_bad_worker_flags_exit_2_naming_the_flag(tmp_path, tiny_config, capsys, flags, words):
    out = tmp_path / "run"
    _bad(["precompute", "--config", str(tiny_config), "--out", str(out), *flags], capsys, *words)
    assert not out.exists()


@pytest.mark.parametrize("flags", [_worker(0), ["--finalize"]])
def test_workers_need_the_run_folder_of_the_teachers(tmp_path, tiny_config, capsys, flags):
    out = tmp_path / "nothing"
    _bad(["precompute", "--config", str(tiny_config), "--out", str(out), *flags], capsys, "not a libkd run folder")
    assert not out.exists()
