"""A JSON document that is not a ``trainer_state.json`` but holds one list of per-step metric dicts:
which list is the history, and what its step is.

A trainer of a project's own often saves its history inside a checkpoint's state, e.g.
``{"step": 10, "config": {...}, "metrics_history": [{"loss": 0.0, "mean_entropy": 0.38, ...}, ...]}``.
The rule, stated once:

1. A *candidate* is a list found under an object's key anywhere in the document (objects are
   searched, lists are not entered), of at least ``MIN_ENTRIES`` entries that are all objects, whose
   leaf values (nested objects included) are mostly numbers: more than half of them over the whole
   list, and at least one in every entry.
2. The history is the longest candidate. Of several equally long, those whose entries name a metric
   entrodiag knows as the entropy, the reward or the task score (``metric_names.classify``) are
   kept; several left, or none with such a name, are refused in one line naming them.
3. Its step (``step_key``): a step field of the entries when one is logged (the plan finds it), a
   known or step-like name whose values count steps; else the entry's position in the list.
   Positions count from 1 (a step is counted once done, as Hugging Face's ``global_step`` and
   verl's steps do) unless the document's own step (a whole
   number under a step name in the object that holds the list, e.g. ``"step": 9`` beside 10 entries)
   says the last entry is step ``len - 1``: then from 0. The import's notes say which.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .columns import STEP_KEYS, classify
from .failure import ImportFailure, listing, shown
from .step_key import not_a_count, step_like
from .values import number, step_of

#: fewest entries in a list of per-step dicts that can be a history
MIN_ENTRIES = 2

#: step columns that mark a list as the run's metrics (rule 2's tie-break)
_RUN_METRICS = frozenset({"entropy_mean", "reward_mean", "score_mean"})


def _leaves(obj: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """``(name, value)`` of every leaf of ``obj``, nested objects' names joined with ``/``."""
    out: list[tuple[str, Any]] = []
    for k, v in obj.items():
        if isinstance(v, dict):
            out += _leaves(v, f"{prefix}{k}/")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _is_candidate(items: list) -> bool:
    """Rule 1 for one list."""
    if len(items) < MIN_ENTRIES or not all(isinstance(e, dict) for e in items):
        return False
    numeric = total = 0
    for entry in items:
        leaves = _leaves(entry)
        k = sum(number(v) is not None for _, v in leaves)
        if k == 0:
            return False
        numeric, total = numeric + k, total + len(leaves)
    return numeric * 2 > total


def candidates(obj: dict, prefix: str = "") -> dict[str, tuple[dict, list]]:
    """``{key path: (the object holding it, the list)}`` of every candidate under ``obj`` (rule 1),
    paths joined with ``/``; may raise ``RecursionError`` on a document nested too deeply."""
    found: dict[str, tuple[dict, list]] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            found.update(candidates(v, f"{prefix}{k}/"))
        elif isinstance(v, list) and _is_candidate(v):
            found[f"{prefix}{k}"] = (obj, v)
    return found


class History(NamedTuple):
    """The history ``find_history`` found: its key path, its entries, the object holding it (whose
    step, if any, rule 3 reads) and the other candidates' key paths."""

    key: str
    entries: list[dict]
    holder: dict
    others: list[str]


def _names_run_metric(items: list[dict]) -> bool:
    return any(classify(name).name in _RUN_METRICS for entry in items for name, _ in _leaves(entry))


def find_history(doc: dict, path: str) -> History:
    """The document's history by rules 1-2 of the module docstring; ``ImportFailure`` (naming the
    lists) when there is none or no single one."""
    try:
        found = candidates(doc)
    except RecursionError:
        raise ImportFailure(f"{path}: JSON nested too deeply to read") from None
    if not found:
        lists = [k for k, v in doc.items() if isinstance(v, list)]
        raise ImportFailure(
            f"{path}: neither a trainer_state.json ('log_history') nor a JSON document holding a list of "
            f"per-step metric objects (at least {MIN_ENTRIES}, mostly numbers)"
            + (f"; its top-level lists: {listing(lists, 10)}" if lists else "")
            + "; save the history as JSON lines (one object per step) and import that")
    longest = max(len(v) for _, v in found.values())
    tied = {k: hv for k, hv in found.items() if len(hv[1]) == longest}
    if len(tied) > 1:
        named = {k: hv for k, hv in tied.items() if _names_run_metric(hv[1])}
        tied = named if len(named) == 1 else tied
    if len(tied) > 1 or not tied:
        raise ImportFailure(
            f"{path}: several lists of {longest} per-step metric objects ({listing(sorted(tied), 10)}) and "
            "none alone names the entropy or the reward; write the one to import to a file of its own (a "
            "JSON list) and import that")
    key = next(iter(tied))
    holder, entries = tied[key]
    return History(key, entries, holder, sorted(k for k in found if k != key))


def step_fields(rows: list[dict]) -> dict[str, str | None]:
    """The known step names and step-like names (``step_key``) of the entries' flattened ``rows``,
    each with why its values do not count steps (``step_key.not_a_count``), ``None`` for one that
    does: only such a one is a step field (a duration ``time/step``, or a per-epoch ``iter`` that
    restarts, is not, and the position is the step)."""
    names = dict.fromkeys(k for row in rows for k in row if k in STEP_KEYS or step_like(k))
    return {name: not_a_count(name, rows) for name in names}


def position_start(holder: dict, n: int) -> tuple[int, str]:
    """``(step of the first entry, why)`` for a history of ``n`` entries without a step field, held
    by the object ``holder`` (rule 3 of the module docstring)."""
    own = {k: step_of(v)[0] for k, v in holder.items() if (k in STEP_KEYS or step_like(k))
           and not isinstance(v, (dict, list)) and step_of(v)[0] is not None}
    for k, s in own.items():
        if s == n - 1:
            return 0, f"the document's {shown(k)!r} is {s}, the last entry's step"
    for k, s in own.items():
        if s == n:
            return 1, f"the document's {shown(k)!r} is {s}, the last entry's step"
    if own:
        k, s = next(iter(own.items()))
        return 1, f"counted from 1; the document's {shown(k)!r} ({s}) is not the list's length ({n})"
    return 1, "counted from 1 (a step is counted once done); the document gives no step to check it by"
