"""CKA of one pipeline run: the heatmaps (paper Figures 1-2) and the report's CKA section.

`find_run_models(run_dir)` lists the run's saved students and teachers; `analyze_run` runs
them once over test images, writes `cka/<label>.png`, `cka/<student>_vs_<teacher>.png`,
`cka/student_pairs.png` (every student against every other, `layerwise_cka`) and `cka/cka.json`,
and returns the Markdown section. `plot_cka_heatmap` draws one matrix.

Example:
>>> section = analyze_run("saved_models/quick", test_split.images)  # Markdown, PNGs in cka/
"""

import os
from pathlib import Path

import numpy as np

from libkd_keras.analysis.cka.estimators import MIN_UNBIASED_BATCH
from libkd_keras.analysis.cka.representations import _images_array, minibatch_cka_matrices
from libkd_keras.atomic_files import temporary_sibling, write_json_atomic


def plot_cka_heatmap(matrix, path, title=None, xlabels=None, ylabels=None):
    """Writes a CKA heatmap (the paper's Figures 1-2 style: layer 0 at the bottom left) as PNG.

    Rows of `matrix` go up the y axis, columns along the x axis; values are drawn in [0, 1].
    Uses matplotlib's Agg canvas directly (no global backend change, no display needed) and
    writes under a temporary name first, so `path` is never a half-written file.

    Example:
    >>> plot_cka_heatmap(cka_matrix(reps), "deit_cka.png", title="DeiT", xlabels=names, ylabels=names)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"`matrix` must be 2-D (rows, columns); got shape {matrix.shape}.")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {str(path.parent)!r} does not exist; create it first.")
    rows, cols = matrix.shape
    side = max(3.5, 0.32 * max(rows, cols) + 2.0)
    figure = Figure(figsize=(side + 1.0, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(
        matrix, origin="lower", cmap="magma", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest"
    )
    figure.colorbar(image, ax=axes, label="linear CKA")
    for labels, set_ticks, set_labels, count in (
        (xlabels, axes.set_xticks, axes.set_xticklabels, cols),
        (ylabels, axes.set_yticks, axes.set_yticklabels, rows),
    ):
        if labels is not None:
            if len(labels) != count:
                raise ValueError(f"got {len(labels)} labels for {count} rows/columns of `matrix`.")
            set_ticks(range(count))
            set_labels(labels, fontsize=7)
    axes.tick_params(axis="x", labelrotation=90)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    with temporary_sibling(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
        os.replace(temporary, path)
    return path


# ------------------------------------------------------------------------ one pipeline run

# Folders of a run that hold no finished model (the run layout is `RunLayout`'s).
_SKIP_FOLDERS = {
    "checkpoints",
    "checkpoint",
    "backup",
    "backups",
    "tmp",
    "logs",
    "exports",
    "export",
    "cka",
    "store",
    "plots",
    "steps",
    "ablation",
}  # ablation/models/: one student per experiment and seed


def _skipped(relative_parts):
    return any(
        part.lower() in _SKIP_FOLDERS or part.endswith((".backup", ".tmp")) or part.startswith(".")
        for part in relative_parts
    )


def find_run_models(run_dir):
    """`{label: path}` of the models saved in a run folder: its students and its teachers.

    Every `*.keras` file under `run_dir` counts, except in folders that hold no finished model
    (checkpoints, backups, logs, exports, the store, the ablation's students, hidden or temporary
    folders). The label is the file's stem (`baseline`, `ensemble`, `resnet26_s0`, ...), prefixed
    by its folder when two files share a stem. `analyze_run` tells students (DeiTs) from teachers once loaded.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist.")
    files = sorted(p for p in run_dir.rglob("*.keras") if not _skipped(p.relative_to(run_dir).parts))
    stems = [p.stem for p in files]
    return {(p.stem if stems.count(p.stem) == 1 else f"{p.parent.name}_{p.stem}"): p for p in files}


def _mean_off_diagonal(matrix):
    mask = ~np.eye(len(matrix), dtype=bool)
    values = matrix[mask]
    return float(np.nanmean(values)) if values.size else float("nan")


STUDENT_PAIRS_PNG = "student_pairs.png"  # every student against every other, one cell a pair


