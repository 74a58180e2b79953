"""What differs between teacher sets, and which difference predicts the gain: fixed numbers, no training."""

import pytest

from libkd_keras.analysis.report import stats
from libkd_keras.analysis.report.seeds import entry_groups
from libkd_keras.analysis.report.sets import (
    baseline_cka,
    explanation_lines,
    predictor_lines,
    predictor_rows,
    predictors,
    set_factors,
    student_teacher_cka,
)
from tests.analysis.test_report_run import run_dir  # noqa: F401 (fixture)
from tests.scripts import benchmark_script

ANALYSIS = {
    "teachers": {"resnet20_s0": {"top1": 0.70}, "resnet20_s1": {"top1": 0.69}, "rednet20_s0": {"top1": 0.61}},
    "ensembles": [
        {"name": "resnet x2", "members": ["resnet20_s0", "resnet20_s1"], "rule": "soft", "top1": 0.72},
        {"name": "resnet x2", "members": ["resnet20_s0", "resnet20_s1"], "rule": "vote", "top1": 0.99},
        {"name": "mixed", "members": ["resnet20_s0", "rednet20_s0"], "rule": "soft", "top1": 0.74},
    ],
    "disagreement": {
        "labels": ["resnet20_s0", "resnet20_s1", "rednet20_s0", "resnet x2 (soft)"],
        "matrix": [[0.0, 0.20, 0.35, 0.1], [0.20, 0.0, 0.33, 0.1], [0.35, 0.33, 0.0, 0.3], [0.1, 0.1, 0.3, 0.0]],
    },
    "train_targets": {
        "rows": [
            {"members": ["resnet20_s0"], "agreement": 0.95, "true_class_probability": 0.80},
            {"members": ["resnet20_s1", "resnet20_s0"], "agreement": 0.96, "true_class_probability": 0.82},
            {"members": ["rednet20_s0", "resnet20_s0"], "agreement": 0.91, "true_class_probability": 0.70},
        ]
    },
}


def _students(top1):
    """Records of entries {entry: (teachers, [top-1 per seed])}, seeds 0, 1, 2, ... in order."""
    return [
        {"name": f"{entry}_s{seed}", "entry": entry, "seed": seed, "teachers": teachers, "top1": value}
        for entry, (teachers, values) in top1.items()
        for seed, value in enumerate(values)
    ]


def test_ranks_share_ties_and_spearman_is_exact_at_small_n():
    assert stats._ranks([10, 20, 20, 30]) == [1.0, 2.5, 2.5, 4.0]
    assert stats.spearman([1, 2, 3], [1, 2, 3]) == (1.0, pytest.approx(2 / 6))  # 2 of 3! orderings reach |rho| = 1
    assert stats.spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == (-1.0, pytest.approx(2 / 120))
    rho, p = stats.spearman([0.1, 0.5, 0.3, 0.9, 0.7], [0.02, 0.04, 0.01, 0.05, 0.03])
    assert rho == pytest.approx(0.8) and p == pytest.approx(16 / 120)  # exact tables: P(rho >= 0.8 | n=5) = 8/120
    assert stats.spearman([1, 1, 1], [1, 2, 3]) == (None, None)  # one side constant: undefined
    assert stats.spearman([1, 2], [1, 2]) == (None, None)
    assert stats.spearman([1, None, 3, 4], [1, 9, 2, 3])[0] == pytest.approx(1.0)  # the pair with None is dropped


def test_spearman_above_eight_pairs_uses_the_t_approximation():
    # scipy.stats.spearmanr on the same numbers: rho 0.93939..., p 5.4840529985e-05; rho 0.84242..., p 0.00222003122
    rho, p = stats.spearman(range(1, 11), [2, 1, 4, 3, 6, 5, 8, 7, 10, 9])
    assert rho == pytest.approx(0.9393939393939394) and p == pytest.approx(5.4840529985e-05, rel=1e-6)
    rho, p = stats.spearman(range(1, 11), [3, 1, 2, 6, 4, 5, 10, 7, 9, 8])
    assert rho == pytest.approx(0.8424242424242424) and p == pytest.approx(0.00222003122, rel=1e-6)


def test_set_factors_read_the_soft_ensemble_the_mean_pairwise_disagreement_and_the_train_targets():
    pair = set_factors(["resnet20_s1", "resnet20_s0"], ANALYSIS)  # member order does not matter
    assert pair == {
        "ensemble_top1": 0.72,  # the soft row, not the vote row
        "disagreement": pytest.approx(0.20),
        "label_agreement": 0.96,
        "true_class_probability": 0.82,
    }
    single = set_factors(["resnet20_s0"], ANALYSIS)
    assert single["ensemble_top1"] == 0.70 and single["disagreement"] is None and single["label_agreement"] == 0.95
    assert set_factors(["resnet20_s0", "resnet20_s1", "rednet20_s0"], ANALYSIS)["disagreement"] == pytest.approx(
        (0.20 + 0.35 + 0.33) / 3
    )
    assert set_factors(["nobody"], None) == dict.fromkeys(
        ["ensemble_top1", "disagreement", "label_agreement", "true_class_probability"]
    )


