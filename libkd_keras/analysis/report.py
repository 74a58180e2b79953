"""The run report: `report.md` + PNG plots in the run folder, and a short table for the terminal.

Built from the run folder's artifacts alone (see `artifacts.RunLayout`), so `libkd report RUN_DIR`
can rewrite it at any time; a section whose artifacts are missing says "not run".

Sections:
- Teachers: the paper's Tables 2 and 3 (params, size, training time, top-1, top-5, train
  accuracy), the ensembles by soft averaging and majority vote, the disagreement heatmap.
- Students: the paper's Table 4 (teacher set, distillation type, MixUp/CutMix, alpha, params,
  size, epochs, top-1, top-5, gain over the baseline student), plus per-head accuracy.
- Curves: training loss and test accuracy per epoch for teachers and students.
- Edge: size, latency and accuracy of each LiteRT variant.
- Ablation and CKA, when `libkd ablate` / `libkd analyze` wrote them.
- Steps: the time each pipeline step took.

Example:
>>> summary = write_report("saved_models/quick")
>>> print(summary.table)
"""

import dataclasses
import sys
import time
from pathlib import Path

from libkd_keras.analysis import plots
from libkd_keras.analysis.artifacts import RunLayout
from libkd_keras.atomic_files import read_json, write_text_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NOT_RUN = "_not run_"


@dataclasses.dataclass
class ReportSummary:
    """What `write_report` wrote: the report path, the terminal table, each section's state, the plots."""

    path: Path
    table: str
    sections: dict
    plots: list


# ---------------------------------------------------------------------------------------------
# Reading the artifacts (tolerant: a missing file or key becomes None)


def _first(record, *keys, default=None):
    """The first of `keys` present (and not None) in `record`; keys may be dotted paths."""
    for key in keys:
        value = record
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return default


def _history(record):
    """`{"loss": [...], "val_accuracy": [...]}` from a teacher's or student's JSON."""
    history = _first(record, "history", default={}) or {}
    accuracy = _first(history, "val_accuracy", "val_acc", "test_accuracy", default=[])
    return {"loss": list(_first(history, "loss", default=[])), "val_accuracy": list(accuracy)}


def _last(values):
    values = [v for v in values or [] if v is not None]
    return values[-1] if values else None


def load_teachers(layout):
    """One dict per trained teacher (from `teachers/<name>.json`), in name order."""
    rows = []
    for path in sorted(layout.teachers.glob("*.json")):
        if path.name.endswith(".history.json"):  # a teacher still training
            continue
        record = read_json(path) or {}
        rows.append({
            "name": _first(record, "name", default=path.stem),
            "architecture": _first(record, "architecture", "arch", "family", default="?"),
            "seed": _first(record, "seed"),
            "epochs": _first(record, "epochs", "recipe.epochs"),
            "params": _first(record, "trainable_parameters", "params"),
            "size_mb": _first(record, "size_mb"),
            "train_seconds": _first(record, "training_time_s", "train_seconds"),
            "top1": _first(record, "top1_test_accuracy", "top1"),
            "top5": _first(record, "top5_test_accuracy", "top5"),
            "train_accuracy": _first(record, "train_accuracy"),
            "history": _history(record),
        })
    return rows


def load_students(layout):
    """One dict per trained student (from `students/<name>.json`), in training order."""
    records = [read_json(p) or {} for p in layout.students.glob("*.json")]
    records.sort(key=lambda r: (r.get("order", 0), r.get("name", "")))
    rows = []
    for record in records:
        evaluation = record.get("evaluation") or {}
        raw_history = record.get("history") or {}
        history = _history(record)
        rows.append({
            **record,
            "top1": _first(evaluation, "top1", default=_last(history["val_accuracy"])),
            "top5": _first(evaluation, "top5", default=_last(_first(raw_history, "val_top5", default=[]))),
            "cls_top1": evaluation.get("cls_top1"),
            "dist_top1": evaluation.get("dist_top1"),
            "evaluated": bool(evaluation),
            "history": history,
        })
    return rows


def _per_thread(value):
    """A latency that is a number, or `{threads: ms}` (export_report): the fewest threads' value."""
    if isinstance(value, dict):
        return value[min(value, key=int)] if value else None
    return value


