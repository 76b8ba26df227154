"""Jupyter notebooks (``.ipynb``): the metrics printed in a cell's outputs, read by the console
readers (``console``): transformers/TRL's printed dicts or verl's ``step:N - key:value`` lines.
Pure Python (``json``)."""

from __future__ import annotations

import json
from pathlib import Path

from .console import looks_like_printed_dicts, looks_like_verl_console, read_printed_dicts, read_verl_console


def notebook_cells(path: Path) -> list[str]:
    """The printed output (stdout/stderr streams, plain-text results) of each code cell of a Jupyter
    notebook; raises ``ValueError`` when the file is no notebook."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable Jupyter notebook ({e})") from None
    out = []
    for cell in cells if isinstance(cells, list) else []:
        parts = []
        for o in cell.get("outputs", []) if isinstance(cell, dict) else []:
            t = o.get("text") if isinstance(o, dict) else None
            if t is None and isinstance(o, dict) and isinstance(o.get("data"), dict):
                t = o["data"].get("text/plain")
            if isinstance(t, list):
                t = "".join(x for x in t if isinstance(x, str))
            if isinstance(t, str):
                parts.append(t)
        out.append("".join(parts))
    return out


def read_notebook(path: Path, log_every: int | None = None) -> tuple[list[dict], dict]:
    """Rows of the metrics printed in a Jupyter notebook's cell outputs: verl ``step:N - ...`` lines
    (``read_verl_console``; verl's own getting-started notebook keeps its training cell's console)
    or transformers/TRL dicts (``read_printed_dicts``), whichever the cell holds.

    A notebook often trains twice (SFT, then RL): each cell is read on its own, and the run is the
    last cell whose metrics log a reward (an RL run), else the last cell with metrics; the notes
    name the cell and the others.
    """
    found, errors = [], []
    for i, text in enumerate(notebook_cells(path)):
        verl = looks_like_verl_console(text)
        if not verl and not looks_like_printed_dicts(text):
            continue
        try:
            rows, meta = read_verl_console(path, text=text) if verl else read_printed_dicts(path, log_every, text=text)
        except ValueError as e:
            errors.append(f"cell {i}: {e}")
            continue
        if rows:
            found.append((i, rows, meta))
    if not found and errors:
        raise ValueError(errors[-1])
    if not found:
        raise ValueError(f"{path}: no cell of this notebook printed metrics (dicts {{'loss': ...}} or verl "
                         "'step:N - key:value' lines)")
    rl = [f for f in found if any(k == "reward" or k.startswith(("rewards/", "critic/")) for r in f[1] for k in r)]
    i, rows, meta = (rl or found)[-1]
    others = [str(j) for j, _, _ in found if j != i]
    note = (f"notebook cell {i} (counted from 0): its printed metrics"
            + (f"; cell(s) {', '.join(others)} also printed some (another run), not imported" if others else ""))
    return rows, {**meta, "notes": [note, *meta["notes"]]}
