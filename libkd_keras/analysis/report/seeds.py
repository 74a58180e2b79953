"""Students trained with several seeds: per-entry mean ± std, and comparisons paired by seed with their test.

A [[students]] entry with `seeds = [0, 1, 2]` trains one student per seed (`<entry>_s<seed>`);
each record names its `entry` and `seed`. Spreads are sample standard deviations over seeds
(n - 1 in the denominator). Two entries are compared seed by seed over the seeds both trained (the
same seed means the same initialization, data order and augmentation; a seed only one trained is
left out, and said so): with several common seeds by the Student-t 95% interval of the mean
difference, with one by an exact McNemar test on the two students' stored predictions for the same
test images. The verdict ("holds", "does not hold", "cannot tell at this n") follows from that test
alone (`stats.py`).

Example:
>>> groups = entry_groups(load_students(layout))
>>> mean_std([s["top1"] for s in groups["ensemble"]])
(3, 0.512, 0.004)
>>> paired_comparison(groups["ensemble"], groups["baseline"])["verdict"]
'holds'
"""

import math

from libkd_keras.analysis.report import stats
from libkd_keras.analysis.report.records import load_predictions, same_budget
from libkd_keras.choices import TEACHER_FAMILIES

FAMILY_NAMES = {"resnet": "ResNet", "rednet": "RedNet"}


def mean_std(values):
    """`(n, mean, std)` of the known values; std is the sample std (None below two values)."""
    values = [v for v in values if v is not None]
    n = len(values)
    if not n:
        return 0, None, None
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return n, mean, std


def entry_groups(students):
    """`{entry: [student rows with a top-1, in seed order]}`, entries in training order."""
    groups = {}
    for s in students:
        if s.get("top1") is not None:
            groups.setdefault(s.get("entry") or s.get("name"), []).append(s)
    for rows in groups.values():
        rows.sort(key=lambda s: (s.get("seed") is None, s.get("seed") or 0))
    return groups


def several_seeds(students):
    """Whether some entry has more than one scored seed (the report then shows means and spreads)."""
    return any(len(rows) > 1 for rows in entry_groups(students).values())


def _by_seed(rows, key="top1"):
    return {s.get("seed"): s[key] for s in rows if s.get(key) is not None}


def same_images(a, b):
    """Two prediction files' `(correct_a, correct_b)` on the same test images (matched by id), or None."""
    if a is None or b is None or sorted(a["ids"].tolist()) != sorted(b["ids"].tolist()):
        return None
    order_a, order_b = a["ids"].argsort(kind="stable"), b["ids"].argsort(kind="stable")
    if (a["labels"][order_a] != b["labels"][order_b]).any():
        return None
    return (a["predictions"] == a["labels"])[order_a], (b["predictions"] == b["labels"])[order_b]


def paired_comparison(rows, other_rows):
    """`rows` against `other_rows` (e.g. an entry and its baseline), paired by seed; fractions.

    Only the seeds both arms trained are compared; the others are listed in `left_out` (by arm) and left out.
    Several common seeds: a Student-t 95% interval of the mean per-seed difference. One common seed: an
    exact McNemar test on the two students' stored test predictions (`load_predictions`), on the same images.
    The verdict on "rows beat other_rows" follows from the interval or the test alone (`stats`).

    Returns a dict: seeds (common, in `rows`' order), differences (per seed), left_out ({"rows", "other"}),
    positive (count), n, mean, std, interval ((low, high) or None), t (the paired t statistic or None),
    test ("t", "mcnemar" or None), p, only_a / only_b (McNemar's discordant images), verdict, and why
    (a reason when no test could be made).
    """
    a, b = _by_seed(rows), _by_seed(other_rows)
    seeds = [seed for seed in a if seed in b]
    differences = [a[seed] - b[seed] for seed in seeds]
    n, mean, std = mean_std(differences)
    found = {
        "seeds": seeds,
        "differences": differences,
        "left_out": {"rows": [s for s in a if s not in b], "other": [s for s in b if s not in a]},
        "positive": sum(d > 0 for d in differences),
        "n": n,
        "mean": mean,
        "std": std,
        "t": mean / (std / math.sqrt(n)) if std else None,
        "interval": None,
        "test": None,
        "p": None,
        "only_a": None,
        "only_b": None,
        "why": None,
    }
    if n >= 2:
        _, low, high = stats.t_interval(differences)
        found.update(interval=(low, high), test="t", verdict=stats.verdict_from_interval((low, high)))
        return found
    if n == 0:
        found.update(verdict=stats.CANNOT_TELL, why="no seed in common")
        return found
    pick = lambda group: next(s for s in group if s.get("seed") == seeds[0] and s.get("top1") is not None)  # noqa: E731
    found.update(student_vs(pick(rows), pick(other_rows)))
    return found