def load_exports(layout):
    """`{student: {"keras_top1": .., "variants": [...]}}` from `exports/<student>/export_report.json`."""
    exports = {}
    for path in sorted(layout.exports.glob("*/export_report.json")):
        record = read_json(path) or {}
        rows = record.get("rows") or []
        keras_row = next((r for r in rows if str(r.get("variant", "")).startswith("keras")), {})
        variants = []
        for row in rows:
            if row is keras_row:
                continue
            drop = row.get("top1_drop_points")
            variants.append({
                "quantization": row.get("variant", "?"),
                "size_mb": row.get("size_mb"),
                "latency_ms": _per_thread(row.get("latency_ms")),
                "latency_p90_ms": _per_thread(row.get("latency_p90_ms")),
                "top1": row.get("top1"),
                "top5": row.get("top5"),
                "top1_drop": None if drop is None else drop / 100.0,
                "file": row.get("file"),
            })
        threads = (record.get("settings") or {}).get("threads") or []
        exports[path.parent.name] = {"keras_top1": keras_row.get("top1"), "variants": variants,
                                     "threads": min(threads) if threads else None}
    return exports


def load_steps(layout):
    return [read_json(p) or {} for p in sorted(layout.steps.glob("*.json"), key=lambda p: p.stat().st_mtime)]


def load_config(layout):
    try:
        return tomllib.loads(layout.config.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return {}


# ---------------------------------------------------------------------------------------------
# Formatting


def _pct(value, digits=2):
    return "–" if value is None else f"{100.0 * value:.{digits}f}"


def _num(value, fmt="{:,}"):
    return "–" if value is None else fmt.format(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _plain_table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*map(str, row)) for row in rows])


def _yes(flag):
    return "✓" if flag else "✗"


# ---------------------------------------------------------------------------------------------
# Sections


def _header(config, layout):
    data, run = config.get("data", {}), config.get("run", {})
    teachers, student = config.get("teachers", {}), config.get("student", {})
    lines = [f"# LIB-KD run report: {run.get('name', layout.root.name)}", ""]
    lines.append(f"Written {time.strftime('%Y-%m-%d %H:%M')} from the artifacts in this folder "
                 f"(`libkd report {layout.root}` rewrites it).")
    if data:
        limit = lambda n: "all" if not n else f"{n:,}"  # noqa: E731
        lines += ["", f"- Data: `{data.get('dataset')}`, image size {data.get('image_size') or 'as stored'}; "
                      f"student training images: {limit(data.get('train_limit'))}, teacher training images: "
                      f"{limit(teachers.get('train_limit') or data.get('train_limit'))}, test images: "
                      f"{limit(data.get('test_limit'))}.",
                  f"- Teachers: {teachers.get('resnet_epochs') or teachers.get('epochs')} epochs (ResNet), "
                  f"{teachers.get('rednet_epochs') or teachers.get('epochs')} (RedNet), batch {teachers.get('batch_size')}; students: "
                  f"{student.get('arch')} (patch {student.get('patch_size')}), {student.get('epochs')} epochs, "
                  f"batch {student.get('batch_size')}; precision {run.get('precision')}."]
    return "\n".join(lines)


def _teacher_section(teachers, analysis, layout, made):
    lines = ["## Teachers (paper Tables 2 and 3)", ""]
    if not teachers:
        return "\n".join(lines + [NOT_RUN]), "not run"
    lines.append(_table(
        ["Teacher", "Architecture", "Seed", "Epochs", "Training time (s)", "#Params", "Size (MB)",
         "Top-1 (%)", "Top-5 (%)", "Train acc. (%)"],
        [[t["name"], t["architecture"], _num(t["seed"], "{}"), _num(t["epochs"], "{}"),
          _num(t["train_seconds"], "{:,.1f}"), _num(t["params"]), _num(t["size_mb"], "{:.2f}"),
          _pct(t["top1"]), _pct(t["top5"]), _pct(t["train_accuracy"])] for t in teachers],
    ))
    lines += ["", "### Ensembles", ""]
    ensembles = (analysis or {}).get("ensembles") or []
    if not ensembles:
        lines.append(NOT_RUN + " (the test store and its analysis are written by the precompute step)")
    else:
        lines.append(_table(
            ["Ensemble", "Members", "Technique", "#Params", "Size (MB)", "Top-1 (%)", "Top-5 (%)"],
            [[e["name"], ", ".join(e["members"]), {"soft": "Soft averaging", "vote": "Majority voting"}.get(
                e["rule"], e["rule"]), _num(e.get("params")), _num(e.get("size_mb"), "{:.2f}"),
              _pct(e.get("top1")), _pct(e.get("top5"))] for e in ensembles],
        ))
    disagreement = (analysis or {}).get("disagreement")
    lines += ["", "### Disagreement", ""]
    if disagreement and len(disagreement.get("labels", [])) >= 2:
        path = plots.plot_heatmap(disagreement["matrix"], disagreement["labels"], layout.plots / "disagreement.png",
                                  title="Disagreement rate on the test split")
        made.append(path)
        lines += ["Fraction of test images on which two predictors pick different classes "
                  "(paper Figure 9: 0.07431 between the ResNet and RedNet ensembles).", "",
                  "![disagreement](plots/disagreement.png)"]
    else:
        lines.append(NOT_RUN + " (needs two teachers and the test store)")
    return "\n".join(lines), "ok"