def layerwise_cka(matrix, rows, columns):
    """One number for a CKA matrix between two models: with the same layers (two students of one
    architecture), the mean CKA of each layer with the same layer of the other model (the diagonal);
    otherwise the mean over all layer pairs. Cells that are NaN (a constant layer) are left out."""
    matrix = np.asarray(matrix, dtype=np.float64)
    values = np.diag(matrix) if list(rows) == list(columns) else matrix.ravel()
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def analyze_run(run_dir, images, models=None, out_dir=None, max_images=512, batch_size=64):
    """Writes CKA heatmaps for a pipeline run and returns a Markdown section for its report.

    - `models`: `{label: keras.Model or path}`; by default `find_run_models(run_dir)` (every
      student and teacher saved in the run, labelled by file stem). DeiTs are students,
      everything else a teacher.
    - `images`: test images (raw pixels in [0, 255], or a `Split`); the first `max_images` are used.
    - Writes into `out_dir` (default `run_dir/cka`): `<label>.png` (every layer against every
      layer of one model, as the paper's Figures 1-2), `<student>_vs_<teacher>.png` for each
      student and teacher, `student_pairs.png` (one cell per pair of students: `layerwise_cka`), and
      `cka.json` with every matrix and its layer names (`"students"`: each student pair's matrix and
      its `"layerwise"` number).

    Uses minibatch CKA with `batch_size` images per minibatch; every model runs once over the
    images (`minibatch_cka_matrices`). The returned Markdown links the PNGs relative to
    `run_dir` (where `report.md` lives) and tabulates, per model, the mean
    CKA between different layers (high and uniform for ViTs, staged for CNNs) and, per
    student/teacher pair, the mean cross-model CKA (does distillation make the student's
    representations closer to the teacher's?).

    Example:
    >>> section = analyze_run("saved_models/quick", test_split.images)  # Markdown, PNGs in cka/
    """
    import keras

    import libkd_keras.models  # noqa: F401

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "cka"
    out_dir.mkdir(parents=True, exist_ok=True)
    images = _images_array(images)[:max_images]
    if len(images) < MIN_UNBIASED_BATCH:
        raise ValueError(f"`images` holds {len(images)} images; CKA needs at least {MIN_UNBIASED_BATCH}.")
    batch_size = max(MIN_UNBIASED_BATCH, min(batch_size, len(images)))
    models = find_run_models(run_dir) if models is None else dict(models)
    if not models:
        raise ValueError(f"no models to analyse: no `*.keras` files found under {str(run_dir)!r}.")
    loaded = {
        label: keras.saving.load_model(m, compile=False) if isinstance(m, (str, Path)) else m
        for label, m in models.items()
    }
    students = [label for label, m in loaded.items() if hasattr(m, "block_outputs")]
    teachers = [label for label in loaded if label not in students]

    def link(path):
        try:
            return Path(os.path.relpath(path, run_dir)).as_posix()
        except ValueError:  # another drive on Windows
            return Path(path).as_posix()

    record = {"images": int(len(images)), "batch_size": int(batch_size), "within": {}, "cross": {}, "students": {}}
    student_pairs = [(a, b) for i, a in enumerate(students) for b in students[i + 1 :]]
    pairs = [(label, label) for label in loaded] + [(s, t) for s in students for t in teachers] + student_pairs
    matrices, names = minibatch_cka_matrices(loaded, images, pairs, batch_size=batch_size)
    within_rows, cross_rows, pictures = [], [], []
    for label in loaded:
        matrix, layers = matrices[(label, label)], names[label]
        png = plot_cka_heatmap(
            matrix, out_dir / f"{label}.png", title=f"{label}: layer vs layer", xlabels=layers, ylabels=layers
        )
        record["within"][label] = {"layers": layers, "matrix": matrix.tolist()}
        kind = "student" if label in students else "teacher"
        within_rows.append(f"| {label} | {kind} | {len(layers)} | {_mean_off_diagonal(matrix):.3f} |")
        pictures.append(f"![{label}]({link(png)})")
    for student in students:
        for teacher in teachers:
            matrix, rows, cols = matrices[(student, teacher)], names[student], names[teacher]
            key = f"{student}_vs_{teacher}"
            png = plot_cka_heatmap(
                matrix, out_dir / f"{key}.png", title=f"{student} (rows) vs {teacher}", xlabels=cols, ylabels=rows
            )
            record["cross"][key] = {"rows": rows, "columns": cols, "matrix": matrix.tolist()}
            cross_rows.append(
                f"| {student} | {teacher} | {float(np.nanmean(matrix)):.3f} | {float(np.nanmax(matrix)):.3f} |"
            )
            pictures.append(f"![{key}]({link(png)})")
    if student_pairs:
        overview = np.eye(len(students))
        for a, b in student_pairs:
            matrix = matrices[(a, b)]
            value = layerwise_cka(matrix, names[a], names[b])
            record["students"][f"{a}_vs_{b}"] = {
                "rows": names[a],
                "columns": names[b],
                "matrix": matrix.tolist(),
                "layerwise": value,
            }
            i, j = students.index(a), students.index(b)
            overview[i, j] = overview[j, i] = value
        png = plot_cka_heatmap(
            overview, out_dir / STUDENT_PAIRS_PNG, title="students: layer-wise CKA", xlabels=students, ylabels=students
        )
        pictures.append(f"![students against students]({link(png)})")
    write_json_atomic(out_dir / "cka.json", record, indent=1)

    return _section(len(images), batch_size, within_rows, cross_rows, pictures, student_pairs=bool(student_pairs))


def _section(images, batch_size, within_rows, cross_rows, pictures, student_pairs=False):
    """The report's Markdown: the within-model table, the student-vs-teacher table, the heatmaps."""
    lines = [
        "## Representation similarity (linear CKA)",
        "",
        f"Minibatch linear CKA (Nguyen et al., 2021; paper eq. 2) on {images} test images, "
        f"{batch_size} per minibatch. Within a model, a ViT's layers are expected to be similar "
        "throughout (a bright, uniform map) and a CNN's to group into stages (paper Figures 1-2).",
        "",
        "| model | kind | layers | mean CKA between different layers |",
        "|---|---|---|---|",
        *within_rows,
    ]
    if cross_rows:
        lines += [
            "",
            "Student vs teacher (rows: student layers, columns: teacher layers):",
            "",
            "| student | teacher | mean CKA | max CKA |",
            "|---|---|---|---|",
            *cross_rows,
        ]
    if student_pairs:
        lines += [
            "",
            f"Students against students (`cka/{STUDENT_PAIRS_PNG}`): for each pair, the mean CKA of each layer with "
            "the same layer of the other student. How far teachers moved a student's representations from what "
            "the labels alone teach is its cell with the baseline of its seed (the report's teacher-set table).",
        ]
    lines += ["", *pictures, ""]
    return "\n".join(lines)
