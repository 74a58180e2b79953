"""Which teacher-set measurement predicts a student's gain, pooled over run folders and published logs (issue 33).

Each run folder's report already answers it for its own sets (`libkd report`, "What differs between the
teacher sets"). This pools every student entry that learned from teachers in the given sources, each paired
with the baseline of its own run and budget, and ranks them by each measurement (ensemble accuracy,
teacher disagreement, targets against labels, student-teacher CKA) against the gain: Spearman's rank
correlation with its p, within each student setting (student epochs, and MixUp/CutMix or not), because the
gain grows with the student's epochs whatever its teachers. A set whose run has no baseline yet is listed
with its measurements and left out of the ranking.

A source is a run folder, or the log `benchmarks/publish_run.py` published from one
(`benchmarks/results/<name>.md`), so that runs whose folders are gone still count: the log's report tables
give each entry's teachers, top-1 and gain, and its teachers', ensembles' and stored targets' measurements
(CKA and teacher disagreement only where the log's report had them). The measurements describe the stored
targets on the clean images, so pool runs whose students learned from stored targets, and give each run
once (its folder or its log, not both).

    python benchmarks/what_predicts_gain.py saved_models/mixed-vs-same \
        benchmarks/results/budget-200-epochs-2026-12-03.md [--write FILE]
"""

import argparse
import math
import re
import sys
from pathlib import Path

from libkd_keras.analysis.report import stats
from libkd_keras.analysis.report.records import load_students
from libkd_keras.analysis.report.seeds import entry_groups
from libkd_keras.analysis.report.sets import FACTORS, predictor_lines, predictor_rows, set_factors, table_lines
from libkd_keras.atomic_files import read_json
from libkd_keras.run_layout import RunLayout


def setting(epochs, mix):
    """The student setting whose gains are ranked together."""
    return f"{epochs} student epochs, {'MixUp/CutMix' if mix else 'no MixUp/CutMix'}"


def _mixes(recipe):
    recipe = recipe if isinstance(recipe, dict) else {}
    return bool(recipe.get("mixup_alpha") or recipe.get("cutmix_alpha"))


def run_rows(run):
    """`sets.predictor_rows` of one run folder, each with its student `setting`."""
    layout = RunLayout(run)
    if not (Path(run) / "config.toml").exists():
        raise SystemExit(f"{run!r} is not a libkd run folder (no config.toml).")
    groups, cka = entry_groups(load_students(layout)), read_json(layout.cka_record)
    rows = predictor_rows(groups, read_json(layout.store_analysis), run=Path(run).name, cka=cka)
    for row in rows:
        first = groups[row["entry"]][0]
        row["setting"] = setting(first.get("epochs"), _mixes(first.get("recipe")))
    return rows


def log_tables(text):
    """`[(heading, [row dicts]), ...]`: every Markdown table of a published log, under the heading above it."""
    tables, heading, header = [], None, None
    for line in text.splitlines():
        if line.startswith("|") and heading is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
                tables.append((heading, []))
            elif not all(set(c) <= set("-: ") for c in cells):
                tables[-1][1].append(dict(zip(header, cells)))
            continue
        header = None
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def _table(tables, start, path=None):
    """The first table under a heading that starts with `start`; without `path`, [] when there is none."""
    found = next((rows for heading, rows in tables if heading.startswith(start)), None)
    if found is None and path is not None:
        raise SystemExit(f"{path}: no table under a heading '{start}...'; is it a log of benchmarks/publish_run.py?")
    return found or []


def _number(text):
    """`"58.07 ± 0.48"` -> (0.5807, 0.0048); `"+4.25 (unpaired)"` -> (0.0425, None); "–" -> (None, None)."""
    found = re.match(r"^([+-]?\d+(?:\.\d+)?)(?:\s*±\s*(\d+(?:\.\d+)?))?", text.replace(",", ""))
    if not found:
        return None, None
    return float(found.group(1)) / 100.0, None if found.group(2) is None else float(found.group(2)) / 100.0