def _baseline(students):
    return next((s for s in students if not s.get("teachers") and s.get("top1") is not None), None)


def _student_section(students, layout, made):
    lines = ["## Students (paper Table 4)", ""]
    if not students:
        return "\n".join(lines + [NOT_RUN]), "not run"
    baseline = _baseline(students)
    rows = []
    for s in students:
        gain = "–"
        if baseline is not None and s.get("top1") is not None and s is not baseline:
            gain = f"{100.0 * (s['top1'] - baseline['top1']):+.2f}"
        teachers = s.get("teachers") or []
        rows.append([
            s.get("name"), ", ".join(teachers) or "None", _yes(True),
            s.get("distillation") if teachers else "✗", _yes(s.get("mixup")), _yes(s.get("cutmix")),
            _num(s.get("alpha"), "{}") if teachers else "✗", _num(s.get("teacher_params")),
            _num(s.get("teacher_size_mb"), "{:.1f}"), _num(s.get("params")), _num(s.get("size_mb"), "{:.1f}"),
            _num(s.get("epochs"), "{}"), _pct(s.get("top1")), _pct(s.get("top5")), gain,
        ])
    lines.append(_table(
        ["Student", "Teachers", "True label", "Distillation", "MixUp", "CutMix", "alpha", "Teachers' #params",
         "Teachers' size (MB)", "#Params", "Size (MB)", "Epochs", "Top-1 (%)", "Top-5 (%)", "Gain (points)"],
        rows,
    ))
    lines += ["", "Top-1 is the student's inference output (the average of its class and distillation heads) "
                  "on the test split; gain is over the baseline student (no teacher)."]
    if any(s.get("cls_top1") is not None for s in students):
        lines += ["", "Per head (paper Figure 11b):", "", _table(
            ["Student", "Class head top-1 (%)", "Distillation head top-1 (%)", "Average top-1 (%)"],
            [[s["name"], _pct(s.get("cls_top1")), _pct(s.get("dist_top1")), _pct(s.get("top1"))]
             for s in students if s.get("evaluated")],
        )]
    scored = [s for s in students if s.get("top1") is not None]
    if scored:
        made.append(plots.plot_student_bars([s["name"] for s in scored], [s["top1"] for s in scored],
                                            baseline["top1"] if baseline else None, layout.plots / "students.png"))
        lines += ["", "![students](plots/students.png)"]
    return "\n".join(lines), "ok"


def _curves_section(teachers, students, layout, made):
    lines = ["## Training curves", ""]
    state = "not run"
    for title, models, file in (("Teachers", teachers, "teacher_curves.png"),
                                ("Students", students, "student_curves.png")):
        histories = {m["name"]: m["history"] for m in models if m["history"]["loss"] or m["history"]["val_accuracy"]}
        if histories:
            made.append(plots.plot_curves(histories, layout.plots / file, title=f"{title}: loss and test accuracy"))
            lines += [f"![{title.lower()} curves](plots/{file})", ""]
            state = "ok"
        else:
            lines += [f"{title}: {NOT_RUN}", ""]
    return "\n".join(lines).rstrip(), state


