"""The report's figures as PNG files: training curves, disagreement heatmap, student and edge bars.

Students' curves compare like with like: the label loss (the class head on the labels, the same quantity
for every student) on one panel, the distillation loss (distilled students only) on its own, and test
accuracy against epochs and against cumulative training wall time.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
change, no display needed) and written to a temporary name, then renamed.

Example:
>>> plot_curves({"resnet26_s0": {"loss": [2.1, 1.7], "val_accuracy": [0.31, 0.42]}},
...             "plots/teacher_curves.png", title="Teachers")
"""

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from libkd_keras.atomic_files import temporary_sibling


def _save(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    with temporary_sibling(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    return path


def _percent(values):
    return [None if v is None else 100.0 * v for v in values]


def plot_curves(histories, path, title=""):
    """Training loss and test accuracy per epoch, one line per model.

    `histories`: `{name: {"loss": [...], "val_accuracy": [...]}}` (accuracy as a fraction; a
    missing or `None` value leaves a gap).
    """
    figure = Figure(figsize=(11, 4))
    loss_ax, acc_ax = figure.subplots(1, 2)
    for name, history in histories.items():
        loss = history.get("loss") or []
        accuracy = history.get("val_accuracy") or []
        if loss:
            loss_ax.plot(
                range(1, len(loss) + 1),
                [float("nan") if v is None else v for v in loss],
                marker="o",
                markersize=3,
                label=name,
            )
        if accuracy:
            acc_ax.plot(
                range(1, len(accuracy) + 1),
                [float("nan") if v is None else v for v in _percent(accuracy)],
                marker="o",
                markersize=3,
                label=name,
            )
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="loss")
    acc_ax.set(title="test accuracy", xlabel="epoch", ylabel="top-1 (%)")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _line(ax, xs, ys, name):
    ax.plot(xs, [float("nan") if v is None else v for v in ys], marker="o", markersize=3, label=name)


def student_curve_panels(histories):
    """What `plot_student_curves` draws: `{"label_loss": {name: [...]}, "distill_loss": {...}, "val_accuracy": {...}}`.

    `histories`: `{name: {"label_loss", "distill_loss", "val_accuracy", "distilled"}}` (lists by epoch;
    accuracy as a fraction). Every student with a logged label loss is on the label-loss panel; only
    distilled students (`distilled` true) are on the distillation-loss panel: a baseline's second head
    learns the labels, which is not a distillation loss.
    """
    panels = {"label_loss": {}, "distill_loss": {}, "val_accuracy": {}}
    for name, history in histories.items():
        if any(v is not None for v in history.get("label_loss") or []):
            panels["label_loss"][name] = list(history["label_loss"])
        if history.get("distilled") and any(v is not None for v in history.get("distill_loss") or []):
            panels["distill_loss"][name] = list(history["distill_loss"])
        if any(v is not None for v in history.get("val_accuracy") or []):
            panels["val_accuracy"][name] = _percent(history["val_accuracy"])
    return panels


def plot_student_curves(histories, path, title="Students"):
    """Three panels by epoch: label loss (every student), distillation loss (distilled students), test top-1.

    `histories`: as `student_curve_panels` takes them.
    """
    panels = student_curve_panels(histories)
    figure = Figure(figsize=(15, 4))
    axes = figure.subplots(1, 3)
    titles = (
        ("label_loss", "label loss (class head vs labels; training)", "loss"),
        ("distill_loss", "distillation loss (distillation head vs teachers)", "loss"),
        ("val_accuracy", "test accuracy", "top-1 (%)"),
    )
    for ax, (key, label, unit) in zip(axes, titles):
        for name, values in panels[key].items():
            _line(ax, range(1, len(values) + 1), values, name)
        ax.set(title=label, xlabel="epoch", ylabel=unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                "no distilled student" if key == "distill_loss" else "not logged",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def accuracy_over_time(history):
    """`(seconds, top1)`: test accuracy (fraction) at each validated epoch against cumulative training wall time.

    `history`: `{"time_s": [...], "val_accuracy": [...]}` by epoch (an epoch's time includes its validation;
    an epoch without validation has accuracy None and only adds its time).
    """
    seconds, top1, elapsed = [], [], 0.0
    for time_s, accuracy in zip(history.get("time_s") or [], history.get("val_accuracy") or []):
        elapsed += time_s or 0.0
        if accuracy is not None:
            seconds.append(elapsed)
            top1.append(accuracy)
    return seconds, top1


def plot_accuracy_vs_time(series, path, title="Students: test top-1 against training wall time"):
    """One line per student: `series` is `{label: (seconds, top1 fractions)}` (`accuracy_over_time`)."""
    figure = Figure(figsize=(8, 4.5))
    ax = figure.subplots()
    longest = max((s[-1] for s, _ in series.values() if s), default=0.0)
    minutes = longest >= 600
    for label, (seconds, top1) in series.items():
        _line(ax, [t / 60.0 if minutes else t for t in seconds], _percent(top1), label)
    ax.set(
        title=title,
        xlabel="cumulative training wall time (" + ("min" if minutes else "s") + ")",
        ylabel="test top-1 (%)",
    )
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    return _save(figure, path)


def plot_heatmap(matrix, labels, path, title="", value_format="{:.3f}"):
    """A square matrix (e.g. disagreement rates between teachers and ensembles) as an annotated heatmap."""
    size = max(4.0, 0.9 * len(labels) + 2.0)
    figure = Figure(figsize=(size + 1.0, size))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    peak = max((v for row in matrix for v in row), default=0.0) or 1.0
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(
                j,
                i,
                value_format.format(value),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < 0.6 * peak else "black",
            )
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return _save(figure, path)


def plot_student_bars(names, top1, baseline, path, title="Students: test top-1"):
    """Horizontal bars of the students' top-1 (fractions), with the baseline student as a line."""
    figure = Figure(figsize=(7, 0.5 * len(names) + 1.5))
    ax = figure.subplots()
    ax.barh(range(len(names)), _percent(top1), color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    if baseline is not None:
        ax.axvline(100.0 * baseline, color="tab:red", linestyle="--", label="baseline student")
        ax.legend(fontsize=8, loc="lower right")
    for i, value in enumerate(top1):
        ax.text(100.0 * value, i, f" {100.0 * value:.1f}", va="center", fontsize=8)
    ax.set(xlabel="top-1 (%)", title=title)
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def plot_edge(rows, path, title="LiteRT variants"):
    """Size, batch-1 latency and top-1 per quantization; `rows`: dicts with those keys (None = not measured)."""
    figure = Figure(figsize=(12, 3.5))
    axes = figure.subplots(1, 3)
    names = [r["quantization"] for r in rows]
    panels = (
        ("size_mb", "file size (MB)", 1.0),
        ("latency_ms", "latency, batch 1 (ms)", 1.0),
        ("top1", "test top-1 (%)", 100.0),
    )
    for ax, (key, label, scale) in zip(axes, panels):
        values = [0.0 if r.get(key) is None else scale * r[key] for r in rows]
        ax.bar(range(len(names)), values, color="tab:green")
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        for i, r in enumerate(rows):
            ax.text(
                i, values[i], "n/a" if r.get(key) is None else f"{values[i]:.3g}", ha="center", va="bottom", fontsize=8
            )
    figure.suptitle(title)
    return _save(figure, path)
