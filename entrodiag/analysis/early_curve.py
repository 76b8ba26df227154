"""The curve of an early-prediction fit (``law.EarlyPrediction``), for the figures that draw it.

An early fit is the entropy law R̂(H) = b − a·e^H (Cui et al. 2025, Eq. 6) fitted to the first part
of the evaluations; :func:`early_curve` evaluates it with ``law.law_value``, as ``LawFit.predict``
evaluates the full fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .law import EarlyPrediction, law_value


def early_curve(early: EarlyPrediction, H: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """The early fit's predicted performance b − a·e^H at the entropies ``H``.

    Raises ``ValueError`` for a row without a fit (``early.a is None``: too few points, no
    entropy change in the prefix; ``early.reason`` says which).

    Example:
        >>> row = EarlyPrediction(frac=0.3, n_fit=5, n_test=10, a=0.3, b=0.9)
        >>> [round(float(r), 3) for r in early_curve(row, [0.0, 1.0])]
        [0.6, 0.085]
    """
    if early.a is None or early.b is None:
        raise ValueError(f"the early fit on the first {early.frac:.0%} has no law: {early.reason}")
    return np.asarray(law_value(early.a, early.b, H))
