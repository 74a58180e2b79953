"""The run report from hand-written artifacts: every section, the plots, and "not run" for missing parts."""

import json

import numpy as np
import pytest

from libkd_keras.analysis import plots
from libkd_keras.analysis.report import stats, write_report
from libkd_keras.cli.config import resolve_config, to_toml
from libkd_keras.cli.main import EXIT_BAD_INPUT, main
from libkd_keras.evaluation import save_predictions
from libkd_keras.run_layout import RunLayout
from tests.scripts import benchmark_script


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _teacher(name, arch, seed, top1):
    # The fields train_teacher writes (libkd_keras/teachers/training.py).
    return {
        "name": name,
        "architecture": arch,
        "seed": seed,
        "epochs": 3,
        "trainable_parameters": 8740682,
        "size_mb": 33.34,
        "training_time_s": 120.5,
        "top1_test_accuracy": top1,
        "top5_test_accuracy": 0.95,
        "test_dataset": {"split": "test", "num_examples": 1000},
        "train_accuracy": 0.7,
        "history": {"epoch": [0, 1, 2], "loss": [2.0, 1.6, 1.3], "val_accuracy": [0.3, top1 - 0.05, top1]},
    }


def _student(name, teachers, order, top1, evaluation=True):
    record = {
        "name": name,
        "order": order,
        "teachers": teachers,
        "distillation": "hard" if teachers else "none",
        "recipe": "baseline",
        "mixup": False,
        "cutmix": False,
        "alpha": 0.5,
        "params": 5365076,
        "size_mb": 20.47,
        "teacher_params": 17481364 if teachers else None,
        "teacher_size_mb": 66.7 if teachers else None,
        "epochs": 2,
        "history": {  # what the Distiller's epoch log records (training.EpochLog)
            "loss": [2.2, 1.9],
            "label_loss": [2.3, 2.0] if teachers else [2.2, 1.9],
            "distill_loss": [2.1, 1.8] if teachers else [2.2, 1.9],
            "val_acc": [0.3, top1],
            "val_top5": [0.8, 0.9],
            "time_s": [30.0, 32.5],
        },
    }
    if evaluation:
        record["evaluation"] = {
            "num_examples": 400,
            "top1": top1,
            "top5": 0.91,
            "cls_top1": top1 - 0.01,
            "dist_top1": top1 - 0.02 if teachers else None,
        }
    return record


def _predictions(run, name, correct, seed=0):
    """`students/<name>.predictions.npz` (as the evaluate step writes it): right exactly where `correct` is."""
    labels = np.random.default_rng(seed).integers(0, 10, len(correct))
    predictions = np.where(correct, labels, (labels + 1) % 10)
    save_predictions(run / "students" / f"{name}.predictions.npz", predictions, labels, np.arange(len(correct)), 10)


# On 400 test images: the baseline gets 180 right (45.00%), the ensemble 193 (48.25%); 168 both, 25 only the
# ensemble, 12 only the baseline.
BOTH, ONLY_ENSEMBLE, ONLY_BASELINE = 168, 25, 12


def _paired_predictions(run):
    n = 400
    ensemble = np.zeros(n, bool)
    baseline = np.zeros(n, bool)
    ensemble[: BOTH + ONLY_ENSEMBLE] = True
    baseline[:BOTH] = True
    baseline[BOTH + ONLY_ENSEMBLE : BOTH + ONLY_ENSEMBLE + ONLY_BASELINE] = True
    _predictions(run, "baseline", baseline)
    _predictions(run, "ensemble", ensemble)


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(to_toml(resolve_config(preset="quick", overrides=["data.train_limit=2500"])))
    return run


