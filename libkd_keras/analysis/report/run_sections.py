"""The report's run sections, one function each, from the rows `records.py` loads (model sections: `sections.py`).

Each section function follows `sections.py`'s convention: `(markdown, state)`, state "ok" or "not run" when its
artifacts are missing; plots are drawn into `layout.plots` and appended to `made`. `terminal_table` is the short
plain-text summary printed after a run.

- Edge: each LiteRT variant.
- Ablation and CKA, when `libkd ablate` / `libkd analyze` wrote them. Steps: each step's time.
"""

from libkd_keras.analysis import plots
from libkd_keras.analysis.report.records import baseline_student
from libkd_keras.analysis.report.sections import NOT_RUN, _num, _pct, _table


def edge_section(exports, layout, made):
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
            rows.append(
                [
                    v["quantization"],
                    _num(v["size_mb"], "{:.2f}"),
                    _num(v["latency_ms"], "{:.2f}"),
                    _num(v["latency_p90_ms"], "{:.2f}"),
                    _pct(v["top1"]),
                    _pct(v["top5"]),
                    "–" if drop is None else f"{100.0 * drop:+.2f}",
                ]
            )
        lines.append(
            _table(
                [
                    "Variant",
                    "Size (MB)",
                    "Latency p50 (ms)",
                    "Latency p90 (ms)",
                    "Top-1 (%)",
                    "Top-5 (%)",
                    "Top-1 drop (points)",
                ],
                rows,
            )
        )
        if export["variants"]:
            file = f"edge_{student}.png"
            made.append(plots.plot_edge(export["variants"], layout.plots / file, title=f"LiteRT variants of {student}"))
            lines += ["", f"![edge](plots/{file})", ""]
    return "\n".join(lines).rstrip(), "ok"


OPTIONAL_SECTIONS = (  # written by `libkd ablate` and `libkd analyze`, included when present
    ("ablation", "ablation/ablation.md"),
    ("cka", "cka/section.md"),
)


def optional_sections(layout):
    found = {}
    for key, relative in OPTIONAL_SECTIONS:
        path = layout.root / relative
        if path.is_file():
            found[key] = path.read_text(encoding="utf-8").strip()
    return found


def steps_section(steps):
    lines = ["## Steps", ""]
    if not steps:
        return "\n".join(lines + [NOT_RUN])
    total = sum(s.get("seconds", 0.0) for s in steps)
    cpu = [(s.get("summary") or {}).get("cpu_seconds") for s in steps]
    cpu_total = sum(c for c in cpu if c is not None)
    lines.append(
        _table(
            ["Step", "Wall time (s)", "CPU time (s)", "Finished"],
            [
                [s.get("step"), f"{s.get('seconds', 0.0):,.1f}", _num(c, "{:,.1f}"), s.get("finished_at", "")]
                for s, c in zip(steps, cpu)
            ]
            + [["**total**", f"**{total:,.1f}**", f"**{cpu_total:,.1f}**", ""]],
        )
    )
    lines += [
        "",
        "CPU time counts every core the step used; on a machine shared with other jobs it is the "
        "better measure of the work a step needs.",
    ]
    return "\n".join(lines)


def _plain_table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*map(str, row)) for row in rows]
    )


def terminal_table(teachers, analysis, students, exports):
    """The short plain-text table `libkd` prints: one line per teacher, ensemble, student and LiteRT file."""
    rows = [[t["name"], "teacher", _pct(t["top1"], 1), ""] for t in teachers]
    rows += [
        [f"{e['name']} ({e['rule']})", "ensemble", _pct(e.get("top1"), 1), ""]
        for e in (analysis or {}).get("ensembles") or []
    ]
    for s in students:
        gain, baseline = "", baseline_student(students, like=s, seed=s.get("seed"))
        if baseline is not None and s is not baseline and s.get("top1") is not None:
            gain = f"{100.0 * (s['top1'] - baseline['top1']):+.1f}"
        rows.append([s["name"], "student", _pct(s.get("top1"), 1), gain])
    for student, export in exports.items():
        for v in export["variants"]:
            rows.append(
                [
                    f"{student} {v['quantization']}",
                    f"litert {_num(v['size_mb'], '{:.1f}')} MB {_num(v['latency_ms'], '{:.1f}')} ms",
                    _pct(v["top1"], 1),
                    "",
                ]
            )
    if not rows:
        return "(nothing to report yet)"
    return _plain_table(["model", "kind", "top-1 %", "gain"], rows)
