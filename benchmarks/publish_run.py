"""Publishes a finished `libkd pipeline` run folder as a dated log in benchmarks/results/.

    python benchmarks/publish_run.py saved_models/budget-cifar10 --name cifar10 \
        --command "libkd pipeline --preset budget --dataset /tmp/cifar10-jpeg --out saved_models/budget-cifar10"

Writes `benchmarks/results/<name>.md`: the budget (images, epochs, wall time per step, machine),
the claim of the paper checked against the students' top-1 (paired by seed, with its test and
verdict), and the run's own report (its headings one level down, its plots copied to
`benchmarks/results/<name>/`); and `benchmarks/results/<name>/summary.json`, the run's results in
the schema of `libkd_keras/analysis/report/summary.py`, written by the library from the run folder.
Then link the log from benchmarks/RESULTS.md (written by hand: update the topic's row, move the
log it supersedes to that topic's History line).
"""

import argparse
import datetime
import functools
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from libkd_keras.analysis.cka.run import STUDENT_PAIRS_PNG  # noqa: E402
from libkd_keras.analysis.report import load_config, load_steps, load_students, seeds, write_report  # noqa: E402
from libkd_keras.analysis.report.records import load_teachers, student_setting, trained_images  # noqa: E402
from libkd_keras.analysis.report.run_sections import resumed_training, step_time  # noqa: E402
from libkd_keras.analysis.report.summary import machine_description, write_summary  # noqa: E402
from libkd_keras.run_layout import RunLayout  # noqa: E402


def claim_lines(students):
    """The paper's claim, checked entry by entry, paired by seed (the report below has every seed).

    Each mixed-ensemble entry is compared with the baseline and with each same-bias entry of its budget; the
    verdict ("holds", "does not hold", "cannot tell at this n") follows from the paired test alone: the
    Student-t 95% interval over common seeds, or with one seed the exact McNemar test on the same test images.
    """
    groups = seeds.entry_groups(students)

    def mean(entry):
        n, value, std = seeds.mean_std([s["top1"] for s in groups[entry]])
        return f"`{entry}` {seeds.spread(value, std)}% (n = {n})"

    def result(c, a, b):
        left_out = seeds.left_out_text(c, a, b)
        return (
            f"mean difference {seeds.spread(c['mean'], c['std'], signed=True)} points over {c['n']} common "
            f"seed(s), {seeds.test_text(c)}{'; ' + left_out if left_out else ''}: **{c['verdict']}**"
        )

    lines = []
    for mixed in (entry for entry, rows in groups.items() if len(seeds.teacher_families(rows)) > 1):
        baseline = seeds.baseline_entry(groups, like=mixed)
        if baseline is not None:
            c = seeds.gain(groups[mixed], groups[baseline])
            lines.append(
                f"- Mixed ensemble beats the student alone: {mean(mixed)} vs {mean(baseline)}; "
                f"{result(c, mixed, baseline)}."
            )
        for _, single, c in (found for found in seeds.mixed_vs_single(groups) if found[0] == mixed):
            lines.append(
                f"- Mixed ensemble beats the same-bias set `{single}` ({seeds.teacher_count(groups[mixed])} vs "
                f"{seeds.teacher_count(groups[single])} teachers): {mean(mixed)} vs {mean(single)}; "
                f"{result(c, mixed, single)}."
            )
    return lines or [
        "The claim needs a mixed-ensemble student and a baseline or same-bias student of the same budget; "
        "this run lacks one."
    ]


