"""Readers for console output: verl's ``step:N - key:value`` lines and the dicts that
transformers/TRL print at each logging step.

Both read a captured terminal (``python train.py | tee run.log``, Ray's driver log, a notebook
dump) and ignore everything that is not a metric line: config dumps, warnings, sample
generations, progress bars. Pure Python (``re``, ``ast``).

- **verl console** (``trainer.logger=['console']``): one line per step,
  ``step:N - key:value - key:value ...``, optionally behind Ray's ``(main_task pid=...)`` prefix
  and ANSI colour codes. Validation values are appended to some step lines (or logged on a line of
  their own with the same step); the ``Initial validation metrics: {...}`` dict that verl prints
  before training is the validation at step 0.
- **transformers/TRL console**: one printed Python dict per logging step (single quotes, no step
  key), e.g. ``{'loss': 0.07, 'entropy': 0.95, ..., 'epoch': 0.0}``, between tqdm bars. The step is
  the progress counter (``| 10/29790 [``) last printed before the dict; ``log_every`` replaces it
  with ``log_every · k`` for the k-th dict (1-based), for logs captured without the bar.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RAY_PREFIX = re.compile(r"^\s*\((?:[\w.-]+) pid=\d+(?:, ip=[\d.]+)?\)\s*")
VERL_STEP = re.compile(r"^step:(\d+)\s+-\s+(.*)$")
VERL_INITIAL = re.compile(r"Initial validation metrics:\s*(\{.*\})")
TQDM_COUNTER = re.compile(r"\|\s*(\d+)/(\d+)\s*\[")
#: a printed metrics dict: starts with a quoted key and a numeric value (how a log is recognised)
PRINTED_DICT = re.compile(r"\{'[^'\n]+':\s*[-+0-9.naif]")
#: a printed dict read as metrics when it holds a number: its first value may also be text, a
#: boolean or None (not a nested dict: a config dump)
FLAT_DICT = re.compile(r"\{'[^'\n]+':\s*(?:[-+0-9.naif]|True|False|None|')")
_PAIR = re.compile(r"'([^'\n]+)':\s*('[^'\n]*'|[^,}]+)")


def clean_line(line: str) -> str:
    """A console line without ANSI codes and without Ray's ``(name pid=N)`` prefix."""
    return RAY_PREFIX.sub("", ANSI.sub("", line)).strip()


def looks_like_verl_console(text: str) -> bool:
    """Whether ``text`` (the start of a file) holds verl ``step:N - key:value`` lines."""
    return any(VERL_STEP.match(clean_line(line)) and ":" in VERL_STEP.match(clean_line(line)).group(2)
               for line in text.splitlines())


def looks_like_printed_dicts(text: str) -> bool:
    """Whether ``text`` holds printed transformers/TRL metric dicts (``{'loss': ...}``)."""
    return sum(1 for _ in PRINTED_DICT.finditer(text)) >= 1


def _value(text: str) -> Any:
    text = text.strip()
    if text.startswith("'"):
        return text.strip("'")
    try:
        return float(text)  # also nan, inf
    except ValueError:
        return text


def parse_printed_dict(text: str) -> dict[str, Any]:
    """``{key: value}`` of a printed dict; tolerates ``nan``/``inf`` (which ``ast`` rejects)."""
    try:
        obj = ast.literal_eval(text)
        if isinstance(obj, dict):
            return {str(k): v for k, v in obj.items()}
    except (ValueError, SyntaxError):
        pass
    return {k: _value(v) for k, v in _PAIR.findall(text)}


