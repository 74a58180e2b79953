"""The pipeline end to end on generated images with tiny models, and resuming after interruptions."""

import json

import keras
import pytest

from libkd_keras import training
from libkd_keras.cli.config import resolve_config
from libkd_keras.cli.main import EXIT_INTERRUPTED, main
from libkd_keras.pipeline.run_folder import RunFolder
from tests.cli.conftest import TINY_CONFIG, write_image_tree

# One worker runs the whole module: the tests share the run folder of one pipeline run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("quick_pipeline")]

SECTIONS = (
    "## Teachers",
    "### Ensembles",
    "### Disagreement",
    "## Students",
    "## Training curves",
    "## Edge: LiteRT export",
    "## Steps",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `libkd pipeline --preset quick` on generated data with tiny models, run once for the module.

    Returns the run folder, the command line and what the first run printed, so every test below
    works whichever of them runs first.
    """
    root = tmp_path_factory.mktemp("quick")
    data = write_image_tree(root / "data")
    config = root / "tiny.toml"
    config.write_text(TINY_CONFIG)
    argv = [
        "pipeline",
        "--preset",
        "quick",
        "--config",
        str(config),
        "--dataset",
        str(data),
        "--out",
        str(root / "run"),
    ]
    out = _capture_main(argv)
    return root / "run", argv, out


def _capture_main(argv):
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    assert code == 0, stdout.getvalue() + stderr.getvalue()
    return stdout.getvalue()


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    return captured.out


def test_pipeline_writes_every_artifact_and_the_report(quick_run):
    run, argv, out = quick_run
    for step in (
        "teacher resnet_s0",
        "teacher rednet_s0",
        "store train",
        "store test",
        "store analysis",
        "student baseline",
        "student ensemble",
        "evaluate baseline",
        "evaluate ensemble",
        "export ensemble",
    ):
        assert f"[done] {step}  " in out
    assert "[data] train: 120 images 16x16, 3 classes" in out
    expected = [
        "config.toml",
        "teachers/resnet_s0.keras",
        "teachers/resnet_s0.json",
        "teachers/rednet_s0.keras",
        "store/train/manifest.json",
        "store/test/manifest.json",
        "store/analysis.json",
        "students/baseline.keras",
        "students/ensemble.keras",
        "exports/ensemble/export_report.json",
        "report.md",
        "plots/disagreement.png",
        "plots/teacher_curves.png",
        "plots/student_curves.png",
        "plots/student_accuracy_time.png",
        "plots/students.png",
        "students/baseline.predictions.npz",  # each student's class per test image, for the paired test
        "students/ensemble.predictions.npz",
        "plots/edge_ensemble.png",
    ]
    expected += [
        f"exports/ensemble/ensemble_{q}.tflite" for q in ("float32", "float16", "dynamic", "int8", "int8_mixed")
    ]
    for path in expected:
        assert (run / path).is_file(), path
    assert list((run / "logs" / "student_ensemble" / "train").iterdir())  # TensorBoard events
    assert not (run / "checkpoints").exists()  # backups, and their folder, are removed when training ends
    student = json.loads((run / "students" / "ensemble.json").read_text())
    assert student["teachers"] == ["resnet_s0", "rednet_s0"] and student["distillation"] == "hard"
    assert len(student["history"]["loss"]) == 1 and 0.0 <= student["evaluation"]["dist_top1"] <= 1.0
    assert keras.saving.load_model(run / "students" / "ensemble.keras").distillation
    report = (run / "report.md").read_text()
    for section in SECTIONS:
        assert section in report
    assert "not run" not in report
    assert "| ensemble | resnet_s0, rednet_s0 | ✓ | hard |" in report
    ensemble_row = next(line for line in report.splitlines() if line.startswith("| ensemble | resnet_s0"))
    assert "McNemar p = " in ensemble_row and " vs " in ensemble_row  # the gain tested on the same 30 images
    train_targets = json.loads((run / "store" / "analysis.json").read_text())["train_targets"]
    assert train_targets["num_examples"] == 120 and train_targets["temperature"] == 1.0
    assert [r["name"] for r in train_targets["rows"]] == ["resnet_s0", "rednet_s0", "all 2 teachers"]
    assert all(0.0 <= r["agreement"] <= 1.0 and 0.0 < r["true_class_probability"] < 1.0 for r in train_targets["rows"])
    assert "### Stored targets on the student's training images" in report
    assert f"| resnet_s0 | resnet_s0 | {100 * train_targets['rows'][0]['agreement']:.2f} |" in report


def test_rerun_skips_finished_steps_and_retrains_only_what_is_missing(quick_run, capsys):
    run, argv, _ = quick_run
    teacher_files = sorted((run / "teachers").glob("*_s0.*"))
    stamps = {p: p.stat().st_mtime_ns for p in teacher_files}
    out = _run(argv, capsys)  # nothing left to do
    assert "[done] teacher" not in out and "[done] student" not in out and "[done] export" not in out
    assert "[skip] teacher resnet_s0" in out and "[skip] export ensemble" in out
    # Lose the baseline student (as if the run had stopped before it): only it is trained again.
    (run / "steps" / "student-baseline.json").unlink()
    (run / "students" / "baseline.keras").unlink()
    out = _run(argv, capsys)
    assert "[done] student baseline" in out and "[done] evaluate baseline" in out
    assert "[skip] teacher resnet_s0" in out and "[skip] student ensemble" in out and "[skip] store train" in out
    assert {p: p.stat().st_mtime_ns for p in teacher_files} == stamps
    # A run folder from before predictions were kept: its evaluate step runs again, nothing is retrained.
    (run / "students" / "ensemble.predictions.npz").unlink()
    out = _run(argv, capsys)
    assert "[done] evaluate ensemble" in out and "[skip] student ensemble" in out and "[skip] evaluate baseline" in out
    assert (run / "students" / "ensemble.predictions.npz").is_file()


def test_ablate_and_analyze_add_their_sections(quick_run, capsys):
    run, argv, _ = quick_run
    options = argv[1:]
    out = _run(["ablate", *options, "--recipes", "baseline", "--ablation-epochs", "1"], capsys)
    assert (run / "ablation" / "ablation.md").is_file() and "[done] ablation" in out
    rows = json.loads((run / "ablation" / "ablation.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert {r["experiment"] for r in rows if r["status"] == "done"} >= {
        "baseline",
        "t4-single-resnet",
        "t4-single-rednet",
    }
    out = _run(["analyze", str(run), "--max-images", "30"], capsys)
    assert (run / "cka" / "section.md").is_file() and "[done] analyze" in out
    report = (run / "report.md").read_text()
    assert "## Ablation" in report and "## Representation similarity" in report


RECORD_KEYS = {*training.RECORD_KEYS, "architecture", "recipe"}  # the engine's keys, and what both kinds add


def test_student_and_teacher_records_share_their_keys(quick_run):
    run, _, _ = quick_run
    teacher = json.loads((run / "teachers" / "resnet_s0.json").read_text())
    student = json.loads((run / "students" / "ensemble.json").read_text())
    assert RECORD_KEYS <= set(teacher) and RECORD_KEYS <= set(student)
    assert not {"params", "train_seconds"} & set(student)
    assert student["trainable_parameters"] > 0 and student["size_mb"] > 0 and student["training_time_s"] > 0
    assert student["top1_test_accuracy"] == student["evaluation"]["top1"]
    assert student["teacher_trainable_parameters"] > teacher["trainable_parameters"] > 0


def test_precompute_force_rebuilds_a_damaged_store(quick_run, capsys):
    run, argv, _ = quick_run
    options = argv[1:]
    shard = sorted((run / "store" / "test").rglob("*.tfrecord"))[0]
    shard.write_bytes(shard.read_bytes()[:10])  # damaged on disk
    out = _run(["precompute", *options], capsys)
    assert "[skip] store test" in out  # finished, as far as the markers know
    out = _run(["precompute", *options, "--force", "--split", "test"], capsys)
    assert "[done] store test" in out and "[done] store analysis" in out
    from libkd_keras.store import TeacherStore

    store = TeacherStore.open(run / "store" / "test")
    assert store.num_examples == 30
    assert all(p.stat().st_size > 10 for p in (run / "store" / "test").rglob("*.tfrecord"))


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


class _EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begun = []

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)


def test_interrupted_student_resumes_from_its_last_epoch(tmp_path):
    data = write_image_tree(tmp_path / "data", classes=2, train=16, test=4)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    config = resolve_config(
        preset="quick",
        config_file=config,
        overrides=[
            f"data.dataset={data}",
            "teachers.resnet_seeds=[]",
            "teachers.rednet_seeds=[]",
            "student.epochs=2",
            'students=[{name = "baseline", teachers = []}]',
            "export.quantizations=[]",
        ],
    )
    folder = RunFolder.open(tmp_path / "run", config)
    from libkd_keras.pipeline import Pipeline

    interrupted = Pipeline(folder, config, callbacks=lambda kind, name: [_StopAfterFirstEpoch()], say=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        interrupted.distill()
    assert not folder.done("student/baseline") and not (tmp_path / "run" / "students" / "baseline.keras").exists()
    assert (folder.checkpoint("student", "baseline") / "training_metadata.json").exists()

    recorder = _EpochRecorder()
    Pipeline(folder, config, callbacks=lambda kind, name: [recorder], say=lambda m: None).distill()
    assert recorder.begun == [1]  # epoch 0 was not trained again
    record = json.loads((tmp_path / "run" / "students" / "baseline.json").read_text())
    assert record["history"]["epoch"] == [0, 1] and len(record["history"]["val_acc"]) == 2
    assert not folder.checkpoint("student", "baseline").exists()


def test_interruption_exits_130_with_a_hint(tmp_path, tiny_config, capsys, monkeypatch):
    from libkd_keras.pipeline import runner

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.Pipeline, "load_data", interrupt)
    assert main(["pipeline", "--config", str(tiny_config), "--out", str(tmp_path / "run")]) == EXIT_INTERRUPTED
    assert "run the same command again to resume" in capsys.readouterr().err


def test_student_seeds_train_one_student_each_and_the_report_pairs_them(tmp_path):
    import statistics

    data = write_image_tree(tmp_path / "data", classes=2, train=16, test=6)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    config = resolve_config(
        preset="quick",
        config_file=config,
        overrides=[
            f"data.dataset={data}",
            "export.quantizations=[]",
            'students=[{name = "baseline", seeds = [0, 1]}, '
            '{name = "resnet", teachers = ["resnet"], seeds = [0, 1]}, {name = "mixed", teachers = ["all"], '
            "seeds = [0, 1]}]",
        ],
    )
    from libkd_keras.pipeline import Pipeline

    said = []
    with RunFolder.open(tmp_path / "run", config) as folder:
        Pipeline(folder, config, say=said.append, fit_verbose=0).run_all()
    students = tmp_path / "run" / "students"
    records = {p.stem: json.loads(p.read_text()) for p in students.glob("*.json")}
    assert sorted(records) == [f"{n}_s{s}" for n in ("baseline", "mixed", "resnet") for s in (0, 1)]
    assert [(records[f"mixed_s{s}"]["entry"], records[f"mixed_s{s}"]["seed"]) for s in (0, 1)] == [
        ("mixed", 0),
        ("mixed", 1),
    ]
    weights = [keras.saving.load_model(students / f"baseline_s{s}.keras").get_weights() for s in (0, 1)]
    assert any(a.shape == b.shape and (a != b).any() for a, b in zip(*weights))  # another seed, another student
    assert "[done] evaluate baseline_s1  " in "\n".join(said)

    said.clear()
    with RunFolder.open(tmp_path / "run", config) as folder:
        Pipeline(folder, config, say=said.append, fit_verbose=0).run_all()
    out = "\n".join(said)
    assert "[done] student" not in out and "[skip] student baseline_s0" in out and "[skip] student mixed_s1" in out

    report = (tmp_path / "run" / "report.md").read_text()
    top1 = {n: [records[f"{n}_s{s}"]["evaluation"]["top1"] for s in (0, 1)] for n in ("baseline", "resnet", "mixed")}
    for name, values in top1.items():
        assert f"| 2 (0, 1) | {100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f} |" in report, (
            name
        )
    differences = [a - b for a, b in zip(top1["mixed"], top1["resnet"])]
    assert "`mixed` (ResNet + RedNet, 2 teachers) vs `resnet` (ResNet only, 1 teacher;" in report
    per_seed = ", ".join(f"s{s} {100 * d:+.2f}" for s, d in enumerate(differences))
    assert f"- per-seed differences (points): {per_seed}; positive in {sum(d > 0 for d in differences)}/2" in report
    mean = statistics.mean(differences)
    half = 12.706204736174707 * statistics.stdev(differences) / 2**0.5  # t with 1 degree of freedom
    assert (
        f"- mean difference {100 * mean:+.2f} ± {100 * statistics.stdev(differences):.2f} points (mean ± std over "
        f"seeds, n = 2); 95% CI [{100 * (mean - half):+.2f}, {100 * (mean + half):+.2f}] (t, 2 seeds)"
    ) in report
    verdict = "holds" if mean - half > 0 else "does not hold" if mean + half < 0 else "cannot tell at this n"
    assert f"- verdict: **{verdict}**" in report[report.index("vs `resnet`") :]
    assert (students / "mixed_s1.predictions.npz").is_file()


def test_students_take_their_rows_from_clean_images_stored_views_or_online_teachers(tmp_path):
    from libkd_keras.pipeline import Pipeline
    from libkd_keras.pipeline.schema import ConfigError
    from libkd_keras.store import TeacherStore

    data = write_image_tree(tmp_path / "data", classes=2, train=16, test=6)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CONFIG)
    students = (
        'students=[{name = "clean", teachers = ["all"]}, {name = "views", teachers = ["all"], targets = "views"}, '
        '{name = "online", teachers = ["all"], targets = "online"}]'
    )
    common = [f"data.dataset={data}", "teachers.rednet_seeds=[]", "export.quantizations=[]", students]
    with pytest.raises(ConfigError, match=r"targets = 'views' but the store holds the clean images only.*store.views"):
        resolve_config(preset="quick", config_file=config, overrides=common)
    config = resolve_config(preset="quick", config_file=config, overrides=[*common, "store.views=3"])
    with RunFolder.open(tmp_path / "run", config) as folder:
        Pipeline(folder, config, say=lambda m: None, fit_verbose=0).run_all()
    assert TeacherStore.open(tmp_path / "run" / "store" / "train").num_views == 3
    assert TeacherStore.open(tmp_path / "run" / "store" / "test").num_views == 0  # views are for training only
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "run" / "students").glob("*.json")}
    assert {name: r["targets"] for name, r in records.items()} == {
        "clean": "clean",
        "views": "views",
        "online": "online",
    }
    assert all(r["top1_test_accuracy"] is not None for r in records.values())
