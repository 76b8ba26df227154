"""What a logged value is worth: a number, a value left out, or a value changed, and why.

Every value the import leaves out or changes is counted by column and reason in
``ImportReport.bad_values`` (``count``); the reasons are the constants below. ``judge`` reads a
logged value, ``impossible`` applies the store's rules for values that cannot be right (a negative
entropy, a share outside [0, 1]), ``step_of`` reads a step, and ``check_series_kept`` refuses an
import that would lose the entropy or an evaluation series to parsing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .columns import Target
from .failure import ImportFailure

INT64_MAX = (1 << 63) - 1

#: why a logged value is left out or changed (the reasons of ``ImportReport.bad_values``)
NONFINITE = "not a number or infinite (left out)"
BOOLEAN = "true/false, not a number (left out)"
NOT_NUMERIC = "not numeric (left out)"
TOO_LARGE = "beyond the float64 range (left out)"
ROUNDED = "an integer beyond 2^53, rounded to the nearest float64"


def number(v: Any) -> float | None:
    """The float of a logged value, or ``None`` (see ``judge`` for why)."""
    return judge(v)[0]


def judge(v: Any) -> tuple[float | None, str | None]:
    """``(value, reason)``: a float and no reason; ``None`` and why it is left out; or a float and
    how it was changed on the way (an int too large for float64 to hold exactly)."""
    if v is None:
        return None, None
    if isinstance(v, bool):  # JSON true/false: a flag, not the number 1 or 0
        return None, BOOLEAN
    if isinstance(v, int):
        try:
            f = float(v)
        except OverflowError:
            return None, TOO_LARGE
        return f, (ROUNDED if f != v else None)
    if isinstance(v, float):
        return (v, None) if math.isfinite(v) else (None, NONFINITE)
    return None, (NONFINITE if _nonfinite(v) else NOT_NUMERIC)


def check_series_kept(path: Path, rows: list[dict], targets: dict[str, Target]) -> None:
    """Refuse an import that would lose the entropy series, or an evaluation series, to parsing: more
    than half of a column's logged values (at least two) are number-like text that did not parse
    (a wrapper entrodiag does not know, e.g. ``jnp.float32(0.5)``); the message names the column
    and shows a value. Single values cut short (a line truncated mid-number) are only counted."""
    for n, t in targets.items():
        if not (t.kind == "eval" or (t.kind == "step" and t.name == "entropy_mean")):
            continue
        values = [r[n] for r in rows if r.get(n) is not None]
        texts = [v for v in values if isinstance(v, str) and len(v) <= 80 and re.search(r"\d", v)
                 and judge(v)[1] == NOT_NUMERIC]
        logged = len(values)
        if len(texts) >= 2 and len(texts) * 2 > logged:
            what = "entropy" if t.kind == "step" else f"evaluation {t.name}"
            raise ImportFailure(
                f"{path}: the {what} series would be lost: {len(texts)} of {logged} values of {n!r} are not "
                f"numbers entrodiag can read (e.g. {texts[0]!r}); convert them, or leave the column out with "
                f"--map {n}=skip"
            )


def impossible(column: str, v: float) -> str | None:
    """Why ``v`` cannot be a value of the step column ``column`` (the rules by which the reader reads
    such a value as missing, ``store.values``), so that the import leaves it out and counts it."""
    from ..store.values import COUNTS, LOGPROBS, NATS, SHARES, TOLERANCE

    if column in NATS and v < -TOLERANCE:
        return "negative entropy"
    if column in LOGPROBS and v > TOLERANCE:
        return "positive log-probability"
    if column in SHARES and not 0 <= v <= 1:
        return "a share outside [0, 1]"
    if column in COUNTS and v < 0:
        return "a negative count"
    return None


def step_of(v: Any) -> tuple[int | None, str | None]:
    """``(step, None)``, or ``(None, why the row is left out)``."""
    if isinstance(v, bool):
        return None, "true/false"
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        v = int(v)
    if not isinstance(v, int) or v < 0:
        return None, "not a whole number >= 0"
    if v > INT64_MAX:
        return None, "beyond the int64 range"
    return v, None



def _nonfinite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, str):
        return v.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
    return False


def count(bad: dict[str, int], what: str, n: int = 1) -> None:
    """Add ``n`` to the tally ``bad`` of what was left out or changed, under the reason ``what``."""
    bad[what] = bad.get(what, 0) + n
