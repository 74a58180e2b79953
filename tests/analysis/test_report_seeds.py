"""The report of students trained with several seeds: mean ± std per entry, gains, the paired comparison."""

import json
import math
import statistics

import numpy as np
import pytest

from libkd_keras.analysis.report import load_students, write_report
from libkd_keras.analysis.report.seeds import entry_groups, left_out_text, paired_comparison
from libkd_keras.evaluation import load_predictions as load_predictions_file
from libkd_keras.evaluation import save_predictions
from libkd_keras.run_layout import RunLayout
from tests.analysis.test_report_run import _full_run, _write, run_dir  # noqa: F401 (fixture)
from tests.scripts import benchmark_script

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
                "recipe": {"name": "baseline", "epochs": 2},
                "training_time_s": 100.0 + seed,
                "top1_test_accuracy": value,
                "evaluation": {"top1": value, "top5": value + 0.3, "cls_top1": value, "dist_top1": value},
                "history": {"loss": [2.0, 1.5], "val_acc": [0.3, value]},
            }
            _write(run / "students" / f"{name}.json", records[name])
    return records


def _points(value, signed=False):
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


T_975_DF2 = 4.302652729749464  # Student's t, two-sided 95%, 2 degrees of freedom (tables: 4.303)


def _t_interval_3(values):
    mean, std = statistics.mean(values), statistics.stdev(values)
    half = T_975_DF2 * std / math.sqrt(3)
    return mean - half, mean + half


def _verdict(low, high):
    return "holds" if low > 0 else "does not hold" if high < 0 else "cannot tell at this n"


def test_means_spreads_and_paired_gains_come_from_the_records(run_dir):  # noqa: F811
    records = _seeded_run(run_dir)
    text = write_report(run_dir).path.read_text()
    top1 = {entry: [records[f"{entry}_s{seed}"]["evaluation"]["top1"] for seed in range(3)] for entry in TOP1}
    for entry, values in top1.items():
        mean, std = statistics.mean(values), statistics.stdev(values)
        low, high = _t_interval_3(values)
        assert f"| 3 (0, 1, 2) | {_points(mean)} ± {_points(std)} | [{_points(low)}, {_points(high)}] |" in text, entry
    verdicts = {}
    for entry in ("resnet", "rednet", "mixed"):  # paired: the same seeds as the baseline
        differences = [a - b for a, b in zip(top1[entry], top1["baseline"])]
        low, high = _t_interval_3(differences)
        verdicts[entry] = _verdict(low, high)
        gain = (
            f"| {_points(statistics.mean(differences), True)} ± {_points(statistics.stdev(differences))} | "
            f"95% CI [{_points(low, True)}, {_points(high, True)}] (t, 3 seeds) | {verdicts[entry]} |"
        )
        assert gain in text, entry
    assert set(verdicts.values()) == {"holds", "cannot tell at this n"}  # the fixed numbers give both answers
    # Mixed vs each single-family entry, seed by seed, with the interval and its verdict; Co-advise credited.
    assert "Prior art: Co-advise (Ren et al., CVPR 2022)" in text[text.index("### Mixed beats each same-bias set") :]
    for single, family in (("resnet", "ResNet"), ("rednet", "RedNet")):
        differences = [a - b for a, b in zip(top1["mixed"], top1[single])]
        mean, std = statistics.mean(differences), statistics.stdev(differences)
        low, high = _t_interval_3(differences)
        assert f"`mixed` (ResNet + RedNet, 2 teachers) vs `{single}` ({family} only, 1 teacher;" in text
        per_seed = ", ".join(f"s{seed} {_points(d, True)}" for seed, d in enumerate(differences))
        block = text[text.index(f"vs `{single}` ({family}") :]
        assert f"- per-seed differences (points): {per_seed}; positive in {sum(d > 0 for d in differences)}/3" in block
        assert (
            f"- mean difference {_points(mean, True)} ± {_points(std)} points (mean ± std over seeds, n = 3); "
            f"95% CI [{_points(low, True)}, {_points(high, True)}] (t, 3 seeds)"
        ) in block
        assert f"- verdict: **{_verdict(low, high)}**" in block
        assert "unequal teacher counts: ensemble size and bias diversity are confounded" in block
    assert "| Student | Class head top-1 (%) |" in text and "| mixed_s2 |" in text  # per seed, per head