def _full_run(run):
    _write(run / "teachers" / "resnet26_s0.json", _teacher("resnet26_s0", "resnet26", 0, 0.62))
    _write(run / "teachers" / "rednet26_s0.json", _teacher("rednet26_s0", "rednet26", 0, 0.58))
    _write(run / "teachers" / "rednet26_s1.history.json", {"0": {"loss": 2.0}})  # a teacher still training
    _write(
        run / "store" / "analysis.json",
        {
            "num_examples": 1000,
            "ensembles": [
                {
                    "name": "all 2 teachers",
                    "members": ["resnet26_s0", "rednet26_s0"],
                    "rule": "soft",
                    "top1": 0.655,
                    "top5": 0.96,
                    "params": 15924848,
                    "size_mb": 60.7,
                },
                {
                    "name": "all 2 teachers",
                    "members": ["resnet26_s0", "rednet26_s0"],
                    "rule": "vote",
                    "top1": 0.641,
                    "top5": 0.95,
                    "params": 15924848,
                    "size_mb": 60.7,
                },
            ],
            "disagreement": {
                "labels": ["resnet26_s0", "rednet26_s0", "all 2 teachers (soft)"],
                "matrix": [[0.0, 0.2, 0.1], [0.2, 0.0, 0.12], [0.1, 0.12, 0.0]],
            },
        },
    )
    _write(run / "students" / "baseline.json", _student("baseline", [], 0, 0.45))
    _write(run / "students" / "ensemble.json", _student("ensemble", ["resnet26_s0", "rednet26_s0"], 1, 0.4825))
    _paired_predictions(run)
    _write(
        run / "exports" / "ensemble" / "export_report.json",
        {  # the format of export_report
            "test_data": {"name": "test", "n": 400},
            "settings": {"threads": [1, 2]},
            "rows": [
                {"variant": "keras float32", "file": None, "size_mb": None, "top1": 0.4825, "top5": 0.91},
                {
                    "variant": "float32",
                    "file": "ensemble_float32.tflite",
                    "size_mb": 21.5,
                    "top1": 0.4825,
                    "top5": 0.91,
                    "latency_ms": {"1": 9.5, "2": 6.1},
                    "latency_p90_ms": {"1": 10.2, "2": 6.5},
                    "top1_drop_points": 0.0,
                },
                {
                    "variant": "int8",
                    "file": "ensemble_int8.tflite",
                    "size_mb": 5.9,
                    "top1": 0.476,
                    "top5": 0.9,
                    "latency_ms": {"1": 3.1, "2": 2.0},
                    "latency_p90_ms": {"1": 3.4, "2": 2.2},
                    "top1_drop_points": 0.65,
                },
            ],
        },
    )
    _write(
        run / "steps" / "teacher-resnet26_s0.json",
        {"step": "teacher/resnet26_s0", "seconds": 120.5, "finished_at": "2026-11-21T10:00:00"},
    )


def test_full_report_has_every_section_table_and_plot(run_dir):
    _full_run(run_dir)
    summary = write_report(run_dir)
    text = summary.path.read_text()
    assert summary.sections == {"teachers": "ok", "students": "ok", "curves": "ok", "edge": "ok"}
    assert "not run" not in text
    # Teachers (Tables 2-3): both teachers, not the one still training.
    # Every accuracy with its binomial (Wilson) 95% interval on the test images its record names.
    low, high = stats.wilson_interval(620, 1000)
    assert (
        f"| resnet26_s0 | resnet26 | 0 | 3 | 120.5 | 8,740,682 | 33.34 | 62.00 | [{100 * low:.2f}, {100 * high:.2f}] "
        "| 95.00 | 70.00 |"
    ) in text
    assert "rednet26_s1" not in text
    assert "a negative drop (the variant scored higher)" in text and "not a gain" in text  # under the edge table
    assert "| Soft averaging |" in text and "| Majority voting |" in text and "65.50" in text
    assert "| 65.50 | [{:.2f}, {:.2f}] |".format(*(100 * v for v in stats.wilson_interval(655, 1000))) in text
    # Students (Table 4): the gain over the baseline, its exact McNemar test on the stored predictions, the verdict.
    p = stats.mcnemar(ONLY_ENSEMBLE, ONLY_BASELINE)
    ensemble_ci = "[{:.2f}, {:.2f}]".format(*(100 * v for v in stats.wilson_interval(193, 400)))
    assert (
        f"| ensemble | resnet26_s0, rednet26_s0 | ✓ | hard | ✗ | ✗ | 0.5 | 17,481,364 | 66.7 | 5,365,076 | 20.5 | 2 "
        f"| 48.25 | {ensemble_ci} | 91.00 | +3.25 | McNemar p = {p:.3g} ({ONLY_ENSEMBLE} vs {ONLY_BASELINE} images) "
        "| holds |"
    ) in text
    assert p < 0.05 and "| baseline | None | ✓ | ✗ |" in text
    # Edge: per quantization, latency with the fewest threads, the interval, drop in points.
    int8_ci = "[{:.2f}, {:.2f}]".format(*(100 * v for v in stats.wilson_interval(190, 400)))
    assert f"| int8 | 5.90 | 3.10 | 3.40 | 47.60 | {int8_ci} | 90.00 | +0.65 |" in text
    assert "| teacher/resnet26_s0 | 120.5 | – |" in text and "from the resume only" not in text
    names = sorted(p.name for p in summary.plots)
    assert names == [
        "disagreement.png",
        "edge_ensemble.png",
        "student_accuracy_time.png",
        "student_curves.png",
        "students.png",
        "teacher_curves.png",
    ]
    for plot in summary.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{plot.name}" in text
    # The terminal table: one line per teacher, ensemble, student and LiteRT variant.
    assert "all 2 teachers (soft)" in summary.table and "+3.2" in summary.table
    ensemble_line = next(line for line in summary.table.splitlines() if line.startswith("ensemble "))
    assert f"McNemar p={p:.2g}" in ensemble_line and ensemble_line.rstrip().endswith("holds")
    assert "{:.1f}-{:.1f}".format(*(100 * v for v in stats.wilson_interval(193, 400))) in ensemble_line
    assert len(summary.table.splitlines()) == 2 + 2 + 2 + 2 + 2