def test_student_teacher_cka_averages_each_students_mean_cka_with_each_teacher_and_skips_what_is_missing():
    cka = {
        "cross": {
            "mixed_s0_vs_resnet20_s0": {"matrix": [[0.2, 0.4], [0.6, float("nan")]]},  # NaN cells are left out: 0.4
            "mixed_s0_vs_rednet20_s0": {"matrix": [[0.1, 0.3]]},  # 0.2
            "mixed_s1_vs_resnet20_s0": {"matrix": [[0.9]]},  # 0.9; mixed_s1 vs rednet20_s0 is missing
        }
    }
    students = [{"name": "mixed_s0"}, {"name": "mixed_s1"}]
    assert student_teacher_cka(students, ["resnet20_s0", "rednet20_s0"], cka) == pytest.approx((0.4 + 0.2 + 0.9) / 3)
    assert student_teacher_cka(students, ["resnet20_s0"], None) is None
    groups = entry_groups(
        _students({"baseline": ([], [0.5, 0.5]), "mixed": (["resnet20_s0", "rednet20_s0"], [0.6, 0.6])})
    )
    (row,) = predictor_rows(groups, ANALYSIS, cka=cka)
    assert row["student_teacher_cka"] == pytest.approx(0.5)


def test_baseline_cka_pairs_each_student_with_the_baseline_of_its_seed_in_either_key_order():
    cka = {
        "students": {
            "baseline_s0_vs_mixed_s0": {"layerwise": 0.8},  # written in the order the models were found
            "mixed_s1_vs_baseline_s1": {"layerwise": 0.6},
            "mixed_s0_vs_baseline_s1": {"layerwise": 0.0},  # another seed: not this student's pair
            "baseline_s2_vs_mixed_s2": {"layerwise": float("nan")},  # a constant layer: left out
        }
    }
    groups = entry_groups(
        _students({"baseline": ([], [0.5, 0.5, 0.5]), "mixed": (["resnet20_s0", "rednet20_s0"], [0.6, 0.6, 0.6])})
    )
    assert baseline_cka(groups["mixed"], groups["baseline"], cka) == pytest.approx(0.7)
    assert baseline_cka(groups["mixed"], groups["baseline"], None) is None
    (row,) = predictor_rows(groups, ANALYSIS, cka=cka)
    assert row["baseline_cka"] == pytest.approx(0.7)
    (alone,) = predictor_rows(entry_groups(_students({"mixed": (["resnet20_s0"], [0.6])})), ANALYSIS, cka=cka)
    assert alone["baseline_cka"] is None and alone["gain"] is None  # no baseline: nothing to pair with


def test_predictor_rows_pair_each_set_with_the_baseline_by_seed_and_the_verdict_needs_p_below_005():
    groups = entry_groups(
        _students(
            {
                "baseline": ([], [0.50, 0.52, 0.51]),
                "resnet_pair": (["resnet20_s0", "resnet20_s1"], [0.53, 0.54, 0.55]),
                "mixed_pair": (["resnet20_s0", "rednet20_s0"], [0.56, 0.55, 0.57]),
                "resnet_one": (["resnet20_s0"], [0.52, 0.53, 0.52]),
            }
        )
    )
    rows = predictor_rows(groups, ANALYSIS)
    assert [r["entry"] for r in rows] == ["resnet_pair", "mixed_pair", "resnet_one"]  # the baseline has no teachers
    gains = {r["entry"]: r["gain"] for r in rows}
    assert gains["mixed_pair"] == pytest.approx(((0.56 - 0.50) + (0.55 - 0.52) + (0.57 - 0.51)) / 3)
    assert all(r["seeds"] == 3 for r in rows)
    found = predictors(rows)
    rho, p, n, verdict = found["ensemble_top1"]  # 0.72, 0.74, 0.70 against gains 0.03, 0.05, 0.013: same order
    assert (rho, n, verdict) == (pytest.approx(1.0), 3, stats.CANNOT_TELL) and p == pytest.approx(1 / 3)
    assert found["disagreement"][2] == 2  # the single teacher has no disagreement
    assert found["disagreement"][0] is None and found["disagreement"][3] == stats.CANNOT_TELL


