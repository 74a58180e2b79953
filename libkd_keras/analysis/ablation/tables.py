"""The ablation's results as tables: per-seed records -> rows -> `ablation.md` and `ablation.json`.

`summarize` turns the runner's per-seed records into one row per experiment (means over seeds,
the gain over the baseline student of the same recipe and its std, its paired test and verdict:
a Student-t 95% interval over common seeds, or with one seed an exact McNemar test on the two
students' stored test predictions); `ablation_table` renders the rows with Table 4's columns;
`write_ablation` writes both files. Accuracies are in percent.

Example:
>>> rows = summarize(experiments, {"baseline": {0: record}}, epochs=3)
>>> print(ablation_table(rows))
"""

import json
from pathlib import Path

import numpy as np

from libkd_keras.atomic_files import json_safe, write_text_atomic
from libkd_keras.evaluation import PREDICTIONS_SUFFIX


def _fmt(value, digits=2, signed=False):
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _millions(count):
    if count is None:
        return "—"
    return f"{count / 1e6:.2f}M" if count >= 100_000 else f"{count:,}"


def _gain_test(row):
    if row.get("gain_interval"):
        low, high = row["gain_interval"]
        return f"95% CI [{low:+.2f}, {high:+.2f}] (t, {len(row['gain_seeds'])} seeds)"
    if row.get("gain_p") is not None:
        return f"McNemar p = {row['gain_p']:.3g} ({row['gain_discordant'][0]} vs {row['gain_discordant'][1]} images)"
    return "—"


