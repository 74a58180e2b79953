"""The report's model sections, one function each, from the rows `records.py` loads, and their table helpers.

Every section function returns `(markdown, state)`: state "ok", or "not run" when its artifacts
are missing (the section then says so). Plots are drawn into `layout.plots` and appended to `made`. The run sections
(edge, ablation/CKA, steps) and `terminal_table` are in `run_sections.py`.

- Teachers: the paper's Tables 2 and 3, the ensembles (soft averaging, majority vote), disagreement.
- Students: the paper's Table 4 (teacher set, distillation, MixUp/CutMix, alpha, params, size,
  epochs, top-1, top-5, gain over the baseline student), plus per-head accuracy.
- What differs between the teacher sets (ensemble accuracy, disagreement, targets against labels) and
  which difference predicts the gain: `sets.py`.
- Students' gains: each with its paired test (McNemar on the same test images, or a t interval over
  seeds) and the verdict it gives; every accuracy with its binomial (Wilson) 95% interval.
- Curves: teachers' training loss and test accuracy per epoch; students' label loss (every student),
  distillation loss (distilled students) and test accuracy per epoch, and test accuracy against
  cumulative training wall time.
"""

import functools
import time

from libkd_keras.analysis import plots
from libkd_keras.analysis.report import seeds, sets, stats
from libkd_keras.analysis.report.records import baseline_student, student_setting
from libkd_keras.atomic_files import read_json

NOT_RUN = "_not run_"
CI_NOTE = (
    "Top-1 95% CI: the binomial (Wilson score) interval of the accuracy on this many test images: the range "
    "the accuracy on new images of the same kind would fall in 95% of the time."
)


# The score columns of the students table: top-1 with its interval, top-5, the gain over the student alone,
# its paired test and the verdict that test gives.
SCORE_COLUMNS = ["Top-1 (%)", "Top-1 95% CI", "Top-5 (%)", "Gain (points)", "Gain test", "Gain holds?"]


def _pct(value, digits=2):
    return "–" if value is None else f"{100.0 * value:.{digits}f}"


def _num(value, fmt="{:,}"):
    return "–" if value is None else fmt.format(value)


def _ci(accuracy, n):
    """The binomial (Wilson) 95% interval of an accuracy on `n` test images, as `"[47.1, 53.3]"` (`"–"` unknown)."""
    return seeds.interval_text(stats.accuracy_interval(accuracy, n))


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _yes(flag):
    return "✓" if flag else "✗"


def header(config, layout, students=()):
    data, run = config.get("data", {}), config.get("run", {})
    teachers = config.get("teachers", {})
    setting = functools.partial(student_setting, config, students)
    lines = [f"# LIB-KD run report: {run.get('name', layout.root.name)}", ""]
    lines.append(
        f"Written {time.strftime('%Y-%m-%d %H:%M')} from the artifacts in this folder "
        f"(`libkd report {layout.root}` rewrites it)."
    )
    if data:
        limit = lambda n: "all" if not n else f"{n:,}"  # noqa: E731
        lines += [
            "",
            f"- Data: `{data.get('dataset')}`, image size {data.get('image_size') or 'as stored'}; "
            f"student training images: {limit(data.get('train_limit'))}, teacher training images: "
            f"{limit(teachers.get('train_limit') or data.get('train_limit'))}, test images: "
            f"{limit(data.get('test_limit'))}.",
            f"- Teachers: {teachers.get('resnet_epochs') or teachers.get('epochs')} epochs (ResNet), "
            f"{teachers.get('rednet_epochs') or teachers.get('epochs')} (RedNet), "
            f"batch {teachers.get('batch_size')}; students: "
            f"{setting('arch')} (patch {setting('patch_size')}), {setting('epochs', ' epochs')}, "
            f"batch {setting('batch_size')}, recipe {setting('recipe')}; precision {run.get('precision')}.",
        ]
    return "\n".join(lines)


def _train_target_lines(found):
    """The stored soft targets on the student's training images against the labels (store/analysis.json)."""
    if not found:
        return []
    return [
        "",
        "### Stored targets on the student's training images",
        "",
        _table(
            [
                "Teachers",
                "Members",
                "Agree with the label (%)",
                f"Probability of the label at T = {found['temperature']:g} (%)",
            ],
            [
                [r["name"], ", ".join(r["members"]), _pct(r["agreement"]), _pct(r["true_class_probability"])]
                for r in found["rows"]
            ],
        ),
        "",
        f"On the {found['num_examples']:,} images the students train on. Targets that agree with nearly every label "
        "and put most of the probability on it add little beyond the labels: teachers that memorised these "
        "images pass on less.",
    ]


