"""The report's statistics, in plain Python (no SciPy): intervals, the paired tests, and the verdict they give.

- `wilson_interval(correct, n)`: the binomial 95% interval of an accuracy on `n` test images (Wilson score).
- `mcnemar(only_a, only_b)`: the exact two-sided McNemar test of two models on the same images, from the
  discordant pairs (images only A got right, images only B got right): a binomial test at 1/2.
- `t_quantile(df)` and `t_interval(values)`: the 95% Student-t interval of a mean (paired differences).
- `verdict_from_interval` / `verdict_from_test`: "holds", "does not hold" or "cannot tell at this n", from
  the interval or the test alone (never from a mean alone).
- `spearman(x, y)`: the rank correlation of two measurements over a few cases and its two-sided p (exact,
  by enumerating every ordering, up to 8 cases; the t approximation above): does one predict the other?

Example:
>>> wilson_interval(480, 1000)
(0.449..., 0.510...)
>>> round(mcnemar(109, 77), 3)
0.023
>>> verdict_from_interval((0.004, 0.021))
'holds'
"""

import itertools
import math

LEVEL = 0.95
Z = 1.959963984540054  # the standard normal's 0.975 quantile
HOLDS, DOES_NOT_HOLD, CANNOT_TELL = "holds", "does not hold", "cannot tell at this n"
VERDICTS = (HOLDS, DOES_NOT_HOLD, CANNOT_TELL)


def wilson_interval(correct, n, z=Z):
    """`(low, high)` fractions: the Wilson score interval of `correct` successes in `n` trials (None for n = 0)."""
    if not n:
        return None
    if not 0 <= correct <= n:
        raise ValueError(f"`correct` must lie in [0, n = {n}]; got {correct}.")
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy, n):
    """The Wilson interval of an accuracy (a fraction) measured on `n` images; None when either is unknown."""
    if accuracy is None or not n:
        return None
    return wilson_interval(round(accuracy * n), int(n))


def binomial_two_sided(k, n):
    """Exact two-sided p of `k` successes in `n` trials at probability 1/2: min(1, 2 P(X <= min(k, n - k)))."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar(only_a, only_b):
    """Exact two-sided McNemar p of two models on the same images.

    Args:
        only_a: int. Images model A classified correctly and model B did not.
        only_b: int. Images model B classified correctly and model A did not.
    The images both got right or both got wrong carry no information about which is better.
    """
    return binomial_two_sided(min(only_a, only_b), only_a + only_b)


def discordant(correct_a, correct_b):
    """`(only_a, only_b)`: counts of images only A / only B got right (two equal-length boolean sequences)."""
    if len(correct_a) != len(correct_b):
        raise ValueError(f"paired results need the same images; got {len(correct_a)} and {len(correct_b)}.")
    only_a = sum(1 for a, b in zip(correct_a, correct_b) if a and not b)
    only_b = sum(1 for a, b in zip(correct_a, correct_b) if b and not a)
    return only_a, only_b


def _t_two_sided_mass(t, df):
    """P(|T| < t) for Student's t with integer `df` (closed forms in the angle atan(t / sqrt(df)))."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd: (2/pi)(theta + sin cos (1 + 2/3 c2 + 2*4/(3*5) c2^2 + ...)), df - 3 in the last factor
        term, total = 1.0, 1.0
        for k in range(1, (df - 1) // 2):
            term *= (2 * k) / (2 * k + 1) * c2
            total += term
        series = s * math.cos(theta) * total if df > 1 else 0.0
        return 2 / math.pi * (theta + series)
    term, total = 1.0, 1.0  # even: sin (1 + 1/2 c2 + 1*3/(2*4) c2^2 + ...), df - 2 in the last factor
    for k in range(1, df // 2):
        term *= (2 * k - 1) / (2 * k) * c2
        total += term
    return s * total


def t_quantile(df, level=LEVEL):
    """The two-sided `level` quantile of Student's t with `df` degrees of freedom (e.g. 4.303 for df = 2)."""
    if int(df) != df or df < 1:
        raise ValueError(f"degrees of freedom must be a positive integer; got {df}.")
    df, low, high = int(df), 0.0, 1.0
    while _t_two_sided_mass(high, df) < level:
        high *= 2
    for _ in range(100):  # bisection to float precision
        middle = (low + high) / 2
        low, high = (middle, high) if _t_two_sided_mass(middle, df) < level else (low, middle)
    return (low + high) / 2


def t_interval(values, level=LEVEL):
    """`(mean, low, high)` of the mean of `values` (e.g. per-seed differences), Student t; None below two values."""
    values = [v for v in values if v is not None]
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return mean, mean - half, mean + half


def verdict_from_interval(interval):
    """A claim "difference > 0" judged by its 95% interval `(low, high)`: above 0 holds, below 0 does not."""
    if interval is None:
        return CANNOT_TELL
    low, high = interval
    if low > 0:
        return HOLDS
    if high < 0:
        return DOES_NOT_HOLD
    return CANNOT_TELL


def verdict_from_test(p, difference, alpha=1 - LEVEL):
    """A claim "difference > 0" judged by a two-sided test's `p`: significant at `alpha` in the claim's direction
    holds, in the other direction does not hold, otherwise cannot tell."""
    if p is None or difference is None or p >= alpha or difference == 0:
        return CANNOT_TELL
    return HOLDS if difference > 0 else DOES_NOT_HOLD


def _ranks(values):
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return None if not sxx or not syy else sxy / math.sqrt(sxx * syy)


EXACT_UP_TO = 8  # 8! = 40,320 orderings


def spearman(x, y):
    """`(rho, p)`: Spearman's rank correlation of paired values and its two-sided p; `(None, None)` when it is
    undefined (fewer than 3 pairs, or one side constant). p is exact up to EXACT_UP_TO pairs (the share of all
    orderings of `y` whose |rho| reaches the observed one), above by the t approximation with n - 2 df."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3:
        return None, None
    rx, ry = _ranks([a for a, _ in pairs]), _ranks([b for _, b in pairs])
    rho = _pearson(rx, ry)
    if rho is None:
        return None, None
    n = len(pairs)
    if n <= EXACT_UP_TO:
        orderings = list(itertools.permutations(ry))
        reach = sum(abs(_pearson(rx, list(o)) or 0.0) >= abs(rho) - 1e-12 for o in orderings)
        return rho, reach / len(orderings)
    if abs(rho) >= 1:
        return rho, 0.0
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return rho, 1 - _t_two_sided_mass(abs(t), n - 2)
