"""Numbers the dashboard and figures draw that the fits do not return directly.

- ``law_band``: the fitted entropy law R̂(H) = b − a·e^H (Cui et al. 2025, Eq. 6) on a grid of
  entropies with a pointwise confidence band for the fitted mean, from the same pairs bootstrap
  and the same interval rule as ``fit_entropy_law``'s intervals on a, b and the ceiling (bootstrap
  standard error · sqrt(n/(n−2)) · Student-t), so that the band at H = 0 is the ceiling's interval.
"""

from __future__ import annotations

import math

import numpy as np

from . import stats
from .jsonable import clean
from .law import LawFit, bootstrap_fits


def law_band(fit: LawFit, *, lo: float | None = None, hi: float | None = None, points: int = 120,
             n_boot: int = 1000, seed: int = 0) -> dict:
    """The fitted law on ``points`` entropies from ``lo`` to ``hi`` with its ``fit.level`` band.

    Args:
        fit: a fit from ``fit_entropy_law`` (its points ``fit.H``, ``fit.R`` are resampled).
        lo, hi: the entropy range in nats (default: the fitted points' range).
        points: grid size.
        n_boot: bootstrap resamples (0: no band, ``low``/``high`` are ``None``).
        seed: seed of the bootstrap.

    Returns:
        A JSON-ready dict: ``H`` (the grid), ``R`` (b − a·e^H), ``low``, ``high`` (the band) and
        ``level``.

    Example:
        >>> import numpy as np
        >>> from entrodiag.analysis import fit_entropy_law
        >>> H = np.linspace(1.0, 0.2, 30); R = 0.9 - 0.3 * np.exp(H) + 0.01 * np.sin(7 * H)
        >>> band = law_band(fit_entropy_law((H, R)), lo=0.0, hi=1.0, points=3)
        >>> [round(r, 2) for r in band["R"]], band["low"][0] < band["R"][0] < band["high"][0]
        ([0.6, 0.41, 0.08], True)
    """
    H, R = np.asarray(fit.H, dtype=np.float64), np.asarray(fit.R, dtype=np.float64)
    lo = float(H.min()) if lo is None else float(lo)
    hi = float(H.max()) if hi is None else float(hi)
    if not hi > lo:
        raise ValueError(f"the entropy range must be increasing, got lo={lo}, hi={hi}")
    grid = np.linspace(lo, hi, int(points))
    mean = np.asarray(fit.predict(grid))
    out: dict = {"H": grid, "R": mean, "low": None, "high": None, "level": fit.level}
    n = len(H)
    if n_boot > 0 and n > 2:
        boot = bootstrap_fits(np.exp(H), R, n_boot, seed)  # (slope, intercept) draws
        if len(boot) > 1:
            draws = boot[:, 1][:, None] + boot[:, 0][:, None] * np.exp(grid)[None, :]
            se = draws.std(axis=0, ddof=1) * math.sqrt(n / (n - 2))
            t = stats.t_ppf(0.5 + fit.level / 2, n - 2)
            out["low"], out["high"] = mean - t * se, mean + t * se
    return clean(out)


__all__ = ["law_band"]