def test_a_step_resumed_after_a_stop_shows_its_training_time_over_all_its_runs(run_dir):
    # The marker's wall time counts from the resume; the teacher's record sums its epochs' times over every run.
    _full_run(run_dir)
    _write(
        run_dir / "steps" / "teacher-resnet26_s0.json",
        {"step": "teacher/resnet26_s0", "seconds": 20.25, "finished_at": "2026-11-21T10:00:00"},
    )
    text = write_report(run_dir).path.read_text()
    assert "| teacher/resnet26_s0 | 20.2 (resumed; 120.5 of training over all its runs) | – |" in text
    assert "A step resumed after a stop records its times from the resume only" in text
    lines = benchmark_script("publish_run").budget_lines(RunLayout(run_dir), "libkd pipeline")
    assert "| teacher/resnet26_s0 | 0.3 (resumed; 2.0 of training over all its runs) |" in lines
    assert "(a step resumed after a stop counts from its resume)." in " ".join(lines)


def test_missing_artifacts_say_not_run(run_dir):
    summary = write_report(run_dir)
    assert summary.sections == {"teachers": "not run", "students": "not run", "curves": "not run", "edge": "not run"}
    assert summary.plots == [] and summary.path.read_text().count("not run") >= 5


def test_students_without_evaluation_use_the_last_test_accuracy(run_dir):
    _write(run_dir / "students" / "baseline.json", _student("baseline", [], 0, 0.45, evaluation=False))
    summary = write_report(run_dir)
    text = summary.path.read_text()
    assert summary.sections["students"] == "ok" and summary.sections["teachers"] == "not run"
    assert "| 45.00 | – | 90.00 | – |" in text  # top-1 and top-5 from the history (no test-image count: no CI)
    assert "Per head" not in text


def _shared_format_student(name, teachers, order, top1):
    # The record train_student writes: the teacher record's keys (libkd_keras/distill/training.py).
    return {
        "name": name,
        "order": order,
        "teachers": teachers,
        "distillation": "hard" if teachers else "none",
        "recipe": {"name": "baseline", "epochs": 2},
        "mixup": False,
        "cutmix": False,
        "alpha": 0.5,
        "trainable_parameters": 5365076,
        "size_mb": 20.47,
        "training_time_s": 30.0,
        "teacher_trainable_parameters": 17481364 if teachers else None,
        "teacher_size_mb": 66.7 if teachers else None,
        "epochs": 2,
        "top1_test_accuracy": top1,
        "top5_test_accuracy": 0.91,
        "history": {"loss": [2.2, 1.9], "val_acc": [0.3, top1 - 0.1]},
    }


