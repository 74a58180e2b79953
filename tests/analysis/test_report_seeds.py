"""The report of students trained with several seeds: mean ± std per entry, gains, the paired comparison."""

import math
import statistics

from libkd_keras.analysis.report import write_report
from libkd_keras.analysis.report.seeds import mean_std, paired_comparison
from tests.analysis.test_report_run import _full_run, _write, run_dir  # noqa: F401 (fixture)

TEACHERS = {
    "baseline": [],
    "resnet": ["resnet20_s0"],
    "rednet": ["rednet14_s0"],
    "mixed": ["resnet20_s0", "rednet14_s0"],
}
TOP1 = {
    "baseline": [0.501, 0.523, 0.512],
    "resnet": [0.534, 0.551, 0.529],
    "rednet": [0.511, 0.502, 0.523],
    "mixed": [0.561, 0.544, 0.552],
}


def _seeded_run(run, top1=TOP1, seeds=(0, 1, 2)):
    records = {}
    for order, (entry, values) in enumerate(top1.items()):
        for seed, value in zip(seeds, values):
            name = f"{entry}_s{seed}"
            records[name] = {
                "name": name,
                "entry": entry,
                "seed": seed,
                "order": order,
                "teachers": TEACHERS[entry],
                "distillation": "hard" if TEACHERS[entry] else "none",
                "trainable_parameters": 684404,
                "size_mb": 2.6,
                "epochs": 2,
                "top1_test_accuracy": value,
                "evaluation": {"top1": value, "top5": value + 0.3, "cls_top1": value, "dist_top1": value},
                "history": {"loss": [2.0, 1.5], "val_acc": [0.3, value]},
            }
            _write(run / "students" / f"{name}.json", records[name])
    return records


def _points(value, signed=False):
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def test_means_spreads_and_paired_gains_come_from_the_records(run_dir):  # noqa: F811
    records = _seeded_run(run_dir)
    text = write_report(run_dir).path.read_text()
    top1 = {entry: [records[f"{entry}_s{seed}"]["evaluation"]["top1"] for seed in range(3)] for entry in TOP1}
    for entry, values in top1.items():
        mean, std = statistics.mean(values), statistics.stdev(values)
        assert f"| 3 (0, 1, 2) | {_points(mean)} ± {_points(std)} |" in text, entry
    for entry in ("resnet", "rednet", "mixed"):  # paired: the same seeds as the baseline
        differences = [a - b for a, b in zip(top1[entry], top1["baseline"])]
        gain = f"{_points(statistics.mean(differences), True)} ± {_points(statistics.stdev(differences))} |"
        assert gain in text and f"{gain} (unpaired)" not in text
    # Mixed vs the best single-family entry (resnet has the higher mean), seed by seed.
    differences = [a - b for a, b in zip(top1["mixed"], top1["resnet"])]
    mean, std = statistics.mean(differences), statistics.stdev(differences)
    assert "`mixed` (ResNet + RedNet teachers) vs `resnet` (the best single-family entry" in text
    assert (
        "- per-seed differences (points): "
        + ", ".join(f"s{seed} {_points(d, True)}" for seed, d in enumerate(differences))
        in text
    )
    assert f"- positive in {sum(d > 0 for d in differences)}/3 seeds" in text
    assert f"- mean difference {_points(mean, True)} ± {_points(std)} points" in text
    t = mean / (std / math.sqrt(3))
    assert f"(|mean| > std): {'yes' if abs(mean) > std else 'no'}; paired t = {t:.2f} (2 degrees of freedom)" in text
    assert "| Student | Class head top-1 (%) |" in text and "| mixed_s2 |" in text  # per seed, per head


def test_unequal_seed_lists_give_an_unpaired_gain(run_dir):  # noqa: F811
    top1 = {"baseline": [0.50, 0.52, 0.51], "mixed": [0.56, 0.54]}
    _seeded_run(run_dir, top1)
    text = write_report(run_dir).path.read_text()
    _, mean_a, std_a = mean_std(top1["mixed"])
    _, mean_b, std_b = mean_std(top1["baseline"])
    expected = f"{_points(mean_a - mean_b, True)} ± {_points(math.sqrt(std_a**2 + std_b**2))} (unpaired)"
    assert expected in text
    assert "needs an entry whose teachers span both families and one whose teachers are all" in text


def test_one_seed_runs_render_as_before(run_dir):  # noqa: F811
    _full_run(run_dir)  # records without "entry" and "seed" (older run folders)
    text = write_report(run_dir).path.read_text()
    assert "| ensemble | resnet26_s0, rednet26_s0 | ✓ | hard |" in text and "+3.25" in text
    assert "±" not in text and "Seeds (n)" not in text and "Mixed beats" not in text


def test_paired_comparison_statistics():
    c = paired_comparison(
        [{"seed": s, "top1": v} for s, v in enumerate([0.75, 0.5, 0.5])],
        [{"seed": s, "top1": v} for s, v in [(0, 0.5), (2, 0.25), (3, 0.9)]],
    )
    assert c["seeds"] == [0, 2] and c["positive"] == 2 and c["n"] == 2
    assert c["mean"] == 0.25 and c["std"] == 0.0
    assert c["t"] is None and c["exceeds"] is True  # std 0: no t statistic


def test_gains_are_over_the_baseline_of_the_same_budget(run_dir, monkeypatch):  # noqa: F811
    """Students of different epochs: each gain, and the claim, use the no-teacher student of its own epochs."""
    import importlib.util
    from pathlib import Path

    from libkd_keras.analysis.report import load_students
    from libkd_keras.run_layout import RunLayout

    top1 = {"baseline": [0.49], "mixed": [0.50], "baseline_e100": [0.52], "mixed_e100": [0.57]}
    monkeypatch.setitem(TEACHERS, "baseline_e100", [])
    monkeypatch.setitem(TEACHERS, "mixed_e100", TEACHERS["mixed"])
    records = _seeded_run(run_dir, top1, seeds=(0,))
    for name in ("baseline_e100_s0", "mixed_e100_s0"):
        records[name]["epochs"] = 100
        _write(run_dir / "students" / f"{name}.json", records[name])
    text = write_report(run_dir).path.read_text()
    assert "2 or 100 epochs (per student)" in text
    assert "| +1.00 |" in text and "| +5.00 |" in text  # not +8.00: baseline_e100 is mixed_e100's baseline
    assert "+8.00" not in text and "| +3.00 |" not in text

    script = Path(__file__).parents[2] / "benchmarks" / "publish_run.py"
    spec = importlib.util.spec_from_file_location("publish_run", script)
    publish_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish_run)
    lines = publish_run.claim_lines(load_students(RunLayout(run_dir)))
    assert len(lines) == 2 and "vs `baseline` 49.00%" in lines[0] and "vs `baseline_e100` 52.00%" in lines[1]
    assert "+1.00 points" in lines[0] and "+5.00 points" in lines[1]