def budget_lines(layout, command):
    config, steps, students = load_config(layout), load_steps(layout), load_students(layout)
    resumed = resumed_training(steps, load_teachers(layout), students)
    data, teachers = config.get("data", {}), config.get("teachers", {})
    setting = functools.partial(student_setting, config, students)
    run = config.get("run", {})
    test = f"{data['test_limit']:,}" if data.get("test_limit") else "all"
    # A limit of 0 means "all": the count the students trained on is in their records.
    seen = trained_images(students) or data.get("train_limit")
    train = f"{seen:,}" if seen else "all"
    teacher_limit = teachers.get("train_limit") or data.get("train_limit")
    teacher_train = f"{teacher_limit:,}" if teacher_limit else "all"
    total = sum(s.get("seconds", 0) for s in steps)
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine_description()}; "
        f"{datetime.date.today().isoformat()}; precision {run.get('precision')}, "
        f"jit_compile {run.get('jit_compile')}.  ",
        f"Budget: students see {train} training images, teachers {teacher_train}; test on "
        f"{test} test images. ResNet teachers ({teachers.get('resnet_arch')}) "
        f"{teachers.get('resnet_epochs') or teachers.get('epochs')} epochs, RedNet teachers "
        f"({teachers.get('rednet_arch')}) {teachers.get('rednet_epochs') or teachers.get('epochs')} epochs, "
        f"students {setting('epochs', ' epochs')} ({setting('arch')}, patch {setting('patch_size')}, "
        f"recipe {setting('recipe')}, {setting('distillation')} distillation, alpha {setting('alpha')}). "
        f"Sum of step times: {total / 60:.0f} min"
        + (" (a step resumed after a stop counts from its resume)." if resumed else "."),
        "",
        "| step | minutes |",
        "|---|---|",
        *[f"| {s.get('step')} | {step_time(s, resumed, per=60, fmt='{:.1f}')} |" for s in steps],
    ]
    return lines


def cka_pictures(body, layout, figures, name):
    """The CKA section's pictures: the one of every student against every other is copied beside the log; the
    per-model and student-teacher heatmaps (one image each, megabytes in all) stay in the run folder, their
    lines replaced by one line that says where they are."""
    pairs = layout.cka / STUDENT_PAIRS_PNG
    if pairs.is_file():
        shutil.copy2(pairs, figures / STUDENT_PAIRS_PNG)
        body = body.replace(f"](cka/{STUDENT_PAIRS_PNG})", f"]({name}/{STUDENT_PAIRS_PNG})")
    lines = body.split("\n")
    left = [i for i, line in enumerate(lines) if re.fullmatch(r"!\[[^\]]*\]\(cka/[^)]*\)", line.strip())]
    if not left:
        return body
    note = f"_{len(left)} more CKA heatmaps (each model, each student against each teacher): the run folder's `cka/`._"
    kept = [line for i, line in enumerate(lines) if i not in left]
    return "\n".join([*kept[: left[0]], note, *kept[left[0] :]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run folder")
    parser.add_argument("--name", required=True, help="section name: writes benchmarks/results/<name>.md")
    parser.add_argument("--title", default=None, help="section title (default: from the run's dataset)")
    parser.add_argument("--command", required=True, help="the command that made the run, shown verbatim")
    parser.add_argument("--notes", default=None, help="a Markdown file of findings to put under the claim")
    parser.add_argument("--results", default=str(HERE / "results"), help="where the logs go (default: %(default)s)")
    args = parser.parse_args(argv)

    notes = Path(args.notes).read_text(encoding="utf-8").strip() if args.notes else None  # a wrong path fails here
    layout = RunLayout(args.run)
    write_report(layout.root)  # the report from the artifacts as they are now
    report = (layout.root / "report.md").read_text(encoding="utf-8")
    body = report.split("\n", 1)[1]  # drop the report's own title
    body = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", body, flags=re.M)
    # Everything is built beside the published log first; a log published before is replaced only once the new
    # one is whole, so an error on the way leaves the old one (plots, summary.json) as it was.
    results = Path(args.results)
    figures, staging = results / args.name, results / f".{args.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for png in sorted((layout.root / "plots").glob("*.png")):
        shutil.copy2(png, staging / png.name)
    body = body.replace("](plots/", f"]({args.name}/")
    body = cka_pictures(body, layout, staging, args.name)
    write_summary(layout.root, staging / "summary.json", run=args.name, command=args.command)

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
    if notes:
        lines += ["", notes]
    lines += ["", "### The run's report", "", body.strip(), ""]
    if figures.exists():
        shutil.rmtree(figures)
    staging.rename(figures)
    out = results / f"{args.name}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}, {figures / 'summary.json'} and {len(list(figures.glob('*.png')))} plots in {figures}")


if __name__ == "__main__":
    main()