def _log_comparison(row, n):
    """The gain's paired test as the log gives it: McNemar's, or the t interval of `n` paired seeds."""
    mean, std = _number(row["Gain (points)"])
    test = row.get("Gain test", "")
    found = re.match(r"McNemar p = ([\d.e+-]+) \((\d+) vs (\d+) images\)", test)
    if found:
        p, only_a, only_b = float(found.group(1)), int(found.group(2)), int(found.group(3))
        return {"mean": mean, "std": std, "n": 1, "test": "mcnemar", "p": p, "only_a": only_a, "only_b": only_b}
    if "unpaired" in row["Gain (points)"] or std is None or n < 2:
        return {"mean": mean, "std": std, "n": n, "test": None, "why": "unpaired in its log"}
    half = stats.t_quantile(n - 1) * std / math.sqrt(n)  # the log's mean ± std of the per-seed differences
    return {"mean": mean, "std": std, "n": n, "test": "t", "interval": (mean - half, mean + half)}


def log_analysis(tables):
    """The parts of a run's `store/analysis.json` its published log's tables give (`sets.set_factors` reads them):
    each teacher's top-1, each soft ensemble's top-1, and the stored targets against the labels."""
    return {
        "teachers": {r["Teacher"]: {"top1": _number(r["Top-1 (%)"])[0]} for r in _table(tables, "Teachers (paper")},
        "ensembles": [
            {"members": r["Members"].split(", "), "rule": "soft", "top1": _number(r["Top-1 (%)"])[0]}
            for r in _table(tables, "Ensembles")
            if r.get("Technique") == "Soft averaging"
        ],
        "train_targets": {
            "rows": [
                {
                    "members": r["Members"].split(", "),
                    "agreement": _number(r["Agree with the label (%)"])[0],
                    "true_class_probability": _number(
                        next((v for k, v in r.items() if k.startswith("Probability of the label")), "–")
                    )[0],
                }
                for r in _table(tables, "Stored targets")
            ]
        },
    }


def log_rows(path):
    """The rows `run_rows` gives for a run folder, from the run's published log (`benchmarks/results/<name>.md`)."""
    tables = log_tables(Path(path).read_text(encoding="utf-8"))
    students = _table(tables, "Students (paper", path)
    analysis = log_analysis(tables)
    differs = {r["Student"].strip("`"): r for r in _table(tables, "What differs")}
    rows = []
    for r in students:
        members = sorted(r["Teachers"].split(", ")) if r["Teachers"] not in ("None", "–", "") else []
        if not members:
            continue
        n = int(r.get("Seeds (n)", "1").split()[0])
        gain, comparison = None, None
        if _number(r.get("Gain (points)", "–"))[0] is not None:
            comparison = _log_comparison(r, n)
            gain = comparison["mean"]
        found = {factor: None for factor in FACTORS} | set_factors(members, analysis)
        for factor, title in FACTORS.items():  # the log's own "What differs" table, where it had one
            value = _number(differs.get(r["Student"], {}).get(title, "–"))[0]
            if found[factor] is None and value is not None:
                found[factor] = value
        rows.append(
            {
                "run": Path(path).stem,
                "entry": r["Student"],
                "teachers": members,
                "top1": _number(r["Top-1 (%)"])[0],
                "seeds": n,
                "gain": gain,
                "comparison": comparison,
                **found,
                "setting": setting(int(r["Epochs"]), "✓" in (r.get("MixUp", ""), r.get("CutMix", ""))),
            }
        )
    return rows


def pooled_rows(sources):
    rows = []
    for source in sources:
        rows += log_rows(source) if str(source).endswith(".md") else run_rows(source)
    return rows


def markdown(rows):
    """The pooled table, then which measurement predicts the gain within each student setting."""
    lines = table_lines(rows, pooled=True)
    for name in dict.fromkeys(r["setting"] for r in rows):
        same = [r for r in rows if r["setting"] == name]
        gained = sum(r["gain"] is not None for r in same)
        lines += ["", f"At {name}: over the {gained} of {len(same)} sets with a gain:", "", *predictor_lines(same)]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders, or the logs publish_run.py published (.md)")
    parser.add_argument("--write", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    text = markdown(pooled_rows(args.runs))
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