def read_verl_console(path: Path) -> tuple[list[dict], dict]:
    """Rows ``{"step": N, key: value, ...}`` of a verl console log (see the module docstring)."""
    rows: list[dict] = []
    initial: dict[str, Any] | None = None
    n_lines = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = clean_line(raw)
            m = VERL_STEP.match(line)
            if m:
                row: dict[str, Any] = {"step": int(m.group(1))}
                for item in m.group(2).split(" - "):
                    key, sep, value = item.strip().rpartition(":")
                    if sep and key:
                        row[key.strip()] = _value(value)
                rows.append(row)
                n_lines += 1
                continue
            if initial is None:
                mi = VERL_INITIAL.search(line)
                if mi:
                    initial = parse_printed_dict(mi.group(1))
    notes = []
    logged = {k for r in rows for k in r}
    # verl printed validation values without the val/ prefix its other step lines use on some lines
    # (gemma's "step:0 - test_score/...") and in the initial dict: one name for one metric
    rows = [{(f"val/{k}" if f"val/{k}" in logged else k): v for k, v in r.items()} for r in rows]
    if initial:
        first = rows[0]["step"] if rows else 0
        initial = {(f"val/{k}" if f"val/{k}" in logged else k): v for k, v in initial.items()}
        present = {k for r in rows if r["step"] == first for k in r}
        extra = {k: v for k, v in initial.items() if k not in present}
        if extra:
            rows.insert(0, {"step": first, **extra})
            notes.append(f"'Initial validation metrics' (before training) taken as step {first}")
    config = _verl_config(path)
    return rows, {"config": config, "notes": notes, "metric_lines": n_lines}


_CONFIG_KEYS = {"temperature": re.compile(r"'temperature':\s*([0-9.]+)"),
                "entropy_coeff": re.compile(r"'entropy_coeff':\s*([0-9.eE+-]+)"),
                "total_epochs": re.compile(r"'total_epochs':\s*(\d+)"),
                "adv_estimator": re.compile(r"'adv_estimator':\s*'(\w+)'")}


def _verl_config(path: Path, limit: int = 200_000) -> dict:
    """A few settings from the config dump verl prints first (temperature, entropy_coeff, ...)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        head = ANSI.sub("", f.read(limit))
    out: dict[str, Any] = {}
    for key, rx in _CONFIG_KEYS.items():
        m = rx.search(head)
        if m:
            out[key] = _value(m.group(1)) if not m.group(1).isdigit() else int(m.group(1))
    return out


def read_printed_dicts(path: Path, log_every: int | None = None) -> tuple[list[dict], dict]:
    """Rows of the metric dicts printed by transformers/TRL (see the module docstring).

    Raises ``ValueError`` when a dict has no progress counter before it and ``log_every`` is not
    given (the message says to pass ``--log-every``).
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    text = ANSI.sub("", text)
    rows: list[dict] = []
    last_counter: int | None = None
    pos = 0
    counters = [(m.start(), int(m.group(1))) for m in TQDM_COUNTER.finditer(text)]
    ci = 0
    bad: dict[str, int] = {}
    for m in FLAT_DICT.finditer(text):
        start = m.start()
        end = text.find("}", start)
        if end < 0:
            break
        if start < pos:
            continue
        pos = end + 1
        while ci < len(counters) and counters[ci][0] < start:
            last_counter = counters[ci][1]
            ci += 1
        d = parse_printed_dict(text[start:end + 1])
        if not any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values()):
            for key in d:  # not a metrics dict (a printed config?): its values left out, counted
                what = f"{key}: in a printed dict with no number (left out)"
                bad[what] = bad.get(what, 0) + 1
            continue
        if any(k in d for k in ("train_runtime", "train_samples_per_second")) and "loss" not in d:
            continue  # the end-of-training summary
        k = len(rows) + 1
        if log_every:
            step = log_every * k
        elif last_counter is not None:
            step = last_counter
        else:
            raise ValueError(
                f"{path}: printed metric dict {k} has no progress counter before it, so its step is "
                "unknown; pass --log-every N (the trainer's logging_steps)"
            )
        rows.append({"step": step, **{key: v for key, v in d.items() if key != "step"}})
    how = (f"step = {log_every} x the dict's index (--log-every {log_every})" if log_every
           else "step = the progress-bar counter printed before each dict")
    steps = [r["step"] for r in rows]
    notes = [f"{len(rows)} printed metric dicts; {how}"]
    if not log_every and len(set(steps)) < len(steps):
        notes.append("some dicts share a progress counter (later value kept); --log-every N numbers them instead")
    return rows, {"notes": notes, "step_rule": how, "bad_values": bad}