def student_vs(student, other):
    """One student against another on the same test images: an exact McNemar test on their stored predictions.

    Returns `{"test": "mcnemar" or None, "p", "only_a", "only_b", "verdict", "why"}` (the verdict on
    "`student` beats `other`"; "cannot tell at this n" without predictions of both, with the reason in `why`).
    """
    paired = same_images(load_predictions(student), load_predictions(other))
    if paired is None:
        return {
            "test": None,
            "p": None,
            "only_a": None,
            "only_b": None,
            "verdict": stats.CANNOT_TELL,
            "why": "no stored predictions of both on the same images",
        }
    only_a, only_b = stats.discordant(*paired)
    p = stats.mcnemar(only_a, only_b)
    verdict = stats.verdict_from_test(p, (only_a - only_b) / len(paired[0]))
    return {"test": "mcnemar", "p": p, "only_a": only_a, "only_b": only_b, "verdict": verdict, "why": None}


def gain(rows, baseline_rows):
    """An entry's top-1 gain over the baseline entry: `paired_comparison(rows, baseline_rows)`."""
    return paired_comparison(rows, baseline_rows)


def teacher_families(rows):
    """The teacher families of an entry's students (by name prefix: resnet20_s0 -> "resnet")."""
    names = {t for s in rows for t in s.get("teachers") or []}
    return {family for family in TEACHER_FAMILIES for name in names if name.lower().startswith(family)}


def teacher_count(rows):
    """How many teachers an entry's students learn from."""
    return len({t for s in rows for t in s.get("teachers") or []})


def mixed_vs_single(groups):
    """`[(mixed entry, same-bias entry, comparison), ...]`: each entry with both families' teachers against
    each entry whose teachers are all of one family, trained with its budget (`same_budget`), paired by seed.
    """
    families = {entry: teacher_families(rows) for entry, rows in groups.items()}
    found = []
    for entry in (e for e, f in families.items() if len(f) > 1):
        for single in (e for e, f in families.items() if len(f) == 1):
            if same_budget(groups[single][0], groups[entry][0]):
                found.append((entry, single, paired_comparison(groups[entry], groups[single])))
    return found


def _points(value, signed=True):
    return "–" if value is None else (f"{100.0 * value:+.2f}" if signed else f"{100.0 * value:.2f}")


def spread(mean, std, signed=False):
    """`"51.20 ± 0.40"` in points (`"51.20"` without a std)."""
    text = _points(mean, signed)
    return text if std is None or mean is None else f"{text} ± {100.0 * std:.2f}"


def interval_text(interval, signed=False):
    """`"[+0.41, +2.10]"` in points (`"–"` without an interval)."""
    if interval is None:
        return "–"
    return f"[{_points(interval[0], signed)}, {_points(interval[1], signed)}]"


def test_text(c):
    """The paired test of a comparison in a few words: its interval over seeds, or McNemar's p, or why none."""
    if c["test"] == "t":
        return f"95% CI {interval_text(c['interval'], signed=True)} (t, {c['n']} seeds)"
    if c["test"] == "mcnemar":
        return f"McNemar p = {c['p']:.3g} ({c['only_a']} vs {c['only_b']} images)"
    return f"no test: {c['why']}" if c.get("why") else "–"


def left_out_text(c, rows_name, other_name):
    """`"seed 3 of `mixed` is left out (not in `baseline`)"`, or "" when every seed is paired."""
    parts = []
    for key, name, other in (("rows", rows_name, other_name), ("other", other_name, rows_name)):
        seeds = c["left_out"][key]
        if seeds:
            listed = ", ".join(str(s) for s in seeds)
            parts.append(f"seed{'s' if len(seeds) > 1 else ''} {listed} of `{name}` left out (not in `{other}`)")
    return "; ".join(parts)


PRIOR_ART = (
    "Prior art: Co-advise (Ren et al., CVPR 2022) distilled a CNN and an involution network into one ViT, with "
    "a token per teacher and the teachers run online on every batch. LIB-KD ensembles them into one token, "
    'here from stored predictions (`targets = "online"` runs them online instead). Co-advise\'s figures are '
    "for ImageNet-1k (its CivT models), so a run of this size is not comparable with them."
)


