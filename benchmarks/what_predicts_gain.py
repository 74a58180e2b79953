"""Which teacher-set measurement predicts a student's gain, pooled over several run folders (issue 33).

Each run folder's report already answers it for its own sets (`libkd report`, "What differs between the
teacher sets"). This pools every student entry that learned from teachers in the given runs, each paired
with the baseline of its own run and budget, and ranks them by each measurement (ensemble accuracy,
teacher disagreement, targets against labels, student-teacher CKA) against the gain: Spearman's rank
correlation with its p. A set whose run has no baseline yet is listed with its measurements and left out of
the ranking.

    python benchmarks/what_predicts_gain.py saved_models/mixed-vs-same saved_models/patient [--write FILE]
"""

import argparse
import sys
from pathlib import Path

from libkd_keras.analysis.report.records import load_students
from libkd_keras.analysis.report.seeds import entry_groups
from libkd_keras.analysis.report.sets import predictor_lines, predictor_rows, table_lines
from libkd_keras.atomic_files import read_json
from libkd_keras.run_layout import RunLayout


def pooled_rows(runs):
    rows = []
    for run in runs:
        layout = RunLayout(run)
        if not (Path(run) / "config.toml").exists():
            raise SystemExit(f"{run!r} is not a libkd run folder (no config.toml).")
        groups, cka = entry_groups(load_students(layout)), read_json(layout.cka_record)
        rows += predictor_rows(groups, read_json(layout.store_analysis), run=Path(run).name, cka=cka)
    return rows


def markdown(rows):
    gained = f"Over the {sum(r['gain'] is not None for r in rows)} of {len(rows)} sets with a gain:"
    return "\n".join([*table_lines(rows, pooled=True), "", gained, "", *predictor_lines(rows)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (each with its store/analysis.json and students)")
    parser.add_argument("--write", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    text = markdown(pooled_rows(args.runs))
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