def test_a_perfect_ranking_over_five_sets_predicts_the_gain():
    rows = [
        {
            "gain": g,
            "ensemble_top1": a,
            "disagreement": -a,
            "label_agreement": None,
            "true_class_probability": 1.0,
            "student_teacher_cka": None,
        }
        for g, a in [(0.01, 0.60), (0.02, 0.62), (0.03, 0.65), (0.04, 0.70), (0.05, 0.71)]
    ]
    found = predictors(rows)
    assert found["ensemble_top1"][3] == "predicts the gain" and found["ensemble_top1"][1] == pytest.approx(2 / 120)
    assert found["disagreement"][3] == "predicts a smaller gain"
    assert found["label_agreement"][:3] == (None, None, 0) and found["true_class_probability"][0] is None
    assert "ensemble top-1 (%): Spearman rho +1.00, p = 0.0167 (exact) over 5 sets" in "\n".join(predictor_lines(rows))
    ten = [{**rows[0], "gain": g, "ensemble_top1": a} for g, a in zip(range(10), [2, 1, 4, 3, 6, 5, 8, 7, 10, 9])]
    assert "p = 5.48e-05 (t approximation) over 10 sets" in "\n".join(predictor_lines(ten))


def test_the_report_table_shows_each_set_its_measurements_its_paired_gain_and_the_verdicts():
    groups = entry_groups(
        _students(
            {
                "baseline": ([], [0.50, 0.52]),
                "resnet_pair": (["resnet20_s0", "resnet20_s1"], [0.53, 0.54]),
                "mixed_pair": (["resnet20_s0", "rednet20_s0"], [0.56, 0.55]),
            }
        )
    )
    text = "\n".join(explanation_lines(groups, ANALYSIS))
    no_cka = "– | – |"  # student-teacher and student-baseline CKA: `libkd analyze` has not run
    mixed, resnet = "`mixed_pair` | rednet20_s0, resnet20_s0", "`resnet_pair` | resnet20_s0, resnet20_s1"
    assert f"| {mixed} | 74.0 | 35.0 | 91.0 | 70.0 | {no_cka} 55.5 | +4.50 ± 2.12 |" in text
    assert f"| {resnet} | 72.0 | 20.0 | 96.0 | 82.0 | {no_cka} 53.5 | +2.50 ± 0.71 |" in text
    assert "| +4.50 ± 2.12 | 95% CI" in text
    assert "ensemble top-1 (%): no test (2 sets with it and a gain; needs 3 that differ)" in text
    assert (
        explanation_lines(entry_groups(_students({"baseline": ([], [0.5]), "one": (["resnet20_s0"], [0.6])})), {}) == []
    )


def test_a_run_stopped_before_its_baseline_shows_the_measurements_and_ranks_no_gain():
    groups = entry_groups(
        _students(
            {
                "mixed_pair": (["resnet20_s0", "rednet20_s0"], [0.56, 0.55, 0.57]),
                "resnet_pair": (["resnet20_s0", "resnet20_s1"], [0.53, 0.54, None]),  # seed 2 not scored yet
            }
        )
    )
    rows = predictor_rows(groups, ANALYSIS)
    assert [(r["entry"], r["gain"], r["comparison"], r["seeds"]) for r in rows] == [
        ("mixed_pair", None, None, 3),
        ("resnet_pair", None, None, 2),
    ]
    assert rows[0]["top1"] == pytest.approx(0.56) and rows[1]["top1"] == pytest.approx(0.535)
    assert all(n == 0 for _, _, n, _ in predictors(rows).values())  # nothing to rank without a gain
    text = "\n".join(explanation_lines(groups, ANALYSIS))
    row = "| `mixed_pair` | rednet20_s0, resnet20_s0 | 74.0 | 35.0 | 91.0 | 70.0 | – | – | 56.0 |"
    assert f"{row} – | no baseline of this budget yet |" in text
    assert "ensemble top-1 (%): no test (0 sets with it and a gain" in text


