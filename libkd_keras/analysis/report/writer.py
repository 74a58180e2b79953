"""Writing the run report: `report.md` + PNG plots in the run folder, and a short table for the terminal.

Built from the run folder's artifacts alone (see `RunLayout`), so `libkd report RUN_DIR` can
rewrite it at any time; a section whose artifacts are missing says "not run".

Example:
>>> summary = write_report("saved_models/quick")
>>> print(summary.table)
"""

import dataclasses
from pathlib import Path

from libkd_keras.analysis.report import run_sections, sections
from libkd_keras.analysis.report.records import load_config, load_exports, load_steps, load_students, load_teachers
from libkd_keras.atomic_files import read_json, write_text_atomic
from libkd_keras.run_layout import RunLayout


@dataclasses.dataclass
class ReportSummary:
    """What `write_report` wrote: the report path, the terminal table, each section's state, the plots."""

    path: Path
    table: str
    sections: dict
    plots: list


def write_report(run_dir):
    """Writes `report.md` and `plots/*.png` into `run_dir`; returns a `ReportSummary`.

    Args:
        run_dir: path. A run folder (see `RunLayout`); missing artifacts make "not run" sections.
    """
    layout = RunLayout(run_dir)
    config = load_config(layout)
    teachers, students = load_teachers(layout), load_students(layout)
    analysis, exports, steps = read_json(layout.store_analysis), load_exports(layout), load_steps(layout)
    made = []
    teacher_md, teacher_state = sections.teacher_section(teachers, analysis, layout, made)
    student_md, student_state = sections.student_section(students, analysis, layout, made)
    curves_md, curves_state = sections.curves_section(teachers, students, layout, made)
    edge_md, edge_state = run_sections.edge_section(exports, layout, made)
    optional = run_sections.optional_sections(layout)
    markdown = (
        "\n\n".join(
            [
                sections.header(config, layout, students),
                teacher_md,
                student_md,
                curves_md,
                edge_md,
                *optional.values(),
                run_sections.steps_section(steps, run_sections.resumed_training(steps, teachers, students)),
            ]
        )
        + "\n"
    )
    write_text_atomic(layout.report, markdown)
    return ReportSummary(
        path=layout.report,
        table=run_sections.terminal_table(teachers, analysis, students, exports),
        sections={
            "teachers": teacher_state,
            "students": student_state,
            "curves": curves_state,
            "edge": edge_state,
            **{key: "ok" for key in optional},
        },
        plots=made,
    )