def test_students_in_the_shared_record_format_beside_an_old_one(run_dir):
    _write(run_dir / "students" / "baseline.json", _student("baseline", [], 0, 0.45))  # an old run folder's keys
    _write(run_dir / "students" / "ensemble.json", _shared_format_student("ensemble", ["r0", "r1"], 1, 0.4825))
    text = write_report(run_dir).path.read_text()
    baseline_ci = "[{:.2f}, {:.2f}]".format(*(100 * v for v in stats.wilson_interval(180, 400)))
    assert (
        f"| baseline | None | ✓ | ✗ | ✗ | ✗ | ✗ | – | – | 5,365,076 | 20.5 | 2 | 45.00 | {baseline_ci} | 91.00 | – |"
    ) in text
    # Top-1 is the record's test accuracy (not the last epoch's 38.25), the gain over the old-format baseline;
    # without stored predictions there is no paired test, and the verdict says so.
    assert (
        "| ensemble | r0, r1 | ✓ | hard | ✗ | ✗ | 0.5 | 17,481,364 | 66.7 | 5,365,076 | 20.5 | 2 | 48.25 | – | "
        "91.00 | +3.25 | no test: no stored predictions of both on the same images | cannot tell at this n |"
    ) in text


def test_ablation_and_cka_sections_are_included_when_written(run_dir):
    (run_dir / "ablation").mkdir()
    (run_dir / "ablation" / "ablation.md").write_text("## Ablation: teacher sets\n\n| a | b |\n|---|---|\n")
    summary = write_report(run_dir)
    text = summary.path.read_text()
    assert summary.sections["ablation"] == "ok" and "cka" not in summary.sections
    assert "## Ablation: teacher sets" in text and text.index("## Ablation") < text.index("## Steps")


def test_report_command(run_dir, tmp_path, capsys):
    _full_run(run_dir)
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "ensemble int8" in out and str(run_dir / "report.md") in out
    assert main(["report", str(tmp_path / "nothing")]) == EXIT_BAD_INPUT
    assert "not a libkd run folder" in capsys.readouterr().err


def _keep_figures(monkeypatch):
    """`{file name: matplotlib Figure}` of every plot the report draws from now on (still saved)."""
    drawn, real_save = {}, plots._save

    def keep(figure, path):
        drawn[path.name] = figure
        return real_save(figure, path)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def test_student_curves_compare_the_label_loss_of_every_student(run_dir, monkeypatch):
    """The label loss of the baseline and the distilled student on one panel; the distillation loss on its own."""
    _full_run(run_dir)
    drawn = _keep_figures(monkeypatch)
    text = write_report(run_dir).path.read_text()
    label_ax, distill_ax, accuracy_ax = drawn["student_curves.png"].axes[:3]
    label_lines = {line.get_label(): list(line.get_ydata()) for line in label_ax.lines}
    assert label_lines == {"baseline": [2.2, 1.9], "ensemble": [2.3, 2.0]}  # each record's label_loss
    distill_lines = {line.get_label(): list(line.get_ydata()) for line in distill_ax.lines}
    assert distill_lines == {"ensemble": [2.1, 1.8]}  # not the baseline's second head on the labels
    assert {line.get_label() for line in accuracy_ax.lines} == {"baseline", "ensemble"}
    assert "label loss" in label_ax.get_title() and "distillation loss" in distill_ax.get_title()
    assert "the label loss (the class head against the labels" in text


def test_accuracy_against_wall_time_is_plotted_per_student(run_dir, monkeypatch):
    history = {"time_s": [10.0, 10.0, 12.0, 10.0], "val_accuracy": [None, 0.3, None, 0.4]}
    assert plots.accuracy_over_time(history) == ([20.0, 42.0], [0.3, 0.4])  # validated epochs, cumulative time
    _full_run(run_dir)
    drawn = _keep_figures(monkeypatch)
    summary = write_report(run_dir)
    assert (run_dir / "plots" / "student_accuracy_time.png").read_bytes()[:4] == b"\x89PNG"
    assert "![students accuracy against time](plots/student_accuracy_time.png)" in summary.path.read_text()
    lines = {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in drawn["student_accuracy_time.png"].axes[0].lines
    }
    # One line per student, labelled with its target source; x: 30 s, then 62.5 s (each epoch's time_s summed).
    assert lines == {
        "baseline (no teacher)": ([30.0, 62.5], [30.0, 45.0]),
        "ensemble (clean)": ([30.0, 62.5], [30.0, 48.25]),
    }


