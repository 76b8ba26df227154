"""ROLL's console log: the ``metrics_tag: {json}`` lines of its stdout tracker.

ROLL (alibaba/ROLL) logs each step with ``StdoutTracker.log`` (``roll/utils/tracking.py``):
``logger.info(f"metrics_tag: {json.dumps({'step': step, 'metrics': values})}")``, the keys
stripped of their ``@reducer`` tags, behind the logger's own prefix (time, level, file). Every
other line (config dumps, warnings, generations) is ignored. The entropy is
``critic/entropy/mean``: the token mean (``agg_loss(..., "token-mean")`` over the response mask) of
the per-token entropy that the old policy's log-prob pass returns, before the update.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .console import ANSI
from .failure import ImportFailure
from .values import count

#: ``metrics_tag: {...}`` anywhere on a line (after the logger's prefix)
METRICS_TAG = re.compile(r"metrics_tag:\s*(\{.*\})\s*$")


def looks_like_roll(text: str) -> bool:
    """Whether ``text`` (the start of a file) holds a ROLL ``metrics_tag: {"step": ...}`` line."""
    return any((m := METRICS_TAG.search(ANSI.sub("", line))) and '"metrics"' in m.group(1)
               for line in text.splitlines())


def _flat(obj: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict):  # add_scalars groups
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_roll_console(path: Path) -> tuple[list[dict], dict]:
    """Rows of a ROLL console log: one per ``metrics_tag`` line, ``step`` as logged."""
    rows: list[dict] = []
    bad: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = METRICS_TAG.search(ANSI.sub("", line))
            if not m:
                if "metrics_tag:" in line:
                    count(bad, "metrics_tag lines cut short (left out)")
                continue
            try:
                obj = json.loads(m.group(1))
            except (ValueError, RecursionError):
                count(bad, "metrics_tag lines that are not whole JSON (left out)")
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("metrics"), dict):
                count(bad, "metrics_tag lines without a 'metrics' object (left out)")
                continue
            rows.append({**_flat(obj["metrics"]), "step": obj.get("step")})
    if not rows:
        raise ImportFailure(f"{path}: no ROLL 'metrics_tag: {{...}}' line holds metrics")
    return rows, {"bad_values": bad, "framework": "roll",
                  "notes": [f"{len(rows)} ROLL metrics_tag lines (stdout tracker)"]}
