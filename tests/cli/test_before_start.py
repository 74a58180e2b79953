"""Nothing is written, moved or deleted before every check has passed.

Bad input beside a destructive flag (`--overwrite`, `precompute --force`, `--teachers-from`) leaves
the old run as it was; a config the images show to be wrong (the student's model, store.views) is
refused before any teacher trains; `--overwrite` keeps the old run aside until the new one has
finished a step. The teachers are the stand-in of `trained_by` (conftest.py): fast, and counted.
"""

import subprocess
import sys
import textwrap

import pytest

from libkd_keras.cli.main import EXIT_BAD_INPUT, EXIT_INTERRUPTED, main
from libkd_keras.pipeline import teachers as pipeline_teachers
from libkd_keras.pipeline.run_folder import LOCK_NAME, RunFolder, load_run_config
from tests.cli.conftest import write_image_tree


def _files(root):
    """`{relative path: bytes}` of every file under `root` (the lock aside)."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and p.name != LOCK_NAME)
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _asides(root):
    return sorted(p for p in root.parent.iterdir() if p.name.startswith(f"{root.name}.replaced-"))


def _refused(argv, capsys, *words):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def finished(tmp_path, options, trained_by, capsys):
    """A run folder whose two teachers are finished: `(run, its files)`."""
    run = tmp_path / "run"
    assert main(["train-teacher", *options, "--out", str(run)]) == 0
    capsys.readouterr()
    assert len(trained_by) == 2
    return run, _files(run)


def test_overwrite_with_bad_input_leaves_the_old_run_whole(tmp_path, options, finished, trained_by, capsys):
    run, before = finished
    other = ["train-teacher", *options, "--out", str(run), "--set", "teachers.learning_rate=0.05", "--overwrite"]
    _refused([*other, "--dataset", str(tmp_path / "nowhere")], capsys, "does not exist")
    _refused([*other, "--set", "student.model={dim=32, num_heads=3}"], capsys, "multiple of `num_heads`")
    _refused([*other, "--set", "store.views=200"], capsys, "store.views = 200")
    assert _files(run) == before and not _asides(run)
    assert len(trained_by) == 2


def test_teachers_from_with_bad_input_leaves_the_old_run_whole(tmp_path, options, finished, trained_by, capsys):
    run, before = finished
    other = ["pipeline", *options, "--out", str(run), "--set", "student.alpha=0.3", "--overwrite"]
    # its own folder: --overwrite would move the teachers it is asked to copy
    _refused([*other, "--teachers-from", str(run)], capsys, "this run's own folder")
    _refused([*other, "--teachers-from", str(tmp_path / "nowhere")], capsys, "not a libkd run folder")
    source = tmp_path / "source"
    assert main(["train-teacher", *options, "--out", str(source), "--seed", "1"]) == 0
    capsys.readouterr()
    _refused([*other, "--teachers-from", str(source)], capsys, "run.seed: 1 -> 0")
    assert _files(run) == before and not _asides(run)
    # a source whose teachers saw other images: refused once the data is loaded, still before the folder is touched
    images = write_image_tree(tmp_path / "other-data", classes=2, train=4, test=2, seed=1)
    assert main(["train-teacher", *options[:2], "--dataset", str(images), "--out", str(source), "--overwrite"]) == 0
    capsys.readouterr()
    _refused([*other, "--teachers-from", str(source)], capsys, "fingerprints differ")
    assert _files(run) == before and not _asides(run)


def test_force_with_a_damaged_teacher_keeps_the_store_and_its_markers(options, finished, trained_by):
    run, _ = finished
    config = load_run_config(run)
    folder = RunFolder(run, config)
    for split in ("train", "test"):  # a finished store (its contents do not matter here)
        (run / "store" / split).mkdir(parents=True)
        (run / "store" / split / "manifest.json").write_text(f'{{"split": "{split}"}}')
        folder.finish(f"store/{split}", 1.0, outputs=[f"store/{split}/manifest.json"])
    before = _files(run)
    # The stand-in teachers are not Keras files: the rebuild fails when it loads the first one.
    try:
        code = main(["precompute", *options, "--out", str(run), "--force"])
    except Exception:  # noqa: BLE001 - whatever loading a damaged file raises; the run is what is checked
        code = None
    assert code != 0
    assert folder.done("store/train") and folder.done("store/test")
    assert _files(run) == before


@pytest.mark.parametrize(
    "override, words",
    [
        ('student.model={dim="a"}', ["The student cannot be built", "`dim`", "'a'"]),
        ("student.model={dim=32, num_heads=3}", ["The student cannot be built", "multiple of `num_heads`=3"]),
        ("store.views=200", ["store.views = 200", "[1, 162]", "Lower store.views"]),
    ],
)
def test_a_config_the_images_refuse_fails_before_any_teacher(tmp_path, options, trained_by, capsys, override, words):
    run = tmp_path / "run"
    _refused(["pipeline", *options, "--out", str(run), "--set", override], capsys, *words)
    assert trained_by == [] and not run.exists()  # no teacher trained, nothing written


def test_overwrite_keeps_the_old_run_aside_until_the_new_one_finishes_a_step(
    tmp_path, options, finished, trained_by, capsys, monkeypatch
):
    run, before = finished
    (run / "notes.txt").write_text("mine")  # not libkd's: stays in the run folder
    train = pipeline_teachers.train_teacher

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_teachers, "train_teacher", interrupted)
    argv = ["train-teacher", *options, "--out", str(run), "--set", "teachers.learning_rate=0.05", "--overwrite"]
    assert main(argv) == EXIT_INTERRUPTED
    (aside,) = _asides(run)
    assert f"aside to {str(aside)!r}" in capsys.readouterr().out
    assert _files(aside) == before  # the old run, whole, to rename back
    assert (run / "notes.txt").read_text() == "mine" and (run / "replaced.json").exists()
    # The new run resumes (no --overwrite needed: the folder holds its config) and finishes a step: the old run goes.
    monkeypatch.setattr(pipeline_teachers, "train_teacher", train)
    assert main(argv[:-1]) == 0
    out = capsys.readouterr().out
    assert f"deleted the run that --overwrite moved aside to {str(aside)!r}" in out
    assert not aside.exists() and not (run / "replaced.json").exists()
    assert "learning_rate = 0.05" in (run / "config.toml").read_text() and (run / "notes.txt").exists()
    assert not (run / LOCK_NAME).exists()


def test_a_move_aside_cut_short_is_undone_on_the_next_open(tmp_path, options, finished, trained_by, capsys):
    """A kill between the renames of a move aside: the next open puts the moved entries back first."""
    run, before = finished
    aside = tmp_path / "run.replaced-20260101-000000"
    aside.mkdir()
    (run / "replaced.json").write_text(f'{{"replaced": [{{"path": "{aside}", "state": "moving"}}]}}')
    (run / "teachers").rename(aside / "teachers")  # moved; config.toml and steps/ not yet
    assert main(["train-teacher", *options, "--out", str(run)]) == 0  # the same run: resumed, nothing trained
    assert "[skip] teacher resnet_s0" in capsys.readouterr().out and len(trained_by) == 2
    assert not aside.exists() and not (run / "replaced.json").exists()
    assert _files(run) == before


def test_a_missing_data_path_is_refused_before_tensorflow_is_imported(tmp_path):
    out, nowhere = str(tmp_path / "run"), str(tmp_path / "nowhere")
    script = textwrap.dedent(
        f"""
        import sys
        from libkd_keras.cli.main import main
        code = main(["pipeline", "--preset", "quick", "--dataset", {nowhere!r}, "--out", {out!r}])
        print(code, "tensorflow" in sys.modules, "keras" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == [str(EXIT_BAD_INPUT), "False", "False"], done.stdout + done.stderr
    assert "does not exist" in done.stderr and not (tmp_path / "run").exists()