def _edge_section(exports, layout, made):
    lines = ["## Edge: LiteRT export", ""]
    if not exports:
        return "\n".join(lines + [NOT_RUN]), "not run"
    for student, export in exports.items():
        keras_top1 = export.get("keras_top1")
        threads = f", latency with {export['threads']} thread(s), batch 1" if export.get("threads") else ""
        lines += [f"Student `{student}` (Keras float top-1 on the same images: {_pct(keras_top1)}%{threads}):", ""]
        rows = []
        for v in export["variants"]:
            drop = v["top1_drop"]
            if drop is None and keras_top1 is not None and v["top1"] is not None:
                drop = keras_top1 - v["top1"]
            rows.append([v["quantization"], _num(v["size_mb"], "{:.2f}"), _num(v["latency_ms"], "{:.2f}"),
                         _num(v["latency_p90_ms"], "{:.2f}"), _pct(v["top1"]), _pct(v["top5"]),
                         "–" if drop is None else f"{100.0 * drop:+.2f}"])
        lines.append(_table(["Variant", "Size (MB)", "Latency p50 (ms)", "Latency p90 (ms)", "Top-1 (%)",
                             "Top-5 (%)", "Top-1 drop (points)"], rows))
        if export["variants"]:
            file = f"edge_{student}.png"
            made.append(plots.plot_edge(export["variants"], layout.plots / file, title=f"LiteRT variants of {student}"))
            lines += ["", f"![edge](plots/{file})", ""]
    return "\n".join(lines).rstrip(), "ok"


OPTIONAL_SECTIONS = (  # written by `libkd ablate` and `libkd analyze`, included when present
    ("ablation", "ablation/ablation.md"),
    ("cka", "cka/section.md"),
)


def _optional_sections(layout):
    found = {}
    for key, relative in OPTIONAL_SECTIONS:
        path = layout.root / relative
        if path.is_file():
            found[key] = path.read_text(encoding="utf-8").strip()
    return found


def _steps_section(steps):
    lines = ["## Steps", ""]
    if not steps:
        return "\n".join(lines + [NOT_RUN])
    total = sum(s.get("seconds", 0.0) for s in steps)
    cpu = [(s.get("summary") or {}).get("cpu_seconds") for s in steps]
    cpu_total = sum(c for c in cpu if c is not None)
    lines.append(_table(["Step", "Wall time (s)", "CPU time (s)", "Finished"],
                        [[s.get("step"), f"{s.get('seconds', 0.0):,.1f}", _num(c, "{:,.1f}"), s.get("finished_at", "")]
                         for s, c in zip(steps, cpu)]
                        + [["**total**", f"**{total:,.1f}**", f"**{cpu_total:,.1f}**", ""]]))
    lines += ["", "CPU time counts every core the step used; on a machine shared with other jobs it is the "
                  "better measure of the work a step needs."]
    return "\n".join(lines)


def _terminal_table(teachers, analysis, students, exports):
    rows = [[t["name"], "teacher", _pct(t["top1"], 1), ""] for t in teachers]
    rows += [[f"{e['name']} ({e['rule']})", "ensemble", _pct(e.get("top1"), 1), ""]
             for e in (analysis or {}).get("ensembles") or []]
    baseline = _baseline(students)
    for s in students:
        gain = ""
        if baseline is not None and s is not baseline and s.get("top1") is not None:
            gain = f"{100.0 * (s['top1'] - baseline['top1']):+.1f}"
        rows.append([s["name"], "student", _pct(s.get("top1"), 1), gain])
    for student, export in exports.items():
        for v in export["variants"]:
            rows.append([f"{student} {v['quantization']}", f"litert {_num(v['size_mb'], '{:.1f}')} MB "
                         f"{_num(v['latency_ms'], '{:.1f}')} ms", _pct(v["top1"], 1), ""])
    if not rows:
        return "(nothing to report yet)"
    return _plain_table(["model", "kind", "top-1 %", "gain"], rows)


# ---------------------------------------------------------------------------------------------
# Entry point


def write_report(run_dir):
    """Writes `report.md` and `plots/*.png` into `run_dir`; returns a `ReportSummary`."""
    layout = RunLayout(run_dir)
    config = load_config(layout)
    teachers, students = load_teachers(layout), load_students(layout)
    analysis, exports = read_json(layout.store_analysis), load_exports(layout)
    made = []
    teacher_md, teacher_state = _teacher_section(teachers, analysis, layout, made)
    student_md, student_state = _student_section(students, layout, made)
    curves_md, curves_state = _curves_section(teachers, students, layout, made)
    edge_md, edge_state = _edge_section(exports, layout, made)
    optional = _optional_sections(layout)
    markdown = "\n\n".join([_header(config, layout), teacher_md, student_md, curves_md, edge_md,
                            *optional.values(), _steps_section(load_steps(layout))]) + "\n"
    write_text_atomic(layout.report, markdown)
    return ReportSummary(
        path=layout.report,
        table=_terminal_table(teachers, analysis, students, exports),
        sections={"teachers": teacher_state, "students": student_state, "curves": curves_state, "edge": edge_state,
                  **{key: "ok" for key in optional}},
        plots=made,
    )
