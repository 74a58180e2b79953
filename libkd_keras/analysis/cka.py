"""Linear CKA (paper eq. 2; Kornblith et al., 2019) between layers of one model or of two models.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) * HSIC(L, L))

with linear kernels `K = X X^T`, `L = Y Y^T` over the same `n` examples. Two estimators:

- `linear_cka(x, y)` / `cka_matrix(reps_a, reps_b)`: the whole sample at once (biased HSIC by
  default, as Kornblith et al.; `unbiased=True` gives Song et al.'s unbiased HSIC);
- `MinibatchCKA` / `minibatch_cka_matrix(model_a, images, model_b)`: Nguyen et al. (2021),
  unbiased HSIC averaged over minibatches, so activations never need to fit in memory at once.

`layer_representations(model, images)` reads the activations CKA compares: for a DeiT the
token sequence after the embedding and after every block (`model.block_outputs`), for the
ResNet/RedNet teachers the stem and every `stage*_block*_out`, each flattened to `(n, features)`.
`analyze_run(run_dir, images)` draws the paper's Figure 1-2 heatmaps for a pipeline run.

Example:
>>> x = np.random.default_rng(0).normal(size=(100, 8))
>>> round(linear_cka(x, 3.0 * x), 6)
1.0
"""

import os
from pathlib import Path

import numpy as np

from libkd_keras.atomic_files import temporary_sibling, write_json_atomic

# The smallest minibatch the unbiased HSIC estimator is defined for (it divides by n - 3).
MIN_UNBIASED_BATCH = 4


# --------------------------------------------------------------------------- the estimators


