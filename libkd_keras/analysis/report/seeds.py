"""Students trained with several seeds: per-entry mean ± std, the gain's spread, and paired comparisons.

A [[students]] entry with `seeds = [0, 1, 2]` trains one student per seed (`<entry>_s<seed>`);
each record names its `entry` and `seed`. Spreads are sample standard deviations over seeds
(n - 1 in the denominator). Two entries trained on the same seed list are compared seed by seed
(the same seed means the same initialization, data order and augmentation).

Example:
>>> groups = entry_groups(load_students(layout))
>>> mean_std([s["top1"] for s in groups["ensemble"]])
(3, 0.512, 0.004)
"""

import math

from libkd_keras.analysis.report.records import same_budget
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


def gain(rows, baseline_rows):
    """`(mean, std, paired)` of an entry's top-1 gain over the baseline entry, as fractions.

    Same seed list: paired, the mean and std of the per-seed differences. Otherwise the difference
    of the means, with spread sqrt(std_a² + std_b²) (None when a side has one seed).
    """
    a, b = _by_seed(rows), _by_seed(baseline_rows)
    if a and set(a) == set(b):
        _, mean, std = mean_std([a[seed] - b[seed] for seed in a])
        return mean, std, True
    (_, mean_a, std_a), (_, mean_b, std_b) = mean_std(a.values()), mean_std(b.values())
    if mean_a is None or mean_b is None:
        return None, None, False
    std = None if std_a is None or std_b is None else math.sqrt(std_a**2 + std_b**2)
    return mean_a - mean_b, std, False


def teacher_families(rows):
    """The teacher families of an entry's students (by name prefix: resnet20_s0 -> "resnet")."""
    names = {t for s in rows for t in s.get("teachers") or []}
    return {family for family in TEACHER_FAMILIES for name in names if name.lower().startswith(family)}


def paired_comparison(mixed, single):
    """Per-seed differences `mixed - single` over their common seeds, and their statistics (fractions).

    Returns a dict: seeds, differences, positive (count), n, mean, std, t (paired t statistic
    mean / (std / sqrt(n)), None below two seeds or with std 0), exceeds (|mean| > std, None without std).
    """
    a, b = _by_seed(mixed), _by_seed(single)
    seeds = [seed for seed in a if seed in b]
    differences = [a[seed] - b[seed] for seed in seeds]
    n, mean, std = mean_std(differences)
    t = mean / (std / math.sqrt(n)) if std else None
    return {
        "seeds": seeds,
        "differences": differences,
        "positive": sum(d > 0 for d in differences),
        "n": n,
        "mean": mean,
        "std": std,
        "t": t,
        "exceeds": None if std is None else abs(mean) > std,
    }


def mixed_vs_single(groups):
    """`[(mixed entry, best single-family entry, comparison), ...]` for each entry with both families' teachers.

    The best single-family entry (all ResNet or all RedNet teachers) is the one with the highest mean top-1
    among those trained with the mixed entry's budget (`same_budget`).
    """
    families = {entry: teacher_families(rows) for entry, rows in groups.items()}
    found = []
    for entry in (e for e, f in families.items() if len(f) > 1):
        singles = [e for e, f in families.items() if len(f) == 1 and same_budget(groups[e][0], groups[entry][0])]
        if singles:
            best = max(singles, key=lambda e: mean_std([s["top1"] for s in groups[e]])[1])
            found.append((entry, best, paired_comparison(groups[entry], groups[best])))
    return found


def _points(value, signed=True):
    return "–" if value is None else (f"{100.0 * value:+.2f}" if signed else f"{100.0 * value:.2f}")


def spread(mean, std, signed=False):
    """`"51.20 ± 0.40"` in points (`"51.20"` without a std)."""
    text = _points(mean, signed)
    return text if std is None or mean is None else f"{text} ± {100.0 * std:.2f}"


def comparison_lines(groups):
    """Markdown of the paired "mixed beats the best same-bias set" comparison(s)."""
    lines = ["### Mixed beats the best same-bias set (paired by seed)", ""]
    found = mixed_vs_single(groups)
    if not found:
        return lines + [
            "_not run_ (needs an entry whose teachers span both families and one whose teachers are "
            "all ResNet or all RedNet)"
        ]
    for mixed, single, c in found:
        families = " + ".join(FAMILY_NAMES.get(f, f) for f in TEACHER_FAMILIES if f in teacher_families(groups[mixed]))
        best = mean_std([s["top1"] for s in groups[single]])[1]
        lines.append(
            f"`{mixed}` ({families} teachers) vs `{single}` (the best single-family entry, mean top-1 "
            f"{_points(best, False)}%):"
        )
        if not c["n"]:
            lines += ["", "- no seed in common: train both with the same `seeds` to compare them.", ""]
            continue
        per_seed = ", ".join(f"s{seed} {_points(d)}" for seed, d in zip(c["seeds"], c["differences"]))
        exceeds = "–" if c["exceeds"] is None else ("yes" if c["exceeds"] else "no")
        t = "–" if c["t"] is None else f"{c['t']:.2f} ({c['n'] - 1} degrees of freedom)"
        lines += [
            "",
            f"- per-seed differences (points): {per_seed}",
            f"- positive in {c['positive']}/{c['n']} seeds",
            f"- mean difference {spread(c['mean'], c['std'], signed=True)} points (mean ± std over seeds, "
            f"n = {c['n']})",
            f"- mean exceeds the spread (|mean| > std): {exceeds}; paired t = {t}",
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


def entry_rows(groups, cell):
    """Table 4 rows, one per entry: `cell(first student, key)` for the fixed columns, then the statistics."""
    table = []
    for entry, rows in groups.items():
        baseline = baseline_entry(groups, like=entry)
        n, top1, top1_std = mean_std([s["top1"] for s in rows])
        _, top5, top5_std = mean_std([s.get("top5") for s in rows])
        gain_text = "–"
        if baseline is not None and entry != baseline:
            mean, std, paired = gain(rows, groups[baseline])
            gain_text = spread(mean, std, signed=True) + ("" if mean is None or paired else " (unpaired)")
        seeds = ", ".join(str(s.get("seed")) for s in rows)
        table.append(
            [entry, *cell(rows[0]), f"{n} ({seeds})", spread(top1, top1_std), spread(top5, top5_std), gain_text]
        )
    return table


NOTE = (
    "Top-1 and top-5 are the mean ± sample std over seeds (n seeds, listed) of the students' inference output "
    "on the test split. Gain is over the baseline entry of the same budget (architecture, patch, epochs, batch, "
    "learning rate, images): with the same seed list, the mean ± std of the per-seed "
    "differences (paired); otherwise the difference of the means ± sqrt(std_a² + std_b²), marked unpaired."
)