def test_summary_json_from_the_run_folder(run_dir, tmp_path, capsys):
    """`libkd report --summary-json PATH`: the results in the published schema, from the folder's records."""
    from tests.analysis.test_report_seeds import _seeded_run

    _full_run(run_dir)
    (run_dir / "students" / "baseline.json").unlink()
    (run_dir / "students" / "ensemble.json").unlink()
    _seeded_run(run_dir, {"baseline": [0.50, 0.52, 0.51], "mixed": [0.56, 0.54, 0.55]})
    path = tmp_path / "results" / "summary.json"
    assert main(["report", str(run_dir), "--summary-json", str(path), "--command", "libkd pipeline --preset x"]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    summary = json.loads(path.read_text())
    assert set(summary) == {"run", "date", "command", "machine", "data", "teachers", "students"}
    assert summary["run"] == "quick" and summary["command"] == "libkd pipeline --preset x"
    assert summary["date"] == "2026-11-21" and "core CPU" in summary["machine"]  # the last step's day
    assert summary["data"] == {"dataset": "cifar10-sample", "train_images": 2500, "test_images": 1000}
    assert summary["teachers"] == {
        "rednet26_s0": {"family": "rednet", "top1": 58.0, "wall_s": 120.5},
        "resnet26_s0": {"family": "resnet", "top1": 62.0, "wall_s": 120.5},
    }
    assert list(summary["students"]) == ["baseline", "mixed"]  # one entry per [[students]] entry, seeds inside
    mixed = summary["students"]["mixed"]
    assert set(mixed) == {"teachers", "targets", "recipe", "epochs", "top1", "wall_s"}
    assert mixed["teachers"] == ["resnet20_s0", "rednet14_s0"] and mixed["epochs"] == 2
    assert mixed["top1"] == {"0": 56.0, "1": 54.0, "2": 55.0}
    assert mixed["wall_s"] == {"0": 100.0, "1": 101.0, "2": 102.0} and mixed["recipe"] == "baseline"
    assert mixed["targets"] == "clean"  # a record without `targets` (older folders) learnt from clean-image rows
    assert summary["students"]["baseline"]["teachers"] == [] and summary["students"]["baseline"]["targets"] is None
    assert main(["report", str(run_dir), "--command", "x"]) == EXIT_BAD_INPUT  # --command alone records nothing


def test_teacher_histories_read_under_the_engine_names_and_the_older_ones(run_dir):
    """Teachers log `acc`/`val_acc` like students since one engine; run folders written before hold `val_accuracy`."""
    from libkd_keras.analysis.report.records import load_teachers
    from libkd_keras.run_layout import RunLayout

    _write(run_dir / "teachers" / "resnet26_s0.json", _teacher("resnet26_s0", "resnet26", 0, 0.62))  # older names
    new = _teacher("rednet26_s0", "rednet26", 0, 0.58)
    new["history"] = {
        "epoch": [0, 1],
        "loss": [2.0, 1.5],
        "acc": [0.4, 0.5],
        "val_acc": [0.5, 0.58],
        "val_top5": [0.9, 1],
    }
    _write(run_dir / "teachers" / "rednet26_s0.json", new)
    _write(run_dir / "teachers" / "logs" / "rednet26_s0" / "epochs.json", {"0": {"loss": 2.0}})  # not a record
    rows = {row["name"]: row for row in load_teachers(RunLayout(run_dir))}
    assert sorted(rows) == ["rednet26_s0", "resnet26_s0"]
    assert rows["resnet26_s0"]["history"]["val_accuracy"] == [0.3, 0.62 - 0.05, 0.62]
    assert rows["rednet26_s0"]["history"]["val_accuracy"] == [0.5, 0.58]
