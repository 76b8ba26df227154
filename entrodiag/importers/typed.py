"""Record-typed JSONL: one JSON object per line, a field naming the record's kind.

Custom training loops often write every record to one file and tell them apart with a field such
as ``{"type": "train" | "rollout" | "eval" | ...}`` (or ``split``, ``phase``, ``mode``). Mixing
the kinds into one series is wrong (the training-batch accuracy of a rollout record is not the
validation accuracy of an eval record), so:

- the *kind field* is the first of ``KIND_FIELDS`` whose values are short strings on (nearly)
  every record and that has an evaluation-looking value (``EVAL_KINDS``); ``eval_where``
  (``--eval-where FIELD=VALUE``) names it and the evaluation value explicitly;
- records of an evaluation kind become evaluations: each numeric field ``x`` becomes ``eval/x``
  (then ``val/x`` through the column table); timings, counts, sampling settings and values that
  are not numbers are left out, named and counted in a note;
- a record without a kind is left out and counted;
- records of other kinds become step columns under their own names; a name logged by two kinds
  is prefixed with its kind (``rollout/reward``) for every kind but the first that logged it;
- several records of one training kind for one step (several optimizer epochs on one rollout
  batch) are combined: the first record's values are kept (the pass over the policy that sampled
  the batch), and the report says how many steps had how many records.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .columns import EVAL_DIAGNOSTIC

KIND_FIELDS = ("type", "record_type", "kind", "split", "phase", "mode", "stage", "event")
EVAL_KINDS = frozenset({"eval", "evaluation", "val", "valid", "validation", "test", "dev", "eval_step"})


def find_kind_field(rows: list[dict]) -> str | None:
    """The field naming each record's kind, or ``None`` when the rows carry none."""
    if not rows:
        return None
    for name in KIND_FIELDS:
        values = [r.get(name) for r in rows]
        strings = [v for v in values if isinstance(v, str)]
        if len(strings) < 0.9 * len(rows):
            continue
        kinds = set(strings)
        if 2 <= len(kinds) <= 20 and any(k.lower() in EVAL_KINDS for k in kinds):
            return name
    return None


def split_typed(
    rows: list[dict], field: str, eval_values: set[str] | None = None, step_keys: tuple[str, ...] = ()
) -> tuple[list[dict], dict]:
    """Turn typed records into importer rows (see the module docstring).

    Args:
        rows: flattened records.
        field: the kind field.
        eval_values: the kinds that are evaluations (default: those in ``EVAL_KINDS``).
        step_keys: the candidate step fields (kept as they are).

    Returns:
        ``(rows, meta)``; ``meta["typed"]`` describes what was done (for run.json and the summary).
    """
    kinds = Counter(r.get(field) for r in rows if isinstance(r.get(field), str))
    if eval_values is None:
        eval_values = {k for k in kinds if k.lower() in EVAL_KINDS}
    missing = sorted(v for v in eval_values if v not in kinds)
    if missing:
        raise ValueError(f"--eval-where {field}={','.join(missing)}: no record has that value; "
                         f"{field} takes {', '.join(f'{k} ({n})' for k, n in kinds.items())}")
    key_set = set(step_keys)
    step_key = next((k for k in step_keys if any(k in r for r in rows)), None)
    owner: dict[str, str] = {}  # step-column name → the first kind that logged it
    for r in rows:
        kind = r.get(field)
        if not isinstance(kind, str) or kind in eval_values:
            continue
        for k in r:
            if k != field and k not in key_set:
                owner.setdefault(k, kind)
    out: list[dict] = []
    dropped: Counter = Counter()
    no_kind = 0
    seen: dict[tuple[str, Any], int] = {}
    repeats: Counter = Counter()
    for r in rows:
        kind = r.get(field)
        if not isinstance(kind, str):
            no_kind += 1
            continue
        step = r.get(step_key) if step_key else None
        row: dict[str, Any] = {k: r[k] for k in key_set if k in r}
        if kind in eval_values:
            for k, v in r.items():
                if k == field or k in key_set:
                    continue
                if EVAL_DIAGNOSTIC.match(k.removeprefix('eval_')) or isinstance(v, bool) or not isinstance(v, (int, float)):
                    dropped[k] += 1  # timings, counts, sampling settings: not a performance
                    continue
                row[f"eval/{k}"] = v
            out.append(row)
            continue
        at = (kind, step)
        if step is not None and at in seen:
            repeats[(kind, seen[at] + 1)] += 1
            seen[at] += 1
            continue  # a further epoch on the same batch: the first record's values stay
        seen[at] = 1
        for k, v in r.items():
            if k == field or k in key_set:
                continue
            row[k if owner.get(k) == kind else f"{kind}/{k}"] = v
        out.append(row)
    combined = {}
    for (kind, count), _n in sorted(repeats.items()):
        combined[kind] = max(combined.get(kind, 1), count)
    per_kind = {kind: sum(1 for (k, s), c in seen.items() if k == kind and c > 1) for kind in combined}
    notes = [f"records told apart by {field!r}: " + ", ".join(
        f"{k} ({n}{', evaluations' if k in eval_values else ''})" for k, n in kinds.items())]
    if dropped:
        notes.append("left out of the evaluations (not a performance; values per field): "
                     + ", ".join(f"{k} ({n})" for k, n in sorted(dropped.items())))
    for kind, most in combined.items():
        notes.append(f"{per_kind[kind]} steps had up to {most} {kind!r} records each (several optimizer epochs "
                     "per rollout batch): kept the first record's values, the pass over the policy that "
                     "sampled the batch")
    bad = {f"records without a {field!r} kind (left out)": no_kind} if no_kind else {}
    meta = {"kind_field": field, "kinds": dict(kinds), "eval_kinds": sorted(eval_values),
            "combined": {k: {"steps": per_kind[k], "records_per_step": combined[k]} for k in combined}}
    return out, {"typed": meta, "notes": notes, "bad_values": bad}
