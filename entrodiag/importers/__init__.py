"""``entrodiag import``: build a run (steps and evals) from metrics that another tool logged.

Formats (``format=`` / ``--format``; ``auto`` picks one from the path and the content):

- ``trainer_state``: a Hugging Face ``trainer_state.json`` (every TRL run leaves one in each
  checkpoint): its ``log_history``. A folder holding ``trainer_state.json`` or ``checkpoint-N``
  folders works too (the newest checkpoint is read).
- ``verl``: verl's JSONL file logger (``trainer.logger=['file']``), ``{"step": N, "data": {...}}``
  per line.
- ``jsonl``: one JSON object per line (nested objects are flattened with ``/``).
- ``csv``: a CSV (or TSV) history with a header, e.g. a W&B export (``run.history()``).
- ``tensorboard``: ``events.out.tfevents.*`` files (a file, or a folder holding them); parsed
  without TensorFlow or the tensorboard package (see ``tfevents``).
- ``verl_console``: verl's console output (``step:N - key:value - ...`` lines, with or without
  Ray's ``(main_task pid=...)`` prefix and colour codes; see ``console``).
- ``console``: the metric dicts transformers/TRL print at each logging step; the step is the
  progress counter printed before each, ``log_every``·k, or, where stdout was block-buffered into
  the file (several dicts after one counter), the logging interval read off the log times k
  (see ``console``). Numbers printed as text or inside numpy/torch/Decimal wrappers are numbers.
- ``notebook``: a Jupyter notebook (``.ipynb``) whose cell outputs hold such dicts (the last
  cell that trained with a reward is the run; see ``console.read_notebook``).

A JSONL whose records name their kind (``type``/``split``/``phase``/``mode``...: train, rollout,
eval...) is split by kind (see ``typed``): evaluation records become evaluations, the others step
columns, several training records for one step are combined (``eval_where`` overrides the
detection). run.json's ``entropy_semantics`` says what the entropy column measures (see
``semantics``), and values that cannot be right are counted in ``ImportReport.bad_values``.

Each logged column goes through ``columns.classify``: recognised names (TRL, verl incl. its
Dec-2024 names, OpenRLHF, custom loops' ``token_entropy``/``grpo_step``)
become entrodiag step columns (``entropy_mean``, ``reward_mean``, ...) or evaluations
(``val/...``), ``mapping`` (``--map column=field``) overrides or adds names, and every other
numeric column is kept as an extra step column under its own name and listed in
``ImportReport.unrecognised``. Rows logged for the same step merge (a later, different value
wins and is counted as a bad value).

The run is written through the store's ``RunWriter`` (no torch import), with
``source="import:<format>"`` in run.json and the column mapping under ``imported``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .columns import RESERVED_TARGETS, STEP_KEYS, Target, classify, normalise, parse_map
from .console import (
    looks_like_printed_dicts, looks_like_verl_console, read_notebook, read_printed_dicts, read_verl_console,
)
from .semantics import entropy_semantics, guess_framework
from .tfevents import EventFileError, find_event_files, scan_scalars
from .typed import find_kind_field, split_typed

__all__ = [
    "FORMATS", "ImportFailure", "ImportReport", "classify", "detect_format", "import_run", "listing", "parse_map",
    "read_history", "shown",
]

FORMATS = ("trainer_state", "verl", "verl_console", "console", "notebook", "jsonl", "csv", "tensorboard")

#: bytes read from the start of a text file to recognise a console log (verl prints a long config
#: dump before the first step line)
CONSOLE_HEAD = 1 << 20


#: names entrodiag writes itself: a logged column of that name is kept as ``logged/<name>``
OWN_COLUMNS = frozenset({"step", "rank", "entropy_hist", "run_id"})


class ImportFailure(ValueError):
    """The source cannot be imported; the message (one line, control characters of logged names
    escaped) says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(shown(message, 4000))