def _as_matrix(x, name="x"):
    """A `(n, features)` float64 array; anything after the first axis is flattened."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"`{name}` must be (examples, features...), got shape {x.shape}.")
    x = x.reshape(x.shape[0], -1)
    if x.shape[0] < 2:
        raise ValueError(f"`{name}` needs at least 2 examples to compare; got {x.shape[0]}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` holds NaN or infinite values; CKA is undefined on them.")
    return x


def _safe_ratio(numerator, denominator):
    """numerator / sqrt(denominator), NaN where a representation is constant (zero HSIC)."""
    denominator = np.sqrt(np.maximum(denominator, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def gram(x):
    """Linear kernel `X X^T` of a `(n, features)` representation."""
    x = _as_matrix(x)
    return x @ x.T


def center_gram(k):
    """`H K H` with the centering matrix `H = I - 11^T / n` (the biased HSIC's centering)."""
    k = np.asarray(k, dtype=np.float64)
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def _unbiased_terms(grams):
    """Per-gram pieces of the unbiased HSIC: zero-diagonal grams flattened, row sums, total sums."""
    grams = np.array(grams, dtype=np.float64)  # (L, n, n), a copy we may edit
    n = grams.shape[-1]
    idx = np.arange(n)
    grams[:, idx, idx] = 0.0
    rows = grams.sum(axis=2)  # (L, n)
    return grams.reshape(len(grams), -1), rows, rows.sum(axis=1)


def _unbiased_hsic(terms_a, terms_b, n):
    """Song et al. (2012) unbiased HSIC between every gram of `a` and every gram of `b`: (La, Lb).

    HSIC_1(K, L) = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
    where K~, L~ are the grams with their diagonal set to zero.
    """
    flat_a, rows_a, sums_a = terms_a
    flat_b, rows_b, sums_b = terms_b
    trace = flat_a @ flat_b.T  # tr(K~ L~) = sum(K~ * L~) for symmetric grams
    return (
        trace + np.outer(sums_a, sums_b) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (rows_a @ rows_b.T)
    ) / (n * (n - 3))


def linear_cka(x, y, unbiased=False):
    """Linear CKA between two representations of the same `n` examples.

    `x`: `(n, p1)`, `y`: `(n, p2)` (extra axes are flattened). Invariant to orthogonal transforms
    and isotropic scaling of either side; 1 for identical representations. Returns NaN when one
    side is constant (CKA is undefined there).

    Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 16))
    >>> q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    >>> bool(np.isclose(linear_cka(x, x @ q), 1.0))
    True
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"`x` and `y` must hold the same examples; got {n} and {y.shape[0]} rows.")
    if unbiased:
        if n < MIN_UNBIASED_BATCH:
            raise ValueError(f"the unbiased estimator needs at least {MIN_UNBIASED_BATCH} examples; got {n}.")
        terms = _unbiased_terms([x @ x.T, y @ y.T])
        hsic = _unbiased_hsic(terms, terms, n)
        return float(_safe_ratio(hsic[0, 1], hsic[0, 0] * hsic[1, 1]))
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    p1, p2 = x.shape[1], y.shape[1]
    if n * p1 * p2 <= n * n * (p1 + p2):  # feature space: ||Y^T X||_F^2 (cheaper for few features)
        cross = np.sum((y.T @ x) ** 2)
        self_x, self_y = np.sum((x.T @ x) ** 2), np.sum((y.T @ y) ** 2)
    else:  # example space: <K_c, L_c> on the centered grams (cheaper for many features)
        k, ell = x @ x.T, y @ y.T
        cross, self_x, self_y = np.sum(k * ell), np.sum(k * k), np.sum(ell * ell)
    return float(_safe_ratio(cross, self_x * self_y))


def cka_matrix(reps_a, reps_b=None, unbiased=False):
    """Linear CKA between every layer of `reps_a` and every layer of `reps_b`: `(La, Lb)`.

    `reps_*` are lists of `(n, features)` arrays or of `(name, array)` pairs (as returned by
    `layer_representations`); `reps_b=None` compares `reps_a` with itself (a symmetric matrix
    with ones on the diagonal). All layers must hold the same `n` examples in the same order.
    Keeps one `n x n` gram per layer in memory; for large `n`, use `minibatch_cka_matrix`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> reps = [rng.normal(size=(50, 4)), rng.normal(size=(50, 6))]
    >>> cka_matrix(reps).shape
    (2, 2)
    """
    arrays_a = [_as_matrix(r[1] if isinstance(r, tuple) else r, "reps_a") for r in reps_a]
    arrays_b = arrays_a if reps_b is None else [
        _as_matrix(r[1] if isinstance(r, tuple) else r, "reps_b") for r in reps_b
    ]
    if not arrays_a or not arrays_b:
        raise ValueError("`reps_a` and `reps_b` must each hold at least one layer.")
    sizes = {a.shape[0] for a in arrays_a + arrays_b}
    if len(sizes) != 1:
        raise ValueError(f"every layer must hold the same examples; got row counts {sorted(sizes)}.")
    n = sizes.pop()

    def flat(arrays):
        if unbiased:
            return _unbiased_terms([a @ a.T for a in arrays])
        return np.stack([center_gram(a @ a.T).reshape(-1) for a in arrays])

    terms_a = flat(arrays_a)
    terms_b = terms_a if reps_b is None else flat(arrays_b)
    if unbiased:
        if n < MIN_UNBIASED_BATCH:
            raise ValueError(f"the unbiased estimator needs at least {MIN_UNBIASED_BATCH} examples; got {n}.")
        cross = _unbiased_hsic(terms_a, terms_b, n)
        self_a = np.diag(_unbiased_hsic(terms_a, terms_a, n)) if reps_b is not None else np.diag(cross)
        self_b = np.diag(_unbiased_hsic(terms_b, terms_b, n)) if reps_b is not None else np.diag(cross)
    else:
        cross = terms_a @ terms_b.T
        self_a = np.einsum("ij,ij->i", terms_a, terms_a)
        self_b = self_a if reps_b is None else np.einsum("ij,ij->i", terms_b, terms_b)
    return _safe_ratio(cross, np.outer(self_a, self_b))


class MinibatchCKA:
    """Minibatch linear CKA (Nguyen et al., 2021): unbiased HSIC averaged over minibatches.

    Feed the same examples to both sides with `update(batch_a, batch_b)` — each a list of
    `(b, features...)` arrays, one per layer — then read `result()`, the `(La, Lb)` matrix.
    `batch_b=None` compares side `a` with itself. Batches with fewer than 4 examples are
    skipped (the estimator divides by `b - 3`). Only `b x b` grams are kept, so any number of
    examples fits in memory.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> cka = MinibatchCKA()
    >>> for _ in range(4):
    ...     x = rng.normal(size=(32, 5))
    ...     cka.update([x, 2 * x])
    >>> np.round(cka.result(), 6).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self):
        self.cross = self.self_a = self.self_b = None
        self.batches = 0
        self.examples = 0

    def update(self, batch_a, batch_b=None):
        arrays_a = [_as_matrix(r, "batch_a") for r in batch_a]
        arrays_b = None if batch_b is None else [_as_matrix(r, "batch_b") for r in batch_b]
        n = arrays_a[0].shape[0]
        if any(a.shape[0] != n for a in arrays_a + (arrays_b or [])):
            raise ValueError("every layer of a minibatch must hold the same examples.")
        if n < MIN_UNBIASED_BATCH:
            return False
        terms_a = _unbiased_terms([a @ a.T for a in arrays_a])
        terms_b = terms_a if arrays_b is None else _unbiased_terms([b @ b.T for b in arrays_b])
        cross = _unbiased_hsic(terms_a, terms_b, n)
        self_a = np.diag(cross).copy() if arrays_b is None else np.diag(_unbiased_hsic(terms_a, terms_a, n))
        self_b = self_a if arrays_b is None else np.diag(_unbiased_hsic(terms_b, terms_b, n))
        if self.cross is None:
            self.cross, self.self_a, self.self_b = np.zeros_like(cross), np.zeros_like(self_a), np.zeros_like(self_b)
        elif self.cross.shape != cross.shape:
            raise ValueError(f"layer counts changed between minibatches: {self.cross.shape} then {cross.shape}.")
        self.cross += cross
        self.self_a += self_a
        self.self_b += self_b
        self.batches += 1
        self.examples += n
        return True

    def result(self):
        if self.cross is None:
            raise ValueError(f"no minibatch of at least {MIN_UNBIASED_BATCH} examples was given to `update`.")
        return _safe_ratio(self.cross, np.outer(self.self_a, self.self_b))  # the 1/batches cancels


