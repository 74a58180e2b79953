"""The run report: `report.md` + PNG plots in the run folder, and a short table for the terminal.

Eight files, read in this order:

- `records.py`: reading the run folder's artifacts (teacher and student records, stored test
  predictions, exports, steps, config) into plain rows; older run folders are read under today's keys.
- `stats.py`: the statistics (Wilson interval, exact McNemar, Student t) and the verdict they give.
- `seeds.py`: comparisons of student entries paired by seed (mean ± std, gains, mixed vs same-bias),
  each with its interval or McNemar test and verdict.
- `sets.py`: what differs between the students' teacher sets (ensemble accuracy, disagreement, targets
  against labels) and which of those predicts the gain (rank correlation, exact p).
- `sections.py`: the model sections (teachers, students, curves: Tables 2-4).
- `run_sections.py`: the edge, ablation/CKA and steps sections, and the terminal table.
- `writer.py`: `write_report(run_dir)` assembles them into `report.md` and returns a `ReportSummary`.
- `summary.py`: `run_summary(run_dir)`, the run's results as the JSON that benchmarks publish.

Example:
>>> summary = write_report("saved_models/quick")
>>> print(summary.table)
"""

from libkd_keras.analysis.report.records import (
    current_keys,
    load_config,
    load_exports,
    load_steps,
    load_students,
    load_teachers,
)
from libkd_keras.analysis.report.sections import NOT_RUN
from libkd_keras.analysis.report.writer import ReportSummary, write_report

__all__ = [
    "NOT_RUN",
    "ReportSummary",
    "current_keys",
    "load_config",
    "load_exports",
    "load_steps",
    "load_students",
    "load_teachers",
    "write_report",
]
