"""Analysis results as JSON-ready Python values: numpy scalars and arrays to Python, NaN and inf to
``None`` (JSON has no NaN)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def finite(x: Any) -> float | None:
    """``float(x)`` or ``None`` when missing or not finite (JSON has no NaN)."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def clean(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python values and NaN/inf into ``None``."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite(obj)
    return obj
