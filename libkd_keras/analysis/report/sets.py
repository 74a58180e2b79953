"""What differs between the teacher sets, and which difference predicts a student's gain (paper Figures 9-10).

For every student entry that learns from teachers, from the run's `store/analysis.json`:

- `ensemble_top1`: the set's soft ensemble (one teacher: that teacher) on the test images;
- `disagreement`: the mean share of test images on which two of the set's teachers disagree (one teacher: none);
- `label_agreement` and `true_class_probability`: how far the set's soft targets (T = 1) on the student's
  training images are from the labels: both near 1 mean the targets say little the labels do not;
- `student_teacher_cka`: from `cka/cka.json` (`libkd analyze`), how close the entry's students' representations
  came to their teachers' (mean linear CKA over all layer pairs; the paper's Figure 10 reading);
- `baseline_cka`: from the same file, how close they stayed to the baseline student of their seed (the mean CKA
  of each layer with the same layer; low: the teachers changed what the student represents);

beside the entry's gain over the baseline of its budget, paired by seed (`seeds.gain`). "Which predicts the
gain" ranks the entries by each measurement and by gain (`stats.spearman`, exact p at this size): a
measurement "predicts the gain" only when p < 0.05; with three or four sets the honest answer is
"cannot tell at this n". `predictor_rows(layout)` gives the same rows for one run folder, so that
several runs' students can be pooled (`benchmarks/what_predicts_gain.py`).
"""

from libkd_keras.analysis.report import seeds, stats

FACTORS = {
    "ensemble_top1": "ensemble top-1 (%)",
    "disagreement": "teacher disagreement (%)",
    "label_agreement": "targets agree with labels (%)",
    "true_class_probability": "target's label probability (%)",
    "student_teacher_cka": "student-teacher CKA (x100)",
    "baseline_cka": "CKA with the baseline student (x100)",
}
STUDENT_FACTORS = ("student_teacher_cka", "baseline_cka")  # measured on the students (`libkd analyze`)


def _same(members, other):
    return sorted(members) == sorted(other)


def set_factors(members, analysis):
    """The measurements of the teacher set `members` (names) from a run's analysis.json (None where missing)."""
    analysis = analysis or {}
    members = list(members)
    found = dict.fromkeys(f for f in FACTORS if f not in STUDENT_FACTORS)
    if len(members) == 1:
        found["ensemble_top1"] = ((analysis.get("teachers") or {}).get(members[0]) or {}).get("top1")
    else:
        found["ensemble_top1"] = next(
            (
                e.get("top1")
                for e in analysis.get("ensembles") or []
                if e.get("rule") == "soft" and _same(e.get("members") or [], members)
            ),
            None,
        )
        matrix = analysis.get("disagreement") or {}
        labels = matrix.get("labels") or []
        if all(m in labels for m in members):
            index = [labels.index(m) for m in members]
            pairs = [(i, j) for k, i in enumerate(index) for j in index[k + 1 :]]
            found["disagreement"] = sum(matrix["matrix"][i][j] for i, j in pairs) / len(pairs)
    train = next(
        (
            r
            for r in ((analysis.get("train_targets") or {}).get("rows") or [])
            if _same(r.get("members") or [], members)
        ),
        None,
    )
    if train is not None:
        found["label_agreement"] = train.get("agreement")
        found["true_class_probability"] = train.get("true_class_probability")
    return found


def student_teacher_cka(students, members, cka):
    """The mean linear CKA between the entry's students and its teachers over all layer pairs, averaged over
    students and teachers, from the run's `cka/cka.json` (`libkd analyze`); None without it."""
    cross = (cka or {}).get("cross") or {}
    values = []
    for s in students:
        for teacher in members:
            matrix = (cross.get(f"{s.get('name')}_vs_{teacher}") or {}).get("matrix")
            cells = [v for row in matrix or [] for v in row if v is not None and v == v]  # NaN != NaN
            if cells:
                values.append(sum(cells) / len(cells))
    return sum(values) / len(values) if values else None


def baseline_cka(students, baseline, cka):
    """How close the entry's students stayed to the baseline student of their seed: the layer-wise CKA of
    each pair (`cka/cka.json`'s `"students"`, `libkd analyze`), averaged over the seeds both have; None
    without it. Low: the teachers moved the student's representations away from what the labels alone teach."""
    pairs = (cka or {}).get("students") or {}
    by_seed = seeds._by_seed(baseline, key="name")  # the pairing by seed that gains use
    values = []
    for s in students:
        other = by_seed.get(s.get("seed"))
        found = pairs.get(f"{s.get('name')}_vs_{other}") or pairs.get(f"{other}_vs_{s.get('name')}") or {}
        value = found.get("layerwise")
        if value is not None and value == value:  # NaN != NaN
            values.append(value)
    return sum(values) / len(values) if values else None