@dataclass
class ImportReport:
    """What ``import_run`` did."""

    run_dir: Path | str  # a local folder, or the URL of one on an object store
    source: Path
    format: str
    steps: int
    evals: int  # evaluation values (steps x names)
    step_column: str
    columns: dict[str, str] = field(default_factory=dict)  # logged name → step column or eval name
    unrecognised: list[str] = field(default_factory=list)  # kept as extra step columns, as named
    skipped: list[str] = field(default_factory=list)  # not numeric, or mapped to skip
    eval_names: list[str] = field(default_factory=list)
    eval_steps: int = 0  # steps with at least one evaluation
    notes: list[str] = field(default_factory=list)  # how steps and records were read (say them)
    bad_values: dict[str, int] = field(default_factory=dict)  # what was dropped or overwritten, counted
    framework: str | None = None
    entropy_semantics: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- format detection


def _newest_checkpoint_state(folder: Path) -> Path | None:
    if (folder / "trainer_state.json").is_file():
        return folder / "trainer_state.json"
    states = []
    for d in folder.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / "trainer_state.json").is_file():
            states.append((int(m.group(1)), d / "trainer_state.json"))
    return max(states)[1] if states else None


def detect_format(source: str | os.PathLike) -> tuple[str, Path]:
    """``(format, path to read)`` for ``source``; raises ``ImportFailure`` when unknown."""
    p = Path(source)
    if not p.exists():
        raise ImportFailure(f"{p}: no such file or directory")
    if p.is_dir():
        state = _newest_checkpoint_state(p)
        if state is not None:
            return "trainer_state", state
        try:
            if find_event_files(p):
                return "tensorboard", p
        except EventFileError as e:
            raise ImportFailure(str(e)) from None
        raise ImportFailure(
            f"{p} is a folder without trainer_state.json, checkpoint-*/trainer_state.json or "
            "TensorBoard event files; name the log file itself"
        )
    name = p.name.lower()
    if "tfevents" in name:
        return "tensorboard", p
    if name.endswith((".csv", ".tsv")):
        return "csv", p
    if name.endswith(".ipynb"):
        return "notebook", p
    head = _head(p)
    printed = head.lstrip().startswith("{'")  # a printed Python dict (a console log), not JSON
    if name.endswith(".json") or (head.startswith(("{", "[")) and not printed):
        try:
            obj = json.loads(_first_line(p))
        except (ValueError, RecursionError):
            obj = None  # a multi-line JSON document (or no JSON)
        if isinstance(obj, dict) and isinstance(obj.get("log_history"), list):
            return "trainer_state", p  # a trainer_state.json written on one line
        if isinstance(obj, dict):
            return ("verl" if isinstance(obj.get("data"), dict) and "step" in obj else "jsonl"), p
        if head.lstrip().startswith("["):
            return "jsonl", p  # a JSON list of records (a trainer's log history saved as a list)
        if name.endswith(".json") or head.lstrip().startswith("{"):
            return "trainer_state", p
        return "jsonl", p
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl", p
    text = _head(p, CONSOLE_HEAD)
    if looks_like_verl_console(text):
        return "verl_console", p
    if looks_like_printed_dicts(text):
        return "console", p
    raise ImportFailure(
        f"{p}: cannot tell the format from the name or the content; pass --format "
        f"({', '.join(FORMATS)})"
    )


def _head(p: Path, size: int = 4096) -> str:
    with open(p, "rb") as f:
        return f.read(size).decode("utf-8", "replace").lstrip("\ufeff")


def _first_line(p: Path) -> str:
    """The first non-blank line of ``p``, whole however long (verl's and W&B's JSONL put over a
    hundred metrics on a line; a one-line trainer_state.json is all one line)."""
    with open(p, "rb") as f:
        for line in f:
            if line.strip():
                return line.decode("utf-8", "replace").lstrip("\ufeff")
    return ""


# ----------------------------------------------------------------------------- readers
# Each reader returns (rows, meta): rows are dicts of logged name -> value, each holding the step
# under one of STEP_KEYS (or under the name the user mapped to ``step``).