def ablation_table(rows):
    """The rows of `run_ablation` as one Markdown table (Table 4's columns, the heads, the gain and its test)."""
    header = (
        "| experiment | teacher set | distillation | mixup/cutmix | alpha | params | size MB | "
        "student params | epochs | top-1 | top-5 | cls top-1 | dist top-1 | gain | gain test | gain holds? | note |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        distillation = row["distillation"]
        if distillation == "soft":
            distillation = f"soft (T={row['temperature']:g})"
        if row["ensemble"] == "vote" and row["teachers"]:
            distillation += ", vote"
        gain = _fmt(row["gain"], signed=True)
        if row["gain"] is not None and row.get("gain_std") is not None:
            gain += f" ± {row['gain_std']:.2f}"
        cells = [  # the experiment's settings: known before it runs
            row["experiment"],
            row["teacher_set"],
            distillation,
            "✓" if row["mixup_cutmix"] else "✗",
            _fmt(row["alpha"]) if row["teachers"] else "—",
            _millions(row["params"]),
            _fmt(row["size_mb"], 1),
        ]
        if row["status"] != "done":
            cells += ["—", str(row["epochs"]), "—", "—", "—", "—", "—", "—", "—", f"{row['status']}: {row['note']}"]
        else:
            cells += [
                _millions(row["student_params"]),
                str(row["epochs"]),
                _fmt(row["top1"]),
                _fmt(row["top5"]),
                _fmt(row["top1_cls"]),
                _fmt(row["top1_dist"]),
                gain,
                _gain_test(row),
                row.get("verdict") or "—",
                row["note"],
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def teacher_set_columns(store, teachers):
    """Table 4's `#Params` and `Param Size` of a teacher set, from the stored teacher metadata."""
    from libkd_keras.distill.students import teacher_set_size  # TensorFlow, only when a table needs it

    return teacher_set_size(store, list(teachers))


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def _paired_test(row, paired, seeds, experiment, baseline, predictions_dir):
    """The gain's test and verdict into `row`: t interval over >= 2 seeds, else McNemar on stored predictions."""
    from libkd_keras.analysis.report import stats
    from libkd_keras.analysis.report.seeds import same_images
    from libkd_keras.evaluation import load_predictions

    row.update(gain_seeds=list(seeds), gain_interval=None, gain_p=None, gain_discordant=None)
    row["verdict"] = stats.CANNOT_TELL
    if len(paired) >= 2:
        _, low, high = stats.t_interval(paired)
        row.update(gain_interval=[low, high], verdict=stats.verdict_from_interval((low, high)))
    elif len(paired) == 1 and predictions_dir is not None:
        files = [
            Path(predictions_dir) / f"{name}__seed{seeds[0]}{PREDICTIONS_SUFFIX}" for name in (experiment, baseline)
        ]
        correct = same_images(*(load_predictions(f) for f in files))
        if correct is not None:
            only_a, only_b = stats.discordant(*correct)
            p = stats.mcnemar(only_a, only_b)
            row.update(gain_p=p, gain_discordant=[only_a, only_b], verdict=stats.verdict_from_test(p, paired[0]))


def summarize(experiments, records, epochs, teacher_columns=None, predictions_dir=None):
    """Table rows from per-seed records: `{experiment name: {seed: record}}` (missing = not run).

    Each row's `top1`/`top5` are the mean over seeds of the inference output (both heads'
    average; the class head for the baseline), in percent; `top1_cls`/`top1_dist` the single
    heads. `gain` is the mean over seeds of `top1 - baseline top1` (same seed, the baseline of
    the same recipe), `gain_std` its sample std when there are several seeds. Its test: over
    several common seeds `gain_interval`, the Student-t 95% interval; with one, `gain_p`, the exact
    McNemar p on the students' stored predictions (`predictions_dir/<experiment>__seed<k>.predictions.npz`)
    with `gain_discordant` (images only the student / only the baseline got right); `verdict` on
    "beats the baseline" from that test alone ("holds", "does not hold", "cannot tell at this n").
    """
    baselines = {e.recipe: e.name for e in experiments if e.is_baseline}
    rows = []
    for experiment in experiments:
        runs = records.get(experiment.name, {})
        params, size = (teacher_columns or {}).get(experiment.name, (None, None))
        row = {
            "experiment": experiment.name,
            "group": experiment.group,
            "teacher_set": experiment.teacher_set,
            "teachers": list(experiment.teachers),
            "distillation": experiment.distillation,
            "temperature": experiment.temperature,
            "ensemble": experiment.ensemble,
            "recipe": experiment.recipe,
            "mixup_cutmix": experiment.recipe == "superior",
            "alpha": experiment.alpha,
            "params": params,
            "size_mb": size,
            "epochs": epochs,
            "seeds": sorted(runs),
            "student_params": None,
            "top1": None,
            "top5": None,
            "top1_cls": None,
            "top1_dist": None,
            "top1_per_seed": {},
            "gain": None,
            "gain_std": None,
            "status": "done",
            "note": "",
        }
        if experiment.skip:
            row.update(status="skipped", note=experiment.skip)
        elif not runs:
            row.update(status="missing", note="not run")
        else:
            main = "cls" if experiment.is_baseline else "both"
            top1 = {seed: r["top1"][main] for seed, r in runs.items()}
            row["top1_per_seed"] = {str(seed): v for seed, v in sorted(top1.items())}
            row["top1"], _ = _mean_std(list(top1.values()))
            row["top5"], _ = _mean_std([r["top5"][main] for r in runs.values()])
            row["top1_cls"], _ = _mean_std([r["top1"].get("cls") for r in runs.values()])
            row["top1_dist"], _ = _mean_std([r["top1"].get("dist") for r in runs.values()])
            row["student_params"] = next(iter(runs.values())).get("student_params")
            base = records.get(baselines.get(experiment.recipe), {})
            common = [s for s in sorted(top1) if s in base]
            paired = [top1[s] - base[s]["top1"]["cls"] for s in common]
            row["gain"], row["gain_std"] = _mean_std(paired)
            if not experiment.is_baseline and paired:
                _paired_test(row, paired, common, experiment.name, baselines[experiment.recipe], predictions_dir)
            if experiment.recipe not in baselines:
                row["note"] = f"no {experiment.recipe} baseline in this ablation"
            elif not paired:
                row["note"] = "its baseline has not run for the same seeds"
        rows.append(row)
    return rows


def write_ablation(out_dir, rows, *, epochs, batch_size, seeds, store_path, train_examples, test_examples):
    """Writes `out_dir/ablation.json` (the settings and every row) and `out_dir/ablation.md` (the table)."""
    out_dir = Path(out_dir)
    summary = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seeds": seeds,
        "store": store_path,
        "train_examples": train_examples,
        "test_examples": test_examples,
        "rows": rows,
    }
    write_text_atomic(out_dir / "ablation.json", json.dumps(json_safe(summary), indent=1) + "\n")
    write_text_atomic(
        out_dir / "ablation.md",
        "\n".join(
            [
                "## Ablation: teacher sets, distillation type, temperature (one store, no teacher re-run)",
                "",
                f"{train_examples} training and {test_examples} test images, {epochs} epochs, batch {batch_size}, "
                f"seeds {seeds}. Top-1/top-5 in %: the inference output (average of the class and distillation "
                "heads; the class head for baselines); cls/dist: each head alone. Params and size: the teachers' "
                "(paper Table 4). Gain: top-1 minus the student baseline of the same recipe, same seed"
                + (" (mean ± std over seeds)" if len(seeds) > 1 else "")
                + "; its test: the Student-t 95% interval over common seeds, or with one seed an exact McNemar "
                "test on the two students' predictions for the same test images; the verdict on \"beats the "
                'baseline" follows from it alone (holds / does not hold / cannot tell at this n).',
                "",
                ablation_table(rows),
                "",
            ]
        ),
    )