def predictor_rows(groups, analysis, run=None, cka=None):
    """`[{"run", "entry", "teachers", "top1", "seeds", "gain", "comparison", **set_factors, "student_teacher_cka",
    "baseline_cka"}]`: one row per entry with teachers. `top1` is its students' mean top-1 over seeds; `gain` is the
    mean per-seed difference from the baseline of its budget (fractions), and `comparison` that paired test: both
    None while the run has no such baseline (a run stopped before its baseline: the measurements stand, the gain
    waits for it).
    `cka`: the run's `cka/cka.json` (or None: no CKA column values)."""
    rows = []
    for entry, students in groups.items():
        teachers = sorted({t for s in students for t in s.get("teachers") or []})
        if not teachers:
            continue
        baseline = seeds.baseline_entry(groups, like=entry)
        c = None if baseline is None else seeds.gain(students, groups[baseline])
        scored = seeds.mean_std([s.get("top1") for s in students])
        rows.append(
            {
                "run": run,
                "entry": entry,
                "teachers": teachers,
                "top1": scored[1],
                "seeds": c["n"] if c else scored[0],
                "gain": c["mean"] if c else None,
                "comparison": c,
                **set_factors(teachers, analysis),
                "student_teacher_cka": student_teacher_cka(students, teachers, cka),
                "baseline_cka": None if baseline is None else baseline_cka(students, groups[baseline], cka),
            }
        )
    return rows


def predictors(rows):
    """`{factor: (rho, p, n, verdict)}`: Spearman's rank correlation of each measurement with the gain over
    `rows`; the verdict is "predicts the gain", "predicts a smaller gain" (p < 0.05) or "cannot tell at this n"."""
    found = {}
    for factor in FACTORS:
        usable = [r for r in rows if r.get(factor) is not None and r.get("gain") is not None]
        rho, p = stats.spearman([r[factor] for r in usable], [r["gain"] for r in usable])
        if rho is None or p is None or p >= 1 - stats.LEVEL:
            verdict = stats.CANNOT_TELL
        else:
            verdict = "predicts the gain" if rho > 0 else "predicts a smaller gain"
        found[factor] = (rho, p, len(usable), verdict)
    return found


def _pct(value):
    return "–" if value is None else f"{100.0 * value:.1f}"


def predictor_lines(rows):
    """Markdown: which measurement predicts the gain over `rows` (one line per measurement)."""
    lines = []
    for factor, (rho, p, n, verdict) in predictors(rows).items():
        if rho is None:
            lines.append(f"- {FACTORS[factor]}: no test ({n} sets with it and a gain; needs 3 that differ)")
        else:
            how = "exact" if n <= stats.EXACT_UP_TO else "t approximation"
            lines.append(
                f"- {FACTORS[factor]}: Spearman rho {rho:+.2f}, p = {p:.3g} ({how}) over {n} sets: **{verdict}**"
            )
    return lines


def table_lines(rows, pooled=False):
    """Markdown table of `predictor_rows`: one row per set, its measurements, gain and paired test. `pooled`
    (rows of several runs, `benchmarks/what_predicts_gain.py`) adds each row's run and its paired seeds."""
    header = ["Student", "Teachers", *FACTORS.values(), "student top-1 (%)", "gain (points)", "paired test"]
    if pooled:
        header = ["Run", *header[:-3], "seeds", *header[-3:]]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        c = r["comparison"]
        cells = [f"`{r['entry']}`", ", ".join(r["teachers"]), *(_pct(r[f]) for f in FACTORS)]
        if pooled:
            cells = [str(r["run"]), *cells, str(r["seeds"])]
        cells.append(_pct(r["top1"]))
        if c is None:
            cells += ["–", "no baseline of this budget yet"]
        else:
            cells += [seeds.spread(c["mean"], c["std"], signed=True), seeds.test_text(c)]
        table.append("| " + " | ".join(cells) + " |")
    return table


def explanation_lines(groups, analysis, cka=None):
    """The report's "What differs between the teacher sets" table and which difference predicts the gain."""
    rows = predictor_rows(groups, analysis, cka=cka)
    if len(rows) < 2:
        return []
    table = table_lines(rows)
    return [
        "### What differs between the teacher sets (paper Figures 9-10)",
        "",
        "Each set's measurements from `store/analysis.json`: its soft ensemble on the test images, how often "
        "two of its teachers disagree there, and how far its soft targets (T = 1) on the training images are "
        "from the labels; then how close the students' representations came to their teachers' (mean linear CKA "
        "over all layer pairs) and stayed to the baseline student of their seed (mean CKA of each layer with the "
        "same layer), both from `libkd analyze` (– before it ran); the student top-1 is the mean over its seeds, "
        "and the gain is over the baseline of the same budget, paired by seed (– until the run has that baseline).",
        "",
        *table,
        "",
        "Which measurement predicts the gain (rank correlation across these sets; p < 0.05 needed):",
        "",
        *predictor_lines(rows),
    ]
