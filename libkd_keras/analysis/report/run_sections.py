"""The report's run sections, one function each, from the rows `records.py` loads (model sections: `sections.py`).

Each section function follows `sections.py`'s convention: `(markdown, state)`, state "ok" or "not run" when its
artifacts are missing; plots are drawn into `layout.plots` and appended to `made`. `terminal_table` is the short
plain-text summary printed after a run.

- Edge: each LiteRT variant.
- Ablation and CKA, when `libkd ablate` / `libkd analyze` wrote them. Steps: each step's time.
"""

from libkd_keras.analysis import plots
from libkd_keras.analysis.report import seeds, stats
from libkd_keras.analysis.report.records import baseline_student
from libkd_keras.analysis.report.sections import NOT_RUN, _ci, _num, _pct, _table


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
                    _ci(v["top1"], export.get("test_images")),
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
                    "Top-1 95% CI",
                    "Top-5 (%)",
                    "Top-1 drop (points)",
                ],
                rows,
            )
        )
        lines += [
            "",
            "Drop: the Keras float top-1 minus the variant's, on the same images; a negative drop (the variant "
            "scored higher) or one of a few images is rounding noise between two near-identical models, not a gain. "
            "Latency: the median and 90th percentile of `export.latency_runs` timed runs after warm-up.",
        ]
        if export["variants"]:
            file = f"edge_{student}.png"
            made.append(plots.plot_edge(export["variants"], layout.plots / file, title=f"LiteRT variants of {student}"))
            lines += ["", f"![edge](plots/{file})", ""]
    return "\n".join(lines).rstrip(), "ok"


def optional_sections(layout):
    """The sections `libkd ablate` and `libkd analyze` wrote, by key; those not written are left out."""
    found = {}
    for key, path in (("ablation", layout.ablation_section), ("cka", layout.cka_section)):
        if path.is_file():
            found[key] = path.read_text(encoding="utf-8").strip()
    return found


def resumed_training(steps, teachers, students):
    """`{step: seconds}` for each training step that was resumed after a stop: its model's training time
    summed over every run of it (the record's `training_time_s`, from its epochs' times), where that
    exceeds the wall time the step's marker recorded (which counts from the resume only)."""
    trained = {f"teacher/{t.get('name')}": t.get("train_seconds") for t in teachers}
    trained.update({f"student/{s.get('name')}": s.get("training_time_s") for s in students})
    found = {}
    for step in steps:
        total = trained.get(step.get("step"))
        if total is not None and total > step.get("seconds", 0.0) + 1.0:
            found[step.get("step")] = total
    return found


def step_time(step, resumed, per=1.0, fmt="{:,.1f}"):
    """A step's wall time in units of `per` seconds, and, for a step in `resumed` (`resumed_training`), its
    model's training time over all its runs beside it."""
    text = fmt.format(step.get("seconds", 0.0) / per)
    found = (resumed or {}).get(step.get("step"))
    return text if found is None else f"{text} (resumed; {fmt.format(found / per)} of training over all its runs)"


def steps_section(steps, resumed=None):
    """The Steps table; `resumed`: `resumed_training`, each such step's training time over all its runs."""
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
                [s.get("step"), step_time(s, resumed), _num(c, "{:,.1f}"), s.get("finished_at", "")]
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
    if resumed:
        lines[-1] += (
            " A step resumed after a stop records its times from the resume only (the total too); its model's "
            "training time over all its runs is beside it."
        )
    return "\n".join(lines)


def _plain_table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*map(str, row)) for row in rows]
    )


def _ci1(accuracy, n):
    interval = stats.accuracy_interval(accuracy, n)
    return "" if interval is None else f"{100 * interval[0]:.1f}-{100 * interval[1]:.1f}"


def _short_test(c):
    if c["test"] == "mcnemar":
        return f"McNemar p={c['p']:.2g}"
    if c["test"] == "t":
        low, high = c["interval"]
        return f"CI {100 * low:+.1f}..{100 * high:+.1f} (t, n={c['n']})"
    return "no test"


def terminal_table(teachers, analysis, students, exports):
    """The short plain-text table `libkd` prints: one line per teacher, ensemble, student, entry and LiteRT file.

    Each top-1 has its binomial 95% interval; each student's gain over its baseline (the same seed) its exact
    McNemar test, and each entry with several seeds a line with the mean gain's Student-t interval over
    seeds; the last column is the verdict on "beats the baseline" from that test alone.
    """
    rows = [
        [t["name"], "teacher", _pct(t["top1"], 1), _ci1(t["top1"], t.get("test_images")), "", "", ""] for t in teachers
    ]
    n_test = (analysis or {}).get("num_examples")
    rows += [
        [f"{e['name']} ({e['rule']})", "ensemble", _pct(e.get("top1"), 1), _ci1(e.get("top1"), n_test), "", "", ""]
        for e in (analysis or {}).get("ensembles") or []
    ]
    for s in students:
        gain = test = verdict = ""
        baseline = baseline_student(students, like=s, seed=s.get("seed"))
        if baseline is not None and s is not baseline and s.get("top1") is not None:
            gain = f"{100.0 * (s['top1'] - baseline['top1']):+.1f}"
            c = seeds.student_vs(s, baseline)
            test, verdict = _short_test(c), c["verdict"]
        rows.append(
            [
                s["name"],
                "student",
                _pct(s.get("top1"), 1),
                _ci1(s.get("top1"), s.get("test_images")),
                gain,
                test,
                verdict,
            ]
        )
    groups = seeds.entry_groups(students)
    for entry, members in groups.items():
        if len(members) < 2:
            continue
        n, mean, _ = seeds.mean_std([s["top1"] for s in members])
        interval = seeds.top1_interval(members)
        ci = "" if interval is None else f"{100 * interval[0]:.1f}-{100 * interval[1]:.1f}"
        gain = test = verdict = ""
        baseline = seeds.baseline_entry(groups, like=entry)
        if baseline is not None and baseline != entry:
            c = seeds.gain(members, groups[baseline])
            gain = "" if c["mean"] is None else f"{100 * c['mean']:+.1f}"
            test, verdict = _short_test(c), c["verdict"]
        rows.append([f"{entry} (mean of {n})", "entry", _pct(mean, 1), ci, gain, test, verdict])
    for student, export in exports.items():
        for v in export["variants"]:
            rows.append(
                [
                    f"{student} {v['quantization']}",
                    f"litert {_num(v['size_mb'], '{:.1f}')} MB {_num(v['latency_ms'], '{:.1f}')} ms",
                    _pct(v["top1"], 1),
                    _ci1(v["top1"], export.get("test_images")),
                    "",
                    "",
                    "",
                ]
            )
    if not rows:
        return "(nothing to report yet)"
    return _plain_table(["model", "kind", "top-1 %", "95% CI", "gain", "test", "gain holds?"], rows)
