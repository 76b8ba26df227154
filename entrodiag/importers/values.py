"""What a logged value is worth: a number, a value left out, or a value changed, and why.

Every value the import leaves out or changes is counted by column and reason in
``ImportReport.bad_values`` (``count``); the reasons are the constants below. ``judge`` reads a
logged value, ``impossible`` applies the store's rules for values that cannot be right (a negative
entropy, a share outside [0, 1]), ``step_of`` reads a step, ``series_lost`` counts by key what
parsing lost (text that is not a number, lines a logger cut short), and ``check_series_kept``
refuses an import that would lose the entropy, or the series R would come from, to parsing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..metric_names import is_lost
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


def series_lost(rows: list[dict], targets: dict[str, Target], cut: dict | None = None) -> dict[str, dict]:
    """``{logged name: {"name", "lost", "of", "why"}}`` for every series that lost values to parsing:
    number-like text that did not read as a number (a wrapper entrodiag does not know, e.g.
    ``jnp.float32(0.5)``), and values on lines a logger cut short (``cut``: ``console.cut_lines``).
    ``of`` counts the values read plus those lost; ``name`` is the series' step column or evaluation."""
    cut_lost = (cut or {}).get("lost") or {}
    why_cut = f"lines cut at {cut['cap']} characters" if cut else ""
    out: dict[str, dict] = {}
    from ..metric_names import classify

    # a key that only ever came after a cut was never read: classified here, to say what it lost
    targets = {**targets, **{n: classify(n) for n in cut_lost if n not in targets}}
    for n, t in targets.items():
        if t.kind not in ("step", "eval"):
            continue
        values = [r[n] for r in rows if r.get(n) is not None]
        texts = sum(1 for v in values if isinstance(v, str) and len(v) <= 80 and re.search(r"\d", v)
                    and judge(v)[1] == NOT_NUMERIC)
        read = sum(1 for v in values if judge(v)[0] is not None)
        on_cut = int(cut_lost.get(n, 0))
        if texts + on_cut:
            why = " and ".join(w for w, k in (("text that is not a number", texts), (why_cut, on_cut)) if k)
            out[n] = {"name": t.name, "lost": texts + on_cut, "of": read + texts + on_cut, "why": why}
    return out


def check_series_kept(path: Path, rows: list[dict], targets: dict[str, Target], lost: dict[str, dict]) -> None:
    """Refuse an import that would lose to parsing (``is_lost``) the entropy series or the series R
    would come from: every validation series that is a mean score (``metric_names.is_mean_score``,
    a performance), or, in a run with none, its task score (else its reward). Any other series
    that loses values (a ``best@k`` or ``std`` statistic, a timing) is imported, and the loss is
    said by key (``series_lost``); a validation mean score lost beside another that is kept is not
    taken as R (``analysis.metric``). The message names the column and shows a value."""
    from ..metric_names import is_mean_score, is_performance

    def refuse(n: str, what: str) -> None:
        e = lost[n]
        texts = [v for r in rows if isinstance(v := r.get(n), str) and judge(v)[1] == NOT_NUMERIC]
        shown = f" (e.g. {texts[0]!r})" if texts else ""
        raise ImportFailure(
            f"{path}: the {what} series would be lost: {e['lost']} of {e['of']} values of {n!r} are lost to "
            f"parsing ({e['why']}){shown}; convert them, or leave the column out with --map {n}=skip"
        )

    for n, t in targets.items():
        if t.kind == "step" and t.name == "entropy_mean" and n in lost and is_lost(lost[n]):
            refuse(n, "entropy")
    scores = [n for n, t in targets.items() if t.kind == "eval" and is_performance(t.name) and is_mean_score(t.name)]
    if scores:
        if all(n in lost and is_lost(lost[n]) for n in scores):
            refuse(scores[0], f"evaluation {targets[scores[0]].name}" + (
                f" (and every other validation mean score: {', '.join(scores[1:])})" if scores[1:] else ""))
        return
    for column in ("score_mean", "reward_mean"):
        named = [n for n, t in targets.items() if t.kind == "step" and t.name == column]
        if named:
            if named[0] in lost and is_lost(lost[named[0]]):
                refuse(named[0], "task score" if column == "score_mean" else "reward")
            return


def lost_summary(lost: dict[str, dict], cut: dict | None, first: tuple[str, ...] = ()) -> list[str]:
    """The import's notes on what parsing lost, by key: one line for the cut lines (how many, at
    which length, the steps) with the keys they lost (``first`` first, then by loss), one for
    number-like text that did not read."""
    notes = []
    def order(item):  # the guarded series first, then by the share of values lost
        n, e = item
        return (n not in first, -e["lost"] / max(e["of"], 1), -e["lost"], n)

    if cut:
        keys = sorted(((n, e) for n, e in lost.items() if "cut" in e["why"]), key=order)
        steps = cut["steps"]
        where = ", ".join(map(str, steps[:6])) + (f", … ({len(steps)} in all)" if len(steps) > 6 else "")
        listed = ", ".join(f"{n} lost {e['lost']} of {e['of']} values" for n, e in keys[:8])
        more = f", and {len(keys) - 8} more keys (run.json: imported.lost)" if len(keys) > 8 else ""
        notes.append(f"{cut['lines']} lines cut at {cut['cap']} characters (a logger's cap on line length, "
                     f"e.g. W&B's output.log; steps {where}): {listed or 'the value cut short'}{more}")
    texts = sorted(((n, e) for n, e in lost.items() if "not a number" in e["why"]), key=order)
    if texts:
        notes.append("number-like text that is not a number: " + ", ".join(
            f"{n} lost {e['lost'] - int(((cut or {}).get('lost') or {}).get(n, 0))} of {e['of']} values"
            for n, e in texts[:8]) + (f", and {len(texts) - 8} more keys" if len(texts) > 8 else ""))
    return notes


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
