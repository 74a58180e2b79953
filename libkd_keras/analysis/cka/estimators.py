"""Linear CKA estimators (paper eq. 2), on NumPy arrays only.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) * HSIC(L, L))

with linear kernels `K = X X^T`, `L = Y Y^T` over the same `n` examples:

- `linear_cka(x, y)` / `cka_matrix(reps_a, reps_b)`: the whole sample at once (biased HSIC by
  default, as Kornblith et al., 2019; `unbiased=True` gives Song et al.'s unbiased HSIC);
- `MinibatchCKA`: Nguyen et al. (2021), unbiased HSIC averaged over minibatches, so
  activations never need to fit in memory at once.

Example:
>>> x = np.random.default_rng(0).normal(size=(100, 8))
>>> round(linear_cka(x, 3.0 * x), 6)
1.0
"""

import numpy as np

# The smallest minibatch the unbiased HSIC estimator is defined for (it divides by n - 3).
MIN_UNBIASED_BATCH = 4


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
    return (trace + np.outer(sums_a, sums_b) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (rows_a @ rows_b.T)) / (
        n * (n - 3)
    )


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
    arrays_b = (
        arrays_a if reps_b is None else [_as_matrix(r[1] if isinstance(r, tuple) else r, "reps_b") for r in reps_b]
    )
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