def teacher_section(teachers, analysis, layout, made):
    lines = ["## Teachers (paper Tables 2 and 3)", ""]
    if not teachers:
        return "\n".join(lines + [NOT_RUN]), "not run"
    lines.append(
        _table(
            [
                "Teacher",
                "Architecture",
                "Seed",
                "Epochs",
                "Training time (s)",
                "#Params",
                "Size (MB)",
                "Top-1 (%)",
                "Top-1 95% CI",
                "Top-5 (%)",
                "Train acc. (%)",
            ],
            [
                [
                    t["name"],
                    t["architecture"],
                    _num(t["seed"], "{}"),
                    _num(t["epochs"], "{}"),
                    _num(t["train_seconds"], "{:,.1f}"),
                    _num(t["params"]),
                    _num(t["size_mb"], "{:.2f}"),
                    _pct(t["top1"]),
                    _ci(t["top1"], t["test_images"]),
                    _pct(t["top5"]),
                    _pct(t["train_accuracy"]),
                ]
                for t in teachers
            ],
        )
    )
    lines += ["", CI_NOTE]
    lines += ["", "### Ensembles", ""]
    ensembles = (analysis or {}).get("ensembles") or []
    if not ensembles:
        lines.append(NOT_RUN + " (the test store and its analysis are written by the precompute step)")
    else:
        lines.append(
            _table(
                ["Ensemble", "Members", "Technique", "#Params", "Size (MB)", "Top-1 (%)", "Top-1 95% CI", "Top-5 (%)"],
                [
                    [
                        e["name"],
                        ", ".join(e["members"]),
                        {"soft": "Soft averaging", "vote": "Majority voting"}.get(e["rule"], e["rule"]),
                        _num(e.get("params")),
                        _num(e.get("size_mb"), "{:.2f}"),
                        _pct(e.get("top1")),
                        _ci(e.get("top1"), (analysis or {}).get("num_examples")),
                        _pct(e.get("top5")),
                    ]
                    for e in ensembles
                ],
            )
        )
    lines += _train_target_lines((analysis or {}).get("train_targets"))
    disagreement = (analysis or {}).get("disagreement")
    lines += ["", "### Disagreement", ""]
    if disagreement and len(disagreement.get("labels", [])) >= 2:
        path = plots.plot_heatmap(
            disagreement["matrix"],
            disagreement["labels"],
            layout.plots / "disagreement.png",
            title="Disagreement rate on the test split",
        )
        made.append(path)
        lines += [
            "Fraction of test images on which two predictors pick different classes "
            "(paper Figure 9: 0.07431 between the ResNet and RedNet ensembles).",
            "",
            "![disagreement](plots/disagreement.png)",
        ]
    else:
        lines.append(NOT_RUN + " (needs two teachers and the test store)")
    return "\n".join(lines), "ok"


def _student_cells(s):
    """A student's Table 4 columns from "Teachers" to "Epochs"."""
    teachers = s.get("teachers") or []
    return [
        ", ".join(teachers) or "None",
        _yes(True),
        s.get("distillation") if teachers else "✗",
        _yes(s.get("mixup")),
        _yes(s.get("cutmix")),
        _num(s.get("alpha"), "{}") if teachers else "✗",
        _num(s.get("teacher_params")),
        _num(s.get("teacher_size_mb"), "{:.1f}"),
        _num(s.get("params")),
        _num(s.get("size_mb"), "{:.1f}"),
        _num(s.get("epochs"), "{}"),
    ]


