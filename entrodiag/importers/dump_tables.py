"""Per-sample and per-token dumps of other frameworks, as the run's ``samples`` and ``tokens`` tables.

The framework readers (``verl_rollouts``, ``tinker_rollouts``, ``areal``, ``nemo_rl``, ``slime``)
turn their dumps into plain records, one per response (``sample``) or per response token
(``token``), named as the run-directory schema names the columns (``SAMPLE_COLUMNS``,
``TOKEN_COLUMNS``); this module makes the tables of them and the step rows they imply:
``reward_mean`` and ``reward_std`` (mean and population std over the step's responses),
``resp_len_mean``, ``n_responses`` and ``n_groups``, as docs/definitions.md defines them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .failure import ImportFailure

#: the samples table's columns (the store's ``SAMPLE_COLUMNS``, in order)
SAMPLE_FIELDS = ("step", "rank", "sample_id", "group_id", "prompt_id", "prompt", "response", "reward",
                 "advantage", "length", "entropy_mean")
#: the token columns a framework dump can fill (the rest of ``TOKEN_COLUMNS`` stay empty)
TOKEN_FIELDS = ("step", "rank", "sample_id", "group_id", "pos", "token_id", "entropy", "logprob", "advantage")


def json_objects(path: Path, cut_last_ok: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of a JSON-lines file; a line that is not JSON
    or not an object is a one-line ``ImportFailure``, except, with ``cut_last_ok``, a last line cut
    short by a running writer (after at least one good line), which is left out."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    out: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            if cut_last_ok and lineno == len(lines) and out:
                break
            raise ImportFailure(f"{path}:{lineno}: not JSON") from None
        if not isinstance(obj, dict):
            raise ImportFailure(f"{path}:{lineno}: expected a JSON object per line")
        out.append((lineno, obj))
    return out


def table(records: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, list]:
    """Columns of ``records`` (``rank`` 0 where a record has none; absent fields ``None``)."""
    out: dict[str, list] = {f: [] for f in fields}
    for r in records:
        for f in fields:
            out[f].append(r.get(f, 0 if f == "rank" else None))
    return {f: v for f, v in out.items() if f in ("step", "rank") or any(x is not None for x in v)}


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def steps_from_samples(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One step row per step of ``samples``: ``reward_mean``, ``reward_std``, ``resp_len_mean``,
    ``n_responses`` and ``n_groups`` (when the samples name their group)."""
    by_step: dict[int, list[dict]] = {}
    for s in samples:
        by_step.setdefault(s["step"], []).append(s)
    rows = []
    for step in sorted(by_step):
        group = by_step[step]
        row: dict[str, Any] = {"step": step, "n_responses": len(group)}
        rewards = [r for r in (_finite(s.get("reward")) for s in group) if r is not None]
        if rewards:
            mean = sum(rewards) / len(rewards)
            row["reward_mean"] = mean
            row["reward_std"] = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
        lengths = [n for n in (_finite(s.get("length")) for s in group) if n is not None]
        if lengths:
            row["resp_len_mean"] = sum(lengths) / len(lengths)
        groups = {s.get("group_id") for s in group}
        if None not in groups:
            row["n_groups"] = len(groups)
        rows.append(row)
    return rows


def merge_rows(logged: list[dict[str, Any]], derived: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """``logged`` step rows with the ``derived`` rows' ``fields`` added (counts the log does not
    hold, such as ``n_responses``; never a column the log names another way, which would clash)."""
    out = [dict(r) for r in logged]
    index = {r.get("step"): i for i, r in enumerate(out)}
    for d in derived:
        extra = {k: d[k] for k in fields if k in d}
        if d["step"] in index:
            for k, v in extra.items():
                out[index[d["step"]]].setdefault(k, v)
        elif extra:
            out.append({"step": d["step"], **extra})
    return out
