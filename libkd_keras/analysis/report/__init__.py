"""The run report: `report.md` + PNG plots in the run folder, and a short table for the terminal.

Five files, read in this order:

- `records.py`: reading the run folder's artifacts (teacher and student records, exports,
  steps, config) into plain rows; records of older run folders are read under today's keys.
- `seeds.py`: statistics over a student entry's seeds (mean ± std, gains, paired comparison).
- `sections.py`: the model sections (teachers, students, curves: Tables 2-4).
- `run_sections.py`: the edge, ablation/CKA and steps sections, and the terminal table.
- `writer.py`: `write_report(run_dir)` assembles them into `report.md` and returns a `ReportSummary`.

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
