"""The few statistics the analysis needs, on numpy and ``scipy.special``.

``import scipy.stats`` costs about 1.4 s on a 2-core machine (a third of `entrodiag analyze` on a
10^7-row run); ``scipy.special`` about 0.1-0.3 s, imported at the first call that needs it
(``_special``): ``entrodiag analyze`` reads a run's token rows while it imports. The formulas are
the textbook ones that ``scipy.stats`` implements (tests check them against it).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def _special() -> ModuleType:
    """``scipy.special``, imported at the first call."""
    from scipy import special

    return special


def linregress(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ordinary least squares ``y ≈ intercept + slope·x``: ``(slope, intercept)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    slope = float((dx * (y - ym)).sum() / (dx * dx).sum())
    return slope, float(ym - slope * xm)


def t_ppf(q: float, df: float) -> float:
    """Quantile ``q`` of Student's t with ``df`` degrees of freedom."""
    return float(_special().stdtrit(df, q))


def _t_two_sided(t: float, df: float) -> float:
    return float(2.0 * _special().stdtr(df, -abs(t)))


def pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson r and its two-sided p-value (t-test with n − 2 degrees of freedom)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    r = float(np.clip((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()), -1.0, 1.0))
    n = len(x)
    if n < 3:
        return r, float("nan")
    if abs(r) == 1.0:
        return r, 0.0
    return r, _t_two_sided(r * np.sqrt((n - 2) / (1.0 - r * r)), n - 2)


def rank(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank (``scipy.stats.rankdata``'s default)."""
    a = np.asarray(a)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    new = np.concatenate([[True], sorted_a[1:] != sorted_a[:-1]])
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.concatenate([starts[1:], [len(a)]])
    avg = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    out = np.empty(len(a))
    out[order] = avg[group]
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: Pearson r of the ranks."""
    return pearson(rank(x), rank(y))[0]


def binom_p_greater(k: int, n: int, p: float) -> float:
    """One-sided binomial test: P(X ≥ k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    return float(_special().bdtrc(k - 1, n, p))


def ttest_1samp_p(x: np.ndarray) -> float:
    """Two-sided p-value of a one-sample t-test of mean 0."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    sd = x.std(ddof=1)
    if n < 2 or sd == 0:
        return 0.0 if n and x.mean() != 0 else 1.0
    return _t_two_sided(x.mean() / (sd / np.sqrt(n)), n - 1)


def f_test_p(ss_tot: float, sse: float, p: int, dfd: int) -> float:
    """p-value of the F-test that a fit of ``p`` parameters (residual sum of squares ``sse``,
    ``dfd`` residual degrees of freedom) is no better than a constant (sum of squares ``ss_tot``)."""
    F = ((ss_tot - sse) / (p - 1)) / (sse / dfd) if dfd > 0 and sse > 0 else float("inf")
    if dfd > 0 and np.isfinite(F) and F > 0:
        return float(_special().fdtrc(p - 1, dfd, F))
    return 0.0 if F == float("inf") and ss_tot > 0 else 1.0


def diff_noise(R: np.ndarray) -> float:
    """One evaluation's noise from a series ``R``: the sd of its consecutive differences / √2 (0
    for fewer than three values); the trend's own changes count as noise too."""
    R = np.asarray(R)
    return float(np.std(np.diff(R), ddof=1) / np.sqrt(2.0)) if len(R) > 2 else 0.0


def resample_residuals(e: np.ndarray, n_draws: int, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    """``[n_draws, n]`` resamples of the residuals ``e`` (length n): independent draws for
    ``block`` = 1, else a moving-block bootstrap (Künsch 1989): blocks of ``block`` consecutive
    residuals from random starts, joined and cut to n, so that the correlation a trailing mean of
    ``block`` points puts into neighbouring residuals is kept."""
    n = len(e)
    block = int(min(max(block, 1), n))
    if block == 1:
        return rng.choice(e, size=(n_draws, n), replace=True)
    starts = rng.integers(0, n - block + 1, size=(n_draws, -(-n // block)))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_draws, -1)[:, :n]
    return e[idx]
