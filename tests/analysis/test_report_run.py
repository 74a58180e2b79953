"""The run report from hand-written artifacts: every section, the plots, and "not run" for missing parts."""

import json

import pytest

from libkd_keras.analysis.report import write_report
from libkd_keras.cli.config import resolve_config, to_toml
from libkd_keras.cli.main import EXIT_BAD_INPUT, main


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
        "history": {"loss": [2.2, 1.9], "val_acc": [0.3, top1], "val_top5": [0.8, 0.9]},
    }
    if evaluation:
        record["evaluation"] = {
            "top1": top1,
            "top5": 0.91,
            "cls_top1": top1 - 0.01,
            "dist_top1": top1 - 0.02 if teachers else None,
        }
    return record


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(to_toml(resolve_config(preset="quick")))
    return run


def _full_run(run):
    _write(run / "teachers" / "resnet26_s0.json", _teacher("resnet26_s0", "resnet26", 0, 0.62))
    _write(run / "teachers" / "rednet26_s0.json", _teacher("rednet26_s0", "rednet26", 0, 0.58))
    _write(run / "teachers" / "rednet26_s1.history.json", {"0": {"loss": 2.0}})  # a teacher still training
    _write(
        run / "store" / "analysis.json",
        {
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
    _write(
        run / "exports" / "ensemble" / "export_report.json",
        {  # the format of export_report
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
    assert "| resnet26_s0 | resnet26 | 0 | 3 | 120.5 | 8,740,682 | 33.34 | 62.00 | 95.00 | 70.00 |" in text
    assert "rednet26_s1" not in text
    assert "| Soft averaging |" in text and "| Majority voting |" in text and "65.50" in text
    # Students (Table 4): the gain of the distilled student over the baseline, in points.
    assert "| ensemble | resnet26_s0, rednet26_s0 | ✓ | hard |" in text and "+3.25" in text
    assert "| baseline | None | ✓ | ✗ |" in text
    # Edge: per quantization, latency with the fewest threads, drop in points.
    assert "| int8 | 5.90 | 3.10 | 3.40 | 47.60 | 90.00 | +0.65 |" in text
    assert "| teacher/resnet26_s0 | 120.5 | – |" in text
    names = sorted(p.name for p in summary.plots)
    assert names == [
        "disagreement.png",
        "edge_ensemble.png",
        "student_curves.png",
        "students.png",
        "teacher_curves.png",
    ]
    for plot in summary.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{plot.name}" in text
    # The terminal table: one line per teacher, ensemble, student and LiteRT variant.
    assert "all 2 teachers (soft)" in summary.table and "+3.2" in summary.table
    assert len(summary.table.splitlines()) == 2 + 2 + 2 + 2 + 2


def test_missing_artifacts_say_not_run(run_dir):
    summary = write_report(run_dir)
    assert summary.sections == {"teachers": "not run", "students": "not run", "curves": "not run", "edge": "not run"}
    assert summary.plots == [] and summary.path.read_text().count("not run") >= 5


def test_students_without_evaluation_use_the_last_test_accuracy(run_dir):
    _write(run_dir / "students" / "baseline.json", _student("baseline", [], 0, 0.45, evaluation=False))
    summary = write_report(run_dir)
    text = summary.path.read_text()
    assert summary.sections["students"] == "ok" and summary.sections["teachers"] == "not run"
    assert "| 45.00 | 90.00 | – |" in text  # top-1 and top-5 from the history
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
    assert "| baseline | None | ✓ | ✗ | ✗ | ✗ | ✗ | – | – | 5,365,076 | 20.5 | 2 | 45.00 | 91.00 | – |" in text
    # Top-1 is the record's test accuracy (not the last epoch's 38.25), the gain over the old-format baseline.
    assert (
        "| ensemble | r0, r1 | ✓ | hard | ✗ | ✗ | 0.5 | 17,481,364 | 66.7 | 5,365,076 | 20.5 | 2 | 48.25 | "
        "91.00 | +3.25 |"
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