def test_seeds_in_one_arm_only_are_left_out_and_said_so(run_dir):  # noqa: F811
    top1 = {"baseline": [0.50, 0.52, 0.51], "mixed": [0.56, 0.54]}  # mixed trained seeds 0 and 1 only
    _seeded_run(run_dir, top1)
    text = write_report(run_dir).path.read_text()
    differences = [0.56 - 0.50, 0.54 - 0.52]
    half = 12.706204736174707 * statistics.stdev(differences) / math.sqrt(2)  # t, 1 degree of freedom
    mean = statistics.mean(differences)
    assert f"95% CI [{_points(mean - half, True)}, {_points(mean + half, True)}] (t, 2 seeds)" in text
    assert "- Gain of `mixed`: seed 2 of `baseline` left out (not in `mixed`)." in text
    assert "(unpaired)" not in text
    assert "needs an entry whose teachers span both families and one whose teachers are all" in text


def test_one_seed_runs_render_as_before(run_dir):  # noqa: F811
    _full_run(run_dir)  # records without "entry" and "seed" (older run folders)
    text = write_report(run_dir).path.read_text()
    assert "| ensemble | resnet26_s0, rednet26_s0 | ✓ | hard |" in text and "+3.25" in text
    assert "±" not in text and "Seeds (n)" not in text and "Mixed beats" not in text


def test_paired_comparison_pairs_by_seed():
    c = paired_comparison(
        [{"seed": s, "top1": v} for s, v in enumerate([0.75, 0.5, 0.45])],
        [{"seed": s, "top1": v} for s, v in [(0, 0.5), (2, 0.25), (3, 0.9)]],
    )
    assert c["seeds"] == [0, 2] and c["left_out"] == {"rows": [1], "other": [3]}
    assert c["differences"] == pytest.approx([0.25, 0.2]) and c["positive"] == 2 and c["n"] == 2
    half = 12.706204736174707 * statistics.stdev([0.25, 0.2]) / math.sqrt(2)
    assert c["test"] == "t" and c["interval"] == pytest.approx((0.225 - half, 0.225 + half))
    assert c["verdict"] == "cannot tell at this n"  # 2 seeds: t(1) = 12.7 makes the interval wide
    assert left_out_text(c, "a", "b") == "seed 1 of `a` left out (not in `b`); seed 3 of `b` left out (not in `a`)"
    none = paired_comparison([{"seed": 0, "top1": 0.5}], [{"seed": 1, "top1": 0.4}])
    assert none["n"] == 0 and none["test"] is None and none["verdict"] == "cannot tell at this n"


def _one_seed_predictions(run, name, correct):
    """Image i has id i; the ResNet student's file lists the images in reverse order (pairing goes by id)."""
    ids = np.arange(len(correct))
    labels = ids % 10
    predictions = np.where(correct, labels, (labels + 3) % 10)
    order = ids[::-1] if name.startswith("resnet") else ids
    save_predictions(run / "students" / f"{name}.predictions.npz", predictions[order], labels[order], ids[order], 10)


def test_one_seed_is_tested_with_mcnemar_on_the_same_images(run_dir):  # noqa: F811
    """109 images only the mixed student got right, 77 only the ResNet-only one: exact McNemar p = 0.023."""
    n, both = 1000, 400
    mixed, single = np.zeros(n, bool), np.zeros(n, bool)
    mixed[: both + 109] = True
    single[:both] = True
    single[both + 109 : both + 109 + 77] = True
    _seeded_run(run_dir, {"mixed": [mixed.mean()], "resnet": [single.mean()], "rednet": [0.4]}, seeds=(0,))
    _one_seed_predictions(run_dir, "mixed_s0", mixed)
    _one_seed_predictions(run_dir, "resnet_s0", single)
    groups = entry_groups(load_students(RunLayout(run_dir)))
    c = paired_comparison(groups["mixed"], groups["resnet"])
    assert (c["test"], c["only_a"], c["only_b"]) == ("mcnemar", 109, 77)
    assert round(c["p"], 3) == 0.023 and c["verdict"] == "holds"
    text = write_report(run_dir).path.read_text()
    assert "McNemar p = 0.0228 (109 vs 77 images)" in text and "- verdict: **holds**" in text
    # No predictions for the RedNet-only student: no test, and the verdict says so.
    block = text[text.index("vs `rednet`") :]
    assert "no test: no stored predictions of both on the same images" in block
    assert "- verdict: **cannot tell at this n**" in block
    # Predictions of other images (another test split) are not paired.
    other = load_predictions_file(run_dir / "students" / "mixed_s0.predictions.npz")
    save_predictions(
        run_dir / "students" / "resnet_s0.predictions.npz", single.astype(int), np.ones(n, int), other["ids"] + n, 10
    )
    assert paired_comparison(groups["mixed"], groups["resnet"])["test"] is None