def student_section(students, analysis, layout, made):
    lines = ["## Students (paper Table 4)", ""]
    if not students:
        return "\n".join(lines + [NOT_RUN]), "not run"
    baseline = baseline_student(students)
    columns = [
        "Teachers",
        "True label",
        "Distillation",
        "MixUp",
        "CutMix",
        "alpha",
        "Teachers' #params",
        "Teachers' size (MB)",
        "#Params",
        "Size (MB)",
        "Epochs",
    ]
    if seeds.several_seeds(students):
        groups = seeds.entry_groups(students)
        table, notes = seeds.entry_rows(groups, _student_cells)
        lines.append(_table(["Student", *columns, "Seeds (n)", *SCORE_COLUMNS], table))
        lines += ["", seeds.NOTE, *([""] + notes if notes else []), "", *seeds.comparison_lines(groups)]
    else:
        rows = []
        for s in students:
            gain = test = verdict = "–"
            own = baseline_student(students, like=s, seed=s.get("seed"))
            if own is not None and s.get("top1") is not None and s is not own:
                gain = f"{100.0 * (s['top1'] - own['top1']):+.2f}"
                c = seeds.student_vs(s, own)
                test, verdict = seeds.test_text(c), c["verdict"]
            rows.append(
                [
                    s.get("name"),
                    *_student_cells(s),
                    _pct(s.get("top1")),
                    _ci(s.get("top1"), s.get("test_images")),
                    _pct(s.get("top5")),
                    gain,
                    test,
                    verdict,
                ]
            )
        lines.append(_table(["Student", *columns, *SCORE_COLUMNS], rows))
        lines += [
            "",
            "Top-1 is the student's inference output (the average of its class and distillation heads) "
            "on the test split, with its binomial (Wilson) 95% interval; gain is over the baseline student "
            "(no teacher) of the same budget: architecture, patch, epochs, batch, learning rate and images. "
            "Its test is an exact two-sided McNemar test on the two students' predictions for the same test "
            "images (the images only one of them got right: this student's count vs the baseline's). "
            '"Gain holds?" follows from the test alone: **holds** when p < 0.05 in the student\'s favour, '
            "**does not hold** when p < 0.05 against it, else **cannot tell at this n**.",
        ]
        groups = seeds.entry_groups(students)
        if seeds.mixed_vs_single(groups):  # one seed each: McNemar on the same test images
            lines += ["", *seeds.comparison_lines(groups)]
    cka = read_json(layout.cka_record)  # `libkd analyze`: None before it ran
    explanation = sets.explanation_lines(seeds.entry_groups(students), analysis, cka)
    if explanation:
        lines += ["", *explanation]
    if any(s.get("cls_top1") is not None for s in students):
        lines += [
            "",
            "Per head (paper Figure 11b):",
            "",
            _table(
                ["Student", "Class head top-1 (%)", "Distillation head top-1 (%)", "Average top-1 (%)", "95% CI"],
                [
                    [
                        s["name"],
                        _pct(s.get("cls_top1")),
                        _pct(s.get("dist_top1")),
                        _pct(s.get("top1")),
                        _ci(s.get("top1"), s.get("test_images")),
                    ]
                    for s in students
                    if s.get("evaluated")
                ],
            ),
        ]
    scored = [s for s in students if s.get("top1") is not None]
    if scored:
        made.append(
            plots.plot_student_bars(
                [s["name"] for s in scored],
                [s["top1"] for s in scored],
                baseline["top1"] if baseline else None,
                layout.plots / "students.png",
            )
        )
        lines += ["", "![students](plots/students.png)"]
    return "\n".join(lines), "ok"


def _target_label(s):
    """A student's line label: its name and where its teacher rows came from (clean / views / online)."""
    if not s.get("teachers"):
        return f"{s['name']} (no teacher)"
    return f"{s['name']} ({s.get('targets') or 'clean'})"


def curves_section(teachers, students, layout, made):
    lines = ["## Training curves", ""]
    state = "not run"
    histories = {t["name"]: t["history"] for t in teachers if t["history"]["loss"] or t["history"]["val_accuracy"]}
    if histories:
        made.append(
            plots.plot_curves(histories, layout.plots / "teacher_curves.png", title="Teachers: loss and test accuracy")
        )
        lines += ["![teachers curves](plots/teacher_curves.png)", ""]
        state = "ok"
    else:
        lines += [f"Teachers: {NOT_RUN}", ""]
    histories = {
        s["name"]: {**s["history"], "distilled": bool(s.get("teachers"))}
        for s in students
        if s["history"]["loss"] or s["history"]["val_accuracy"]
    }
    if histories:
        made.append(plots.plot_student_curves(histories, layout.plots / "student_curves.png"))
        unlogged = [n for n in histories if n not in plots.student_curve_panels(histories)["label_loss"]]
        lines += [
            "![students curves](plots/student_curves.png)",
            "",
            "Students compare like with like: the label loss (the class head against the labels, the same "
            "quantity for every student) on the left; the distillation loss, of distilled students only, on "
            "its own panel (a distilled student's training loss is alpha x label loss + (1 - alpha) x "
            "distillation loss, so it is not comparable with a baseline's)."
            + (f" No label loss logged for: {', '.join(unlogged)}." if unlogged else ""),
            "",
        ]
        state = "ok"
    else:
        lines += [f"Students: {NOT_RUN}", ""]
    series = {_target_label(s): plots.accuracy_over_time(s["history"]) for s in students}
    series = {label: points for label, points in series.items() if points[0]}
    if series:
        made.append(plots.plot_accuracy_vs_time(series, layout.plots / "student_accuracy_time.png"))
        lines += [
            "![students accuracy against time](plots/student_accuracy_time.png)",
            "",
            "Test top-1 at each validated epoch against cumulative training wall time (each epoch's time "
            "includes its validation), one line per student, labelled with its target source: sources "
            "compared at equal time.",
            "",
        ]
    return "\n".join(lines).rstrip(), state