def test_the_run_report_and_the_pooled_script_read_the_sets_from_a_run_folder(run_dir):  # noqa: F811
    from libkd_keras.analysis.report import write_report
    from tests.analysis.test_report_run import _write
    from tests.analysis.test_report_seeds import TEACHERS, _seeded_run

    _seeded_run(run_dir)  # baseline, resnet (resnet20_s0), rednet (rednet14_s0), mixed (both); 3 seeds each
    analysis = {
        "teachers": {"resnet20_s0": {"top1": 0.70}, "rednet14_s0": {"top1": 0.60}},
        "num_examples": 1000,
        "ensembles": [{"name": "mixed teachers", "members": TEACHERS["mixed"], "rule": "soft", "top1": 0.73}],
        "disagreement": {"labels": TEACHERS["mixed"], "matrix": [[0.0, 0.3], [0.3, 0.0]]},
    }
    _write(run_dir / "store" / "analysis.json", analysis)
    text = write_report(run_dir).path.read_text()
    assert "### What differs between the teacher sets" in text
    assert "| `mixed` | rednet14_s0, resnet20_s0 | 73.0 | 30.0 | – | – | – |" in text
    assert "ensemble top-1 (%): Spearman rho" in text  # three sets with an ensemble accuracy: a test, n = 3

    module = benchmark_script("what_predicts_gain")
    rows = module.pooled_rows([str(run_dir), str(run_dir)])  # the same run twice: six rows, pooled
    assert [r["entry"] for r in rows] == ["resnet", "rednet", "mixed"] * 2
    assert "At 2 student epochs, no MixUp/CutMix: over the 6 of 6 sets with a gain:" in module.markdown(rows)
    with pytest.raises(SystemExit, match="not a libkd run folder"):
        module.pooled_rows([str(run_dir / "missing")])


def test_a_published_log_pools_like_its_run_folder(run_dir, tmp_path):  # noqa: F811
    """`what_predicts_gain.py` reads the log `publish_run.py` published from a run as it reads the run folder: the
    same sets, measurements and gains (to the log's rounding), so that runs whose folders are gone still count."""
    from tests.analysis.test_report_run import _teacher, _write
    from tests.analysis.test_report_seeds import TEACHERS, _seeded_run

    _seeded_run(run_dir)
    for name, arch, top1 in (("resnet20_s0", "resnet20", 0.70), ("rednet14_s0", "rednet14", 0.60)):
        _write(run_dir / "teachers" / f"{name}.json", _teacher(name, arch, 0, top1))
    rows = [
        {"name": name, "members": members, "agreement": agreement, "true_class_probability": agreement - 0.2}
        for name, members, agreement in (
            ("resnet20_s0", ["resnet20_s0"], 0.954),
            ("rednet14_s0", ["rednet14_s0"], 0.712),
            ("all 2 teachers", TEACHERS["mixed"], 0.9),
        )
    ]
    analysis = {
        "teachers": {"resnet20_s0": {"top1": 0.70}, "rednet14_s0": {"top1": 0.60}},
        "num_examples": 1000,
        "ensembles": [{"name": "all 2 teachers", "members": TEACHERS["mixed"], "rule": "soft", "top1": 0.731}],
        "disagreement": {"labels": TEACHERS["mixed"], "matrix": [[0.0, 0.3], [0.3, 0.0]]},
        "train_targets": {"temperature": 1.0, "num_examples": 500, "rows": rows},
    }
    _write(run_dir / "store" / "analysis.json", analysis)
    results = tmp_path / "results"
    benchmark_script("publish_run").main(
        [str(run_dir), "--name", "log", "--command", "libkd", "--results", str(results)]
    )
    module = benchmark_script("what_predicts_gain")

    from_run, from_log = module.pooled_rows([str(run_dir)]), module.pooled_rows([str(results / "log.md")])
    assert [r["entry"] for r in from_log] == [r["entry"] for r in from_run] == ["resnet", "rednet", "mixed"]
    for a, b in zip(from_run, from_log):
        assert (b["teachers"], b["seeds"], b["setting"]) == (a["teachers"], 3, "2 student epochs, no MixUp/CutMix")
        assert b["gain"] == pytest.approx(a["gain"], abs=5e-5) and a["gain"] is not None  # points, two decimals
        assert b["comparison"]["interval"] == pytest.approx(a["comparison"]["interval"], abs=3e-4)
        for factor in ("ensemble_top1", "disagreement", "label_agreement", "true_class_probability"):
            assert (a[factor] is None) == (b[factor] is None), factor
            assert b[factor] == pytest.approx(a[factor], abs=5e-4), factor  # one decimal in "What differs"
    assert [r["label_agreement"] for r in from_log] == pytest.approx([0.954, 0.712, 0.9])
    assert from_log[2]["disagreement"] == pytest.approx(0.3) and from_log[0]["disagreement"] is None
    text = module.markdown(from_run + from_log)
    assert "At 2 student epochs, no MixUp/CutMix: over the 6 of 6 sets with a gain:" in text
    assert "| log | `mixed` | rednet14_s0, resnet20_s0 | 73.1 | 30.0 | 90.0 | 70.0 |" in text

    (tmp_path / "other.md").write_text("# not a log\n\nno tables\n")
    with pytest.raises(SystemExit, match="is it a log of benchmarks/publish_run.py"):
        module.pooled_rows([str(tmp_path / "other.md")])
