"""Publishes a finished `libkd pipeline` run folder as a section of benchmarks/RESULTS.md.

    python benchmarks/publish_run.py saved_models/budget-cifar10 --name cifar10 \
        --command "libkd pipeline --preset budget --dataset /tmp/cifar10-jpeg --out saved_models/budget-cifar10"
    python benchmarks/assemble_results.py

Writes `benchmarks/results/<name>.md`: the budget (images, epochs, wall time per step, machine),
the claim of the paper checked against the students' top-1, and the run's own report (its
headings one level down, its plots copied to `benchmarks/results/<name>/`).
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from libkd_keras.analysis.report import load_config, load_steps, load_students, write_report  # noqa: E402
from libkd_keras.run_layout import RunLayout  # noqa: E402


def claim_lines(students):
    """The paper's claim, checked: complementary ensemble vs same-bias teachers vs the student alone."""
    top1 = {s["name"]: s["top1"] for s in students if s.get("top1") is not None}
    teachers = {s["name"]: s.get("teachers") or [] for s in students}
    baseline = next((n for n in top1 if not teachers[n]), None)
    mixed = [
        n
        for n in top1
        if any(t.startswith("rednet") for t in teachers[n]) and any(t.startswith("resnet") for t in teachers[n])
    ]
    same = [n for n in top1 if teachers[n] and n not in mixed]
    if baseline is None or not mixed or not same:
        return ["The claim needs a baseline, a mixed-ensemble and a same-bias student; this run lacks one."]
    best_mixed = max(mixed, key=top1.get)
    best_same = max(same, key=top1.get)
    pts = lambda a, b: 100 * (top1[a] - top1[b])  # noqa: E731

    def verdict(points, noise=2.0):
        if abs(points) < noise:
            return f"is not separable from noise here (|gap| < {noise:g} points with one seed)"
        return "holds here" if points > 0 else "does not hold here"

    return [
        f"- Mixed ensemble vs the student alone: `{best_mixed}` {100 * top1[best_mixed]:.2f}% vs "
        f"`{baseline}` {100 * top1[baseline]:.2f}% ({pts(best_mixed, baseline):+.2f} points): the claim "
        f"{verdict(pts(best_mixed, baseline))}.",
        f"- Mixed ensemble vs the best same-bias teacher set: `{best_mixed}` vs `{best_same}` "
        f"{100 * top1[best_same]:.2f}% ({pts(best_mixed, best_same):+.2f} points): the claim "
        f"{verdict(pts(best_mixed, best_same))}.",
        "- One run per student (one seed): differences of a point or two are within seed noise at this size.",
    ]


def budget_lines(layout, command):
    config, steps = load_config(layout), load_steps(layout)
    data, teachers, student = config.get("data", {}), config.get("teachers", {}), config.get("student", {})
    total = sum(s.get("seconds", 0) for s in steps)
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}), no GPU; "
        f"{datetime.date.today().isoformat()}; precision {config.get('run', {}).get('precision')}, no XLA.  ",
        f"Budget: students see {data.get('train_limit'):,} training images, teachers "
        f"{teachers.get('train_limit') or data.get('train_limit'):,} (a superset); test on "
        f"{data.get('test_limit'):,} images. ResNet-26 {teachers.get('resnet_epochs') or teachers.get('epochs')} "
        f"epochs, RedNet-26 {teachers.get('rednet_epochs') or teachers.get('epochs')} epochs, each student "
        f"{student.get('epochs')} epochs ({student.get('arch')}, patch {student.get('patch_size')}, "
        f"recipe {student.get('recipe')}, {student.get('distillation')} distillation, alpha {student.get('alpha')}). "
        f"Sum of step times: {total / 60:.0f} min.",
        "",
        "| step | minutes |",
        "|---|---|",
        *[f"| {s.get('step')} | {s.get('seconds', 0) / 60:.1f} |" for s in steps],
    ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run folder")
    parser.add_argument("--name", required=True, help="section name: writes benchmarks/results/<name>.md")
    parser.add_argument("--title", default=None, help="section title (default: from the run's dataset)")
    parser.add_argument("--command", required=True, help="the command that made the run, shown verbatim")
    parser.add_argument("--notes", default=None, help="a Markdown file of findings to put under the claim")
    args = parser.parse_args()

    layout = RunLayout(args.run)
    write_report(layout.root)  # the report from the artifacts as they are now
    report = (layout.root / "report.md").read_text(encoding="utf-8")
    body = report.split("\n", 1)[1]  # drop the report's own title
    body = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", body, flags=re.M)
    figures = HERE / "results" / args.name
    if figures.exists():
        shutil.rmtree(figures)
    figures.mkdir(parents=True)
    for png in sorted((layout.root / "plots").glob("*.png")):
        shutil.copy2(png, figures / png.name)
    body = body.replace("](plots/", f"]({args.name}/")

    title = args.title or f"Results on real data: `{args.run}`"
    lines = [
        f"## {title}",
        "",
        *budget_lines(layout, args.command),
        "",
        "### The paper's claim, checked",
        "",
        *claim_lines(load_students(layout)),
    ]
    if args.notes:
        lines += ["", Path(args.notes).read_text(encoding="utf-8").strip()]
    lines += ["", "### The run's report", "", body.strip(), ""]
    out = HERE / "results" / f"{args.name}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out} and {len(list(figures.iterdir()))} plots in {figures}")


if __name__ == "__main__":
    main()