def comparison_lines(groups):
    """Markdown of the paired "mixed beats each same-bias set" comparisons, with their verdicts."""
    lines = ["### Mixed beats each same-bias set (paired by seed)", ""]
    found = mixed_vs_single(groups)
    if not found:
        return lines + [
            "_not run_ (needs an entry whose teachers span both families and one whose teachers are "
            "all ResNet or all RedNet)"
        ]
    lines += [PRIOR_ART, ""]
    for mixed, single, c in found:
        families = " + ".join(FAMILY_NAMES.get(f, f) for f in TEACHER_FAMILIES if f in teacher_families(groups[mixed]))
        family = FAMILY_NAMES.get(*teacher_families(groups[single]), "same-bias")
        counts = teacher_count(groups[mixed]), teacher_count(groups[single])
        n_single, mean_single, std_single = mean_std([s["top1"] for s in groups[single]])
        lines.append(
            f"`{mixed}` ({families}, {counts[0]} teachers) vs `{single}` ({family} only, {counts[1]} teacher"
            f"{'s' if counts[1] != 1 else ''}; top-1 {spread(mean_single, std_single)}%, n = {n_single}):"
        )
        lines.append("")
        if counts[0] != counts[1]:
            lines.append("- unequal teacher counts: ensemble size and bias diversity are confounded here")
        left_out = left_out_text(c, mixed, single)
        if left_out:
            lines.append(f"- {left_out}")
        if not c["n"]:
            lines += [
                "- no seed in common: train both with the same `seeds` to compare them",
                f"- verdict: **{c['verdict']}**",
                "",
            ]
            continue
        per_seed = ", ".join(f"s{seed} {_points(d)}" for seed, d in zip(c["seeds"], c["differences"]))
        lines += [
            f"- per-seed differences (points): {per_seed}; positive in {c['positive']}/{c['n']} seeds",
            f"- mean difference {spread(c['mean'], c['std'], signed=True)} points (mean ± std over seeds, "
            f"n = {c['n']}); {test_text(c)}",
            f"- verdict: **{c['verdict']}**",
            "",
        ]
    return lines[:-1] if lines[-1] == "" else lines


def baseline_entry(groups, like=None):
    """The first entry trained without teachers (gains are measured against it), or None.

    With `like` (an entry), the first such entry trained with the same budget (`same_budget`).
    """
    return next(
        (
            entry
            for entry, rows in groups.items()
            if not rows[0].get("teachers") and (like is None or same_budget(rows[0], groups[like][0]))
        ),
        None,
    )


def top1_interval(rows):
    """The 95% interval of an entry's top-1: over seeds (Student t) with several, else binomial (Wilson) on
    the one student's test images; None when unknown."""
    values = [s["top1"] for s in rows if s.get("top1") is not None]
    if len(values) >= 2:
        return stats.t_interval(values)[1:]
    return stats.accuracy_interval(values[0], rows[0].get("test_images")) if values else None


def entry_rows(groups, cell):
    """Table 4 rows, one per entry, and notes on left-out seeds.

    `cell(first student)` gives the fixed columns, then the statistics: seeds, top-1 (mean ± std) and its
    95% interval, top-5, the gain over the baseline of the same budget (mean ± std of the per-seed
    differences), its paired test and the verdict on "this entry beats the baseline".
    """
    table, notes = [], []
    for entry, rows in groups.items():
        baseline = baseline_entry(groups, like=entry)
        n, top1, top1_std = mean_std([s["top1"] for s in rows])
        _, top5, top5_std = mean_std([s.get("top5") for s in rows])
        gain_text = test = verdict = "–"
        if baseline is not None and entry != baseline:
            c = gain(rows, groups[baseline])
            gain_text, test, verdict = spread(c["mean"], c["std"], signed=True), test_text(c), c["verdict"]
            left_out = left_out_text(c, entry, baseline)
            if left_out:
                notes.append(f"- Gain of `{entry}`: {left_out}.")
        seeds = ", ".join(str(s.get("seed")) for s in rows)
        table.append(
            [
                entry,
                *cell(rows[0]),
                f"{n} ({seeds})",
                spread(top1, top1_std),
                interval_text(top1_interval(rows)),
                spread(top5, top5_std),
                gain_text,
                test,
                verdict,
            ]
        )
    return table, notes


NOTE = (
    "Top-1 and top-5 are the mean ± sample std over seeds (n seeds, listed) of the students' inference output "
    "on the test split; the top-1 95% CI is a Student-t interval over seeds (with one seed: the binomial Wilson "
    "interval on the test images). Gain is over the baseline entry of the same budget (architecture, patch, "
    "epochs, batch, learning rate, images), paired by seed: the mean ± std of the per-seed differences over the "
    "seeds both entries trained (a seed in one entry only is left out, and listed below the table). Its test: "
    "with several common seeds, the Student-t 95% interval of the mean difference; with one, an exact McNemar "
    'test on the two students\' predictions for the same test images. The verdict on "beats the baseline" '
    "follows from that alone: **holds** when the interval lies above 0 (or McNemar p < 0.05 in its favour), "
    "**does not hold** when it lies below 0 (or p < 0.05 against it), else **cannot tell at this n**."
)