# ------------------------------------------------------------------ reading layer activations


def _images_array(images):
    """Float32 pixels in [0, 255], `(n, H, W, 3)`, from an array or anything with `.images`."""
    images = getattr(images, "images", images)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must be (n, height, width, channels) pixels; got shape {images.shape}.")
    return images.astype(np.float32)


def representation_layers(model):
    """Names of the layers CKA reads from a ResNet/RedNet teacher: the stem, then every block.

    The stem's output is the last layer whose name starts with `stem` (`stem_relu`,
    `stem_3_relu` or `stem_pool`); blocks are the layers named `stage*_block*_out`.
    """
    names = [layer.name for layer in model.layers]
    stem = [n for n in names if n.startswith("stem")]
    blocks = [n for n in names if n.startswith("stage") and "_block" in n and n.endswith("_out")]
    return stem[-1:] + blocks


def _extractor(model, layers):
    """`(names, fn)` where `fn(batch)` returns one `(b, features)` array per layer."""
    from keras import ops  # imported here so the NumPy half of this module needs no backend

    if hasattr(model, "block_outputs"):  # DeiT: embedding, then one entry per block
        names = ["embed"] + [f"block{i}" for i in range(len(model.blocks))]
        keep = list(range(len(names)))
        if layers is not None:
            unknown = [layer for layer in layers if layer not in names]
            if unknown:
                raise ValueError(f"unknown DeiT layers {unknown}; available: {names}.")
            keep = [names.index(layer) for layer in layers]
            names = list(layers)

        def read(batch):
            outputs = model.block_outputs(batch, training=False)
            return [ops.convert_to_numpy(outputs[i]).reshape(len(batch), -1) for i in keep]

        return names, read

    import keras

    available = [layer.name for layer in getattr(model, "layers", [])]
    names = list(layers) if layers is not None else representation_layers(model)
    if not names:
        raise ValueError(
            f"model {model.name!r} has no layers named `stem*` or `stage*_block*_out`; pass `layers=` "
            f"with names among: {available}."
        )
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"model {model.name!r} has no layers {unknown}; available: {available}.")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(inputs, [model.get_layer(name).output for name in names], name=f"{model.name}_cka")

    def read(batch):
        outputs = probe(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [ops.convert_to_numpy(o).reshape(len(batch), -1) for o in outputs]

    return names, read


def iter_representations(model, images, layers=None, batch_size=64):
    """Yields, batch by batch, `(names, [(b, features) array per layer])` of `model` on `images`."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    images = _images_array(images)
    names, read = _extractor(model, layers)
    for start in range(0, len(images), batch_size):
        yield names, read(images[start : start + batch_size])


def layer_representations(model, images, layers=None, batch_size=64):
    """`[(layer_name, (n, features) array)]`: what `cka_matrix` compares.

    - DeiT (anything with `block_outputs`): `embed` (patch + class/distillation tokens), then
      `block0`, `block1`, ... — the whole token sequence, flattened.
    - Functional ResNet/RedNet teachers: the stem, then every `stage*_block*_out`, flattened.
    `layers` picks a subset by name. `images` are raw pixels in [0, 255] (or a `Split`).

    Example:
    >>> student = DeiT(num_classes=10, image_size=16, patch_size=4, dim=32, depth=2, num_heads=2)
    >>> [name for name, _ in layer_representations(student, np.zeros((4, 16, 16, 3)))]
    ['embed', 'block0', 'block1']
    """
    names, chunks = None, []
    for names, batch in iter_representations(model, images, layers, batch_size):
        chunks.append(batch)
    if not chunks:
        raise ValueError("`images` is empty; give at least 2 images.")
    return [(name, np.concatenate([c[i] for c in chunks])) for i, name in enumerate(names)]


def minibatch_cka_matrix(model_a, images, model_b=None, layers_a=None, layers_b=None, batch_size=64):
    """Minibatch CKA between every layer of `model_a` and of `model_b` (or itself) on `images`.

    Streams `images` once through both models (`batch_size` at a time; use batches of at
    least a few dozen images, the estimator's noise grows as the batch shrinks) and returns
    `(matrix (La, Lb), names_a, names_b)`.

    Example:
    >>> matrix, rows, cols = minibatch_cka_matrix(student, test_images[:512], teacher, batch_size=128)
    """
    accumulator = MinibatchCKA()
    names_a = names_b = None
    batches_a = iter_representations(model_a, images, layers_a, batch_size)
    batches_b = None if model_b is None else iter_representations(model_b, images, layers_b, batch_size)
    for names_a, batch_a in batches_a:
        if batches_b is None:
            names_b, batch_b = names_a, None
        else:
            names_b, batch_b = next(batches_b)
        accumulator.update(batch_a, batch_b)
    if names_a is None:
        raise ValueError("`images` is empty; give at least a few batches of images.")
    return accumulator.result(), names_a, names_b


def minibatch_cka_matrices(models, images, pairs, layers=None, batch_size=64):
    """Minibatch CKA for many model pairs, running every model only once over `images`.

    - `models`: `{label: keras.Model}`; `pairs`: `[(label_a, label_b), ...]`, `(a, a)` for the
      layer-vs-layer matrix of one model; `layers`: optional `{label: [layer names]}`.

    Per minibatch, each model's layer grams are computed once and shared by every pair it is
    in, so comparing S students with T teachers costs S + T forward passes, not S * T.
    Returns `(matrices {pair: (La, Lb) array}, names {label: [layer names]})`.

    Example:
    >>> matrices, names = minibatch_cka_matrices({"deit": student, "resnet": teacher}, test_images,
    ...                                          pairs=[("deit", "deit"), ("deit", "resnet")])
    """
    pairs = [tuple(pair) for pair in pairs]
    unknown = sorted({label for pair in pairs for label in pair} - set(models))
    if unknown:
        raise ValueError(f"`pairs` name models {unknown} that are not in `models` ({sorted(models)}).")
    if not isinstance(batch_size, int) or batch_size < MIN_UNBIASED_BATCH:
        raise ValueError(f"`batch_size` must be an integer >= {MIN_UNBIASED_BATCH}; got {batch_size!r}.")
    images = _images_array(images)
    used = [label for label in models if any(label in pair for pair in pairs)]
    extractors = {label: _extractor(models[label], (layers or {}).get(label)) for label in used}
    cross = {pair: 0.0 for pair in pairs}
    self_hsic = {label: 0.0 for label in used}
    batches = 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        n = len(batch)
        if n < MIN_UNBIASED_BATCH:
            continue  # the unbiased estimator needs at least 4 examples
        terms = {label: _unbiased_terms([a @ a.T for a in map(_as_matrix, read(batch))])
                 for label, (_, read) in extractors.items()}
        for label, t in terms.items():
            within = _unbiased_hsic(t, t, n)
            self_hsic[label] = self_hsic[label] + np.diag(within)
            if (label, label) in cross:
                cross[(label, label)] = cross[(label, label)] + within
        for a, b in pairs:
            if a != b:
                cross[(a, b)] = cross[(a, b)] + _unbiased_hsic(terms[a], terms[b], n)
        batches += 1
    if not batches:
        raise ValueError(f"`images` holds {len(images)} images; minibatch CKA needs at least {MIN_UNBIASED_BATCH}.")
    matrices = {(a, b): _safe_ratio(cross[(a, b)], np.outer(self_hsic[a], self_hsic[b])) for a, b in pairs}
    return matrices, {label: list(extractors[label][0]) for label in used}


# ----------------------------------------------------------------------------- the heatmaps


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
    image = axes.imshow(matrix, origin="lower", cmap="magma", vmin=0.0, vmax=1.0, aspect="auto",
                        interpolation="nearest")
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

# Folders of a run that hold no finished model (see `analysis/artifacts.py` for the run layout).
_SKIP_FOLDERS = {"checkpoints", "checkpoint", "backup", "backups", "tmp", "logs", "exports", "export", "cka",
                 "store", "plots", "steps"}


def _skipped(relative_parts):
    return any(part.lower() in _SKIP_FOLDERS or part.endswith((".backup", ".tmp")) or part.startswith(".")
               for part in relative_parts)


def find_run_models(run_dir):
    """`{label: path}` of the models saved in a run folder: its students and its teachers.

    Every `*.keras` file under `run_dir` counts, except in folders that hold no finished model
    (checkpoints, backups, logs, exports, the store, hidden or temporary folders). The label is
    the file's stem (`baseline`, `ensemble`, `resnet26_s0`, ...), prefixed by its folder when
    two files share a stem. `analyze_run` tells students (DeiTs) from teachers once loaded.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist.")
    files = sorted(p for p in run_dir.rglob("*.keras") if not _skipped(p.relative_to(run_dir).parts))
    stems = [p.stem for p in files]
    return {
        (p.stem if stems.count(p.stem) == 1 else f"{p.parent.name}_{p.stem}"): p for p in files
    }


def _mean_off_diagonal(matrix):
    mask = ~np.eye(len(matrix), dtype=bool)
    values = matrix[mask]
    return float(np.nanmean(values)) if values.size else float("nan")


def analyze_run(run_dir, images, models=None, out_dir=None, max_images=512, batch_size=64):
    """Writes CKA heatmaps for a pipeline run and returns a Markdown section for its report.

    - `models`: `{label: keras.Model or path}`; by default `find_run_models(run_dir)` (every
      student and teacher saved in the run, labelled by file stem). DeiTs are students,
      everything else a teacher.
    - `images`: test images (raw pixels in [0, 255], or a `Split`); the first `max_images` are used.
    - Writes into `out_dir` (default `run_dir/cka`): `<label>.png` (every layer against every
      layer of one model, as the paper's Figures 1-2), `<student>_vs_<teacher>.png` for each
      student and teacher, and `cka.json` with every matrix and its layer names.

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

    record = {"images": int(len(images)), "batch_size": int(batch_size), "within": {}, "cross": {}}
    pairs = [(label, label) for label in loaded] + [(s, t) for s in students for t in teachers]
    matrices, names = minibatch_cka_matrices(loaded, images, pairs, batch_size=batch_size)
    within_rows, cross_rows, pictures = [], [], []
    for label in loaded:
        matrix, layers = matrices[(label, label)], names[label]
        png = plot_cka_heatmap(matrix, out_dir / f"{label}.png", title=f"{label}: layer vs layer",
                               xlabels=layers, ylabels=layers)
        record["within"][label] = {"layers": layers, "matrix": matrix.tolist()}
        kind = "student" if label in students else "teacher"
        within_rows.append(f"| {label} | {kind} | {len(layers)} | {_mean_off_diagonal(matrix):.3f} |")
        pictures.append(f"![{label}]({link(png)})")
    for student in students:
        for teacher in teachers:
            matrix, rows, cols = matrices[(student, teacher)], names[student], names[teacher]
            key = f"{student}_vs_{teacher}"
            png = plot_cka_heatmap(matrix, out_dir / f"{key}.png", title=f"{student} (rows) vs {teacher}",
                                   xlabels=cols, ylabels=rows)
            record["cross"][key] = {"rows": rows, "columns": cols, "matrix": matrix.tolist()}
            cross_rows.append(
                f"| {student} | {teacher} | {float(np.nanmean(matrix)):.3f} | {float(np.nanmax(matrix)):.3f} |"
            )
            pictures.append(f"![{key}]({link(png)})")
    write_json_atomic(out_dir / "cka.json", record, indent=1)

    lines = [
        "## Representation similarity (linear CKA)",
        "",
        f"Minibatch linear CKA (Nguyen et al., 2021; paper eq. 2) on {len(images)} test images, "
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
    lines += ["", *pictures, ""]
    return "\n".join(lines)