def test_gains_are_over_the_baseline_of_the_same_budget(run_dir, monkeypatch):  # noqa: F811
    """Students of different epochs: each gain, and the claim, use the no-teacher student of its own epochs."""
    top1 = {"baseline": [0.49], "mixed": [0.50], "baseline_e100": [0.52], "mixed_e100": [0.57]}
    monkeypatch.setitem(TEACHERS, "baseline_e100", [])
    monkeypatch.setitem(TEACHERS, "mixed_e100", TEACHERS["mixed"])
    records = _seeded_run(run_dir, top1, seeds=(0,))
    for name in ("baseline_e100_s0", "mixed_e100_s0"):
        records[name]["epochs"] = 100
        _write(run_dir / "students" / f"{name}.json", records[name])
    records["mixed_e100_s0"]["recipe"] = {"name": "mix", "batch_size": 32}
    records["mixed_e100_s0"]["alpha"] = 0.0
    _write(run_dir / "students" / "mixed_e100_s0.json", records["mixed_e100_s0"])
    text = write_report(run_dir).path.read_text()
    assert "2 or 100 epochs (per student)" in text
    # the header reads the students' own settings, not the [student] defaults they overrode
    assert "recipe baseline or mix (per student)" in text
    assert "| +1.00 |" in text and "| +5.00 |" in text  # not +8.00: baseline_e100 is mixed_e100's baseline
    assert "+8.00" not in text and "| +3.00 |" not in text

    publish_run = benchmark_script("publish_run")
    lines = publish_run.claim_lines(load_students(RunLayout(run_dir)))
    assert len(lines) == 2 and "vs `baseline` 49.00%" in lines[0] and "vs `baseline_e100` 52.00%" in lines[1]
    assert "+1.00 points" in lines[0] and "+5.00 points" in lines[1]
    budget = " ".join(publish_run.budget_lines(RunLayout(run_dir), "libkd pipeline"))
    assert "recipe baseline or mix (per student)" in budget
    # alpha: the distilled students' (a record without one ran with the config's [student] value)
    assert "alpha 0.0 or 0.5 (per student)" in budget

    # the CKA pictures: the students-against-students one travels with the log, the many others stay behind
    layout, figures = RunLayout(run_dir), run_dir / "published"
    layout.cka.mkdir()
    figures.mkdir()
    (layout.cka / "student_pairs.png").write_bytes(b"png")
    body = "text\n\n![a](cka/a.png)\n![a_vs_t](cka/a_vs_t.png)\n![students against students](cka/student_pairs.png)\n"
    out = publish_run.cka_pictures(body, layout, figures, "log-name")
    assert out.splitlines()[2:] == [
        "_2 more CKA heatmaps (each model, each student against each teacher): the run folder's `cka/`._",
        "![students against students](log-name/student_pairs.png)",
    ]
    assert (figures / "student_pairs.png").read_bytes() == b"png"
    assert publish_run.cka_pictures("no pictures\n", layout, figures, "log-name") == "no pictures\n"


def _published(results):
    return {p.name: p.read_bytes() for p in [*(results / "log").iterdir(), results / "log.md"]}


def test_publishing_again_replaces_a_log_only_once_the_new_one_is_whole(run_dir, tmp_path, monkeypatch):  # noqa: F811
    _full_run(run_dir)
    _seeded_run(run_dir)
    publish_run, results = benchmark_script("publish_run"), tmp_path / "results"
    argv = [str(run_dir), "--name", "log", "--command", "libkd pipeline", "--results", str(results)]
    publish_run.main(argv)
    summary = json.loads((results / "log" / "summary.json").read_text())
    assert summary["run"] == "log" and summary["students"]["mixed"]["top1"] == {"0": 56.1, "1": 54.4, "2": 55.2}
    assert "### The paper's claim, checked" in (results / "log.md").read_text()
    published = _published(results)
    assert "summary.json" in published and any(name.endswith(".png") for name in published)

    # a wrong notes path fails before anything is written; an error while the new log is built leaves the old one
    with pytest.raises(FileNotFoundError):
        publish_run.main([*argv, "--notes", str(tmp_path / "no-such-notes.md")])
    assert _published(results) == published

    def fails(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(publish_run, "write_summary", fails)
    with pytest.raises(OSError, match="disk full"):
        publish_run.main(argv)
    assert _published(results) == published
    monkeypatch.undo()
    (tmp_path / "notes.md").write_text("Findings.\n")
    publish_run.main([*argv, "--notes", str(tmp_path / "notes.md")])  # the retry replaces it, leaving nothing behind
    assert "Findings." in (results / "log.md").read_text()
    assert sorted(p.name for p in results.iterdir()) == ["log", "log.md"]