def _flatten(obj: dict, bad: dict[str, int] | None = None, prefix: str = "") -> dict[str, Any]:
    """Nested objects joined with ``/``; a name met twice in one record (``"a/b"`` and
    ``{"a": {"b": ...}}``) keeps the last value and is counted in ``bad``."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        items = _flatten(v, None, key + "/").items() if isinstance(v, dict) else [(key, v)]
        for name, value in items:
            if name in out and bad is not None:
                _count(bad, f"{name}: logged twice in one record (kept the last)")
            out[name] = value
    return out


def _count(bad: dict[str, int], what: str, n: int = 1) -> None:
    bad[what] = bad.get(what, 0) + n


def _read_trainer_state(path: Path) -> tuple[list[dict], dict]:
    state = _load_json(path)
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise ImportFailure(f"{path}: no 'log_history' list; is it a Hugging Face trainer_state.json?")
    rows, summary, bad = [], {}, {}
    for entry in state["log_history"]:
        if not isinstance(entry, dict):
            _count(bad, "log_history entries that are not objects (left out)")
            continue
        if "train_runtime" in entry:  # the end-of-training summary, not a step
            summary = entry
            continue
        rows.append(_flatten(entry, bad))
    config = {k: v for k, v in state.items() if k != "log_history" and not isinstance(v, (dict, list))}
    return rows, {"config": config, "summary": summary, "bad_values": bad}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, 4300-digit ints
        raise ImportFailure(f"{path}: not readable JSON ({e})") from None
    except RecursionError:
        raise ImportFailure(f"{path}: JSON nested too deeply to read") from None


def _read_jsonl(path: Path, verl: bool) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    bad: dict[str, int] = {}
    notes: list[str] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip().lstrip("\ufeff")
            except UnicodeDecodeError as e:
                raise ImportFailure(f"{path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start})") from None
            if not line:
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, 4300-digit ints
                if rows and not f.readline():  # a last line cut short by a running writer
                    notes.append(f"line {lineno}, the last, is not whole JSON (a writer still running?): left out")
                    _count(bad, "last line cut short (left out)")
                    break
                why = e.msg if isinstance(e, json.JSONDecodeError) else str(e) or "nested too deeply"
                raise ImportFailure(f"{path}:{lineno}: not JSON ({why})") from None
            if not isinstance(obj, dict):
                raise ImportFailure(f"{path}:{lineno}: expected a JSON object per line")
            try:
                if verl:
                    if not isinstance(obj.get("data"), dict) or "step" not in obj:
                        expected = '{"step": N, "data": {...}}'
                        raise ImportFailure(f"{path}:{lineno}: not a verl file-logger line ({expected})")
                    row = _flatten(obj["data"], bad)
                    if "step" in row:
                        _count(bad, "step: logged in 'data' beside the line's own step (the line's kept)")
                    row["step"] = obj["step"]
                else:
                    row = _flatten(obj, bad)
            except RecursionError:
                raise ImportFailure(f"{path}:{lineno}: JSON nested too deeply to read") from None
            rows.append(row)
    return rows, {"bad_values": bad, "notes": notes}


def _read_json_list(path: Path) -> tuple[list[dict], dict]:
    obj = _load_json(path)
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise ImportFailure(f"{path}: expected one JSON object per line, or a JSON list of objects")
    bad: dict[str, int] = {}
    summary = {}
    try:
        rows = []
        for r in obj:
            if "train_runtime" in r and "loss" not in r:  # Hugging Face's end-of-training summary
                summary = r
            else:
                rows.append(_flatten(r, bad))
        return rows, {"bad_values": bad, **({"summary": summary} if summary else {})}
    except RecursionError:
        raise ImportFailure(f"{path}: JSON nested too deeply to read") from None


_WANDB_PANEL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+)$")


def _read_csv(path: Path) -> tuple[list[dict], dict]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            sample = f.read(8192)
            f.seek(0)
            tabs = path.name.lower().endswith(".tsv") or sample.count("\t") > sample.count(",")
            return _csv_rows(path, csv.reader(f, delimiter="\t" if tabs else ","))
    except UnicodeDecodeError as e:
        raise ImportFailure(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def _csv_rows(path: Path, reader) -> tuple[list[dict], dict]:
    limit = csv.field_size_limit()
    csv.field_size_limit(1 << 30)  # a cell of logged text (a completion, a config) may be long
    try:
        header = next(reader, None)
        if not header:
            raise ImportFailure(f"{path}: empty CSV (no header row)")
        header = [h.strip() for h in header]
        # W&B panel exports name columns "<run name> - <metric>": drop a prefix common to all
        panel = [_WANDB_PANEL.match(h) for h in header]
        runs = {m.group("run") for m in panel if m}
        if len(runs) == 1 and sum(bool(m) for m in panel) >= 1:
            header = [m.group("metric") if m else h for h, m in zip(header, panel)]
        bad: dict[str, int] = {}
        twice = sorted({h for h in header if header.count(h) > 1}) if len(set(header)) < len(header) else []
        rows = []
        for line in reader:
            if not any(cell.strip() for cell in line):
                continue
            row: dict[str, Any] = {}
            for h, c in zip(header, line):
                value = _cell(c)
                if h in row and value is not None:
                    _count(bad, f"{h}: two columns of this name (kept the last)")
                if value is not None or h not in row:
                    row[h] = value
            extra = sum(1 for c in line[len(header):] if c.strip())
            if extra:
                _count(bad, "cells beyond the header's columns (left out)", extra)
            rows.append(row)
    except csv.Error as e:
        raise ImportFailure(f"{path}:{reader.line_num}: not readable CSV ({e})") from None
    finally:
        csv.field_size_limit(limit)
    notes = [f"columns named twice in the header: {listing(twice, 10)}"] if twice else []
    return rows, {"bad_values": bad, "notes": notes}


def _cell(text: str) -> Any:
    """A CSV cell: ``None`` when empty (or ``null``/``none``), else an int, a float (``nan`` too:
    the importer counts it) or the text."""
    text = text.strip()
    if text == "" or text.lower() in ("none", "null"):
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text) if len(text) < 4000 else float(text)
    try:
        return float(text)
    except ValueError:
        return text


def _read_tensorboard(path: Path) -> tuple[list[dict], dict]:
    try:
        files = find_event_files(path)
    except EventFileError as e:
        raise ImportFailure(str(e)) from None
    if not files:
        raise ImportFailure(f"{path}: no TensorBoard event files (events.out.tfevents.*)")
    # one row per step and occurrence: a tag logged again at a step (a resumed writer, a later
    # file) goes to the step's next row, so that the merge counts a changed value
    by_step: dict[int, list[dict]] = {}
    wall: dict[int, float] = {}
    bad: dict[str, int] = {}
    for f in files:  # in name order = creation order; a later file's value for a step wins (counted)
        try:
            scan = scan_scalars(f)
        except EventFileError as e:
            raise ImportFailure(str(e)) from None
        for what, n in scan.problems.items():  # damaged or cut records: counted per file
            _count(bad, f"{f.name}: {what}", n)
        for e in scan.events:
            group = by_step.setdefault(e.step, [])
            row = next((r for r in group if e.tag not in r), None)
            if row is None:
                group.append(row := {"step": e.step})
            row[e.tag] = e.value
            wall[e.step] = max(wall.get(e.step, e.wall_time), e.wall_time)
    rows = []
    for step in sorted(by_step):
        group = by_step[step]
        group[0].setdefault("wall_time", wall[step])  # unless a tag has that name
        rows.extend(group)
    return rows, {"files": [str(f) for f in files], "bad_values": bad}


def read_history(
    source: str | os.PathLike, format: str = "auto", *, log_every: int | None = None,
    eval_where: str | None = None,
) -> tuple[str, Path, list[dict], dict]:
    """``(format, path, rows, meta)``: the raw logged rows of ``source`` (no mapping applied).

    ``log_every`` numbers printed console dicts ``log_every·k``; ``eval_where`` (``FIELD=VALUE``)
    names the record-kind field of a typed JSONL and its evaluation value.
    """
    if format == "auto":
        format, path = detect_format(source)
    else:
        if format not in FORMATS:
            raise ImportFailure(f"unknown format {format!r}; formats are {', '.join(FORMATS)}")
        path = Path(source)
        if not path.exists():
            raise ImportFailure(f"{path}: no such file or directory")
        if format == "trainer_state" and path.is_dir():
            state = _newest_checkpoint_state(path)
            if state is None:
                raise ImportFailure(f"{path}: no trainer_state.json in it or in checkpoint-*/")
            path = state
    if path.is_dir() and format != "tensorboard":
        raise ImportFailure(f"{path} is a folder; format {format} reads a file")
    if format == "trainer_state":
        rows, meta = _read_trainer_state(path)
    elif format in ("verl", "jsonl"):
        if format == "jsonl" and _head(path).lstrip().startswith("["):
            rows, meta = _read_json_list(path)
        else:
            rows, meta = _read_jsonl(path, verl=format == "verl")
    elif format == "csv":
        rows, meta = _read_csv(path)
    elif format == "verl_console":
        rows, meta = read_verl_console(path)
    elif format in ("console", "notebook"):
        try:
            rows, meta = (read_printed_dicts if format == "console" else read_notebook)(path, log_every=log_every)
        except ValueError as e:
            raise ImportFailure(str(e)) from None
    else:
        rows, meta = _read_tensorboard(path)
    if eval_where is not None and format not in ("jsonl", "verl"):
        raise ImportFailure(f"--eval-where applies to record-typed JSONL; {path} is read as {format}")
    if format == "jsonl":
        rows, meta = _typed(path, rows, meta, eval_where)
    return format, path, rows, meta


def _typed(path: Path, rows: list[dict], meta: dict, eval_where: str | None) -> tuple[list[dict], dict]:
    """Split record-typed JSONL rows by their kind field (see ``typed``); others pass through."""
    if eval_where is not None:
        field_name, sep, value = eval_where.partition("=")
        field_name, value = field_name.strip(), value.strip()
        if not sep or not field_name or not value:
            raise ImportFailure(f"--eval-where expects FIELD=VALUE (e.g. type=eval), got {eval_where!r}")
        if not any(field_name in r for r in rows):
            raise ImportFailure(f"--eval-where {eval_where}: no record has a field {field_name!r}")
        kind_field, evals = field_name, {v.strip() for v in value.split(",")}
    else:
        kind_field, evals = find_kind_field(rows), None
        if kind_field is None:
            return rows, meta
    try:
        out, typed_meta = split_typed(rows, kind_field, evals, STEP_KEYS)
    except ValueError as e:
        raise ImportFailure(str(e)) from None
    config = _sibling_config(path)
    bad = dict(meta.get("bad_values", {}))
    for what, n in typed_meta.pop("bad_values", {}).items():
        _count(bad, what, n)
    notes = [*meta.get("notes", []), *typed_meta.pop("notes", [])]
    return out, {**meta, **typed_meta, "bad_values": bad, "notes": notes, **({"config": config} if config else {})}


def _sibling_config(path: Path) -> dict:
    """The flat settings of a ``config.json`` beside the log (custom loops often write one)."""
    cfg = path.parent / "config.json"
    if not cfg.is_file() or cfg == path:
        return {}
    try:
        obj = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in obj.items() if not isinstance(v, (dict, list))} if isinstance(obj, dict) else {}


# ----------------------------------------------------------------------------- mapping and writing


INT64_MAX = (1 << 63) - 1

#: why a logged value is left out or changed (the reasons of ``ImportReport.bad_values``)
NONFINITE = "not a number or infinite (left out)"
BOOLEAN = "true/false, not a number (left out)"
NOT_NUMERIC = "not numeric (left out)"
TOO_LARGE = "beyond the float64 range (left out)"
ROUNDED = "an integer beyond 2^53, rounded to the nearest float64"


def _number(v: Any) -> float | None:
    """The float of a logged value, or ``None`` (see ``_judge`` for why)."""
    return _judge(v)[0]


def _judge(v: Any) -> tuple[float | None, str | None]:
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


def _check_series_kept(path: Path, rows: list[dict], targets: dict[str, Target]) -> None:
    """Refuse an import that would lose the entropy series, or an evaluation series, to parsing: more
    than half of a column's logged values (at least two) are number-like text that did not parse
    (a wrapper entrodiag does not know, e.g. ``jnp.float32(0.5)``); the message names the column
    and shows a value. Single values cut short (a line truncated mid-number) are only counted."""
    for n, t in targets.items():
        if not (t.kind == "eval" or (t.kind == "step" and t.name == "entropy_mean")):
            continue
        values = [r[n] for r in rows if r.get(n) is not None]
        texts = [v for v in values if isinstance(v, str) and len(v) <= 80 and re.search(r"\d", v)
                 and _judge(v)[1] == NOT_NUMERIC]
        logged = len(values)
        if len(texts) >= 2 and len(texts) * 2 > logged:
            what = "entropy" if t.kind == "step" else f"evaluation {t.name}"
            raise ImportFailure(
                f"{path}: the {what} series would be lost: {len(texts)} of {logged} values of {n!r} are not "
                f"numbers entrodiag can read (e.g. {texts[0]!r}); convert them, or leave the column out with "
                f"--map {n}=skip"
            )


def _impossible(column: str, v: float) -> str | None:
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


def _step_of(v: Any) -> tuple[int | None, str | None]:
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


def import_run(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "auto",
    mapping: dict[str, str] | list[str] | None = None,
    meta: dict | None = None,
    log_every: int | None = None,
    eval_where: str | None = None,
) -> ImportReport:
    """Build the run directory ``out`` from the metrics logged in ``source``.

    Args:
        source: a log file or folder (see the module docstring for the formats).
        out: the run directory to create (must not hold a run): a local path or an object-store
            URL (``s3://bucket/runs/x``, ``gs://...``), each file written as one whole object.
        format: one of ``FORMATS``, or ``auto``.
        mapping: ``{logged column: field}`` or ``["column=field", ...]``; field is a step column
            (``entropy_mean``, ``reward_mean``, ...), an evaluation name (``val/accuracy``),
            ``step`` (the step column) or ``skip``.
        meta: more run.json fields (``model``, ``task``, ...).
        log_every: console dicts only: step of the k-th printed dict = ``log_every``·k (default:
            the progress-bar counter printed before it).
        eval_where: record-typed JSONL only: ``FIELD=VALUE`` (values comma-separated) names the
            record-kind field and the kinds that are evaluations (default: detected).

    Every value left out or changed is counted in ``ImportReport.bad_values`` by column and reason
    (text, true/false, NaN or infinite, impossible for its column such as a negative entropy, a row
    whose step is not a whole number >= 0 or lies beyond int64, an integer rounded into float64 or
    into a count column, a damaged TensorBoard record, ...); a step logged twice with different
    values for a column keeps the last one and is counted too. Nothing is written before the whole
    log has been read and checked.

    Raises:
        ImportFailure: missing file, unknown format, unreadable content, an empty log, no step
            column, no value with a valid step, or an entropy or evaluation series that would be
            lost to parsing (number-like text entrodiag cannot read); the message says what to pass.
        FileExistsError: ``out`` already holds a run.

    Example:
        >>> report = import_run("out/checkpoint-500/trainer_state.json", "runs/x")  # doctest: +SKIP
        >>> report.steps, report.unrecognised  # doctest: +SKIP
    """
    from .. import __version__
    from ..store.schema import RUN_JSON, STEP_COLUMNS
    from ..store.writer import RunWriter

    user_map = parse_map(mapping) if isinstance(mapping, list) else dict(mapping or {})
    for col, target in user_map.items():
        if target in RESERVED_TARGETS:
            raise ImportFailure(f"mapping {col}={target}: {target!r} cannot be mapped to")
    from ..store.location import check_store, run_path

    out = run_path(out)  # a local folder, or an object-store URL (s3://, gs://)
    if check_store(out).child(RUN_JSON).exists():
        raise FileExistsError(f"{out} already holds a run (run.json exists); choose a new --out")
    if log_every is not None and log_every < 1:
        raise ImportFailure(f"--log-every must be a positive number of steps, got {log_every}")
    fmt, path, rows, src_meta = read_history(source, format, log_every=log_every, eval_where=eval_where)
    if log_every is not None and fmt not in ("console", "notebook"):
        raise ImportFailure(f"--log-every applies to printed console dicts; {path} is read as {fmt}")
    if not rows:
        raise ImportFailure(f"{path}: the log is empty (no metric rows)")

    names: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for k in row:
            if k not in seen:
                seen.add(k)
                names.append(k)
    targets = {n: classify(n, user_map) for n in names}
    for col in user_map:
        if col not in seen:
            raise ImportFailure(
                f"--map {col}=...: no column {col!r} in {path}; columns are: {listing(names)}"
            )
    keys = [n for n in names if targets[n].kind == "key"]
    user_keys = [n for n in keys if user_map.get(n) == "step"]
    if user_keys:
        step_col = user_keys[0]
    else:
        ranked = sorted(keys, key=lambda n: STEP_KEYS.index(n) if n in STEP_KEYS else -1)
        step_col = ranked[0] if ranked else None
    if step_col is None:
        raise ImportFailure(
            f"{path}: no step column (looked for {', '.join(STEP_KEYS)}); name it with "
            f"--map COLUMN=step. Columns are: {listing(names)}"
        )

    numeric = {n: any(_number(r.get(n)) is not None for r in rows) for n in names}
    notes = list(src_meta.get("notes", []))
    skipped = [n for n in names if n != step_col and (
        targets[n].kind in ("skip", "key") or (targets[n].kind in ("step", "eval") and not numeric[n]))]
    used: dict[str, Target] = {
        n: t for n, t in targets.items() if n not in skipped and n != step_col and t.kind in ("step", "eval")
    }
    # two logged names for one target: the first one logged wins, the others stay as they are
    claimed: dict[tuple[str, str], str] = {}
    for n, t in list(used.items()):
        if t.known and (t.kind, t.name) in claimed:
            used[n] = Target("step", n, known=False)
        elif t.known:
            claimed[(t.kind, t.name)] = n
    for n, t in list(used.items()):  # a logged name that is one of the run's own columns
        if t.kind == "step" and t.name in OWN_COLUMNS:
            used[n] = Target("step", f"logged/{t.name}", known=False)
            notes.append(f"column {n!r} kept as 'logged/{t.name}' ({t.name!r} is a column entrodiag writes itself)")
    unrecognised = [n for n, t in used.items() if not t.known]
    steps: dict[int, dict[str, float]] = {}
    evals: dict[tuple[int, str], float] = {}
    bad: dict[str, int] = dict(src_meta.get("bad_values", {}))

    def count(what: str) -> None:
        _count(bad, what)

    for row in rows:
        raw_step = row.get(step_col)
        step, why = _step_of(raw_step)
        if step is None:
            if raw_step is not None or any(row.get(n) is not None for n in used):
                count(f"rows whose step ({step_col}) is {why} (left out)")
            continue
        for n, t in used.items():
            raw = row.get(n)
            v, why = _judge(raw)
            if why is not None:
                count(f"{n}: {why}")
            if v is None:
                continue
            impossible = t.kind == "step" and _impossible(t.name, v)
            if impossible:
                count(f"{n}: {impossible} (left out)")
                continue
            if t.kind == "step" and str(STEP_COLUMNS.get(t.name, ("",))[0]).startswith("int"):
                if abs(v) > INT64_MAX:
                    count(f"{n}: beyond the int64 range of {t.name} (left out)")
                    continue
                if v != int(v):
                    count(f"{n}: not a whole number, rounded ({t.name} counts)")
                v = round(v)
            store = evals if t.kind == "eval" else steps.setdefault(step, {})
            key = (step, t.name) if t.kind == "eval" else t.name
            old = store.get(key)
            if old is not None and old != v:
                count(f"{n}: step logged twice with different values (kept the last)")
            store[key] = v
    _check_series_kept(path, rows, {n: targets[n] for n in names if n != step_col})
    if not steps and not evals:
        why = "; ".join(f"{c} x {k}" for k, c in list(bad.items())[:3])
        raise ImportFailure(f"{path}: no numeric metric values with a step in {step_col!r}"
                            + (f" ({why})" if why else ""))

    step_list = sorted(steps)
    step_cols = sorted({c for values in steps.values() for c in values})
    columns: dict[str, Any] = {"step": step_list, "rank": [0] * len(step_list)}
    for c in step_cols:
        columns[c] = [steps[s].get(c) for s in step_list]
    eval_keys = sorted(evals)
    eval_names = sorted({name for _, name in eval_keys})
    mapped = {n: t.name for n, t in used.items() if t.known}
    framework = guess_framework(fmt, [normalise(n) for n in names])
    entropy_col = next((n for n, t in used.items() if t.kind == "step" and t.name == "entropy_mean"), None)
    semantics = entropy_semantics(framework, entropy_col, {**src_meta.get("config", {})})
    run_meta = {
        "source": f"import:{fmt}",
        "config": src_meta.get("config", {}),
        "model": None, "task": None, "intervention": None, "entropy_temperature": None,
        "world_size": 1,
        "entrodiag_version": __version__,
        "entropy_semantics": semantics,
        "imported": {
            "from": str(Path(path).resolve()),
            "format": fmt,
            "framework": framework,
            "notes": notes,
            "bad_values": bad,
            **({"typed": src_meta["typed"]} if src_meta.get("typed") else {}),
            "step_column": step_col,
            "columns": mapped,
            "unrecognised": unrecognised,
            "skipped": skipped,
            **({"summary": src_meta["summary"]} if src_meta.get("summary") else {}),
            **({"files": src_meta["files"]} if src_meta.get("files") else {}),
        },
        **(meta or {}),
    }
    writer = RunWriter(out, meta=run_meta)
    try:
        if step_list:
            writer.append("steps", columns)
        if eval_keys:
            writer.append("evals", {
                "step": [s for s, _ in eval_keys], "rank": [0] * len(eval_keys),
                "name": [n for _, n in eval_keys], "value": [evals[k] for k in eval_keys],
                "n": [None] * len(eval_keys),
            })
        writer.flush(timeout=None)
    except BaseException:
        writer.close("failed")
        raise
    writer.close("failed" if writer.errors else "finished")
    if writer.errors:
        raise ImportFailure(f"{out}: writing the run failed ({writer.errors} errors, see the log above); "
                            "the run is marked failed")
    return ImportReport(
        run_dir=out, source=Path(path), format=fmt, steps=len(step_list), evals=len(eval_keys),
        step_column=step_col, columns=mapped,
        unrecognised=unrecognised, skipped=skipped, eval_names=eval_names,
        eval_steps=len({s for s, _ in eval_keys}), notes=notes, bad_values=bad, framework=framework,
        entropy_semantics=semantics,
    )


def _nonfinite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, str):
        return v.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
    return False


def listing(names: list[str], limit: int = 30) -> str:
    """``names`` joined with commas for a terminal, cut after ``limit`` with a count of the rest (a
    log may hold 100k columns), each shown by ``shown``."""
    text = ", ".join(shown(n) for n in names[:limit])
    return text + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def shown(name: str, width: int = 120) -> str:
    """A logged name as a terminal may print it: control characters escaped (no ANSI sequence of a
    hostile log reaches the terminal), cut to ``width`` characters."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= width else text[: width - 3] + "..."
