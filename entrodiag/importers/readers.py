"""The per-format readers: a log file (or folder) in, the raw logged rows out.

``read_history`` reads ``source`` in one of ``FORMATS`` (``auto``: see ``detect``) and returns
``(format, path, rows, meta)``. Each row is a dict of logged name -> value holding the step under
one of ``columns.STEP_KEYS``, under a step-like name (``step_key``), or under the name the user
maps to ``step``; no column mapping is applied here. ``meta`` may hold ``config``, ``summary``,
``files``, ``typed``, ``notes`` and ``bad_values`` (what the reader left out or overwrote,
counted). A JSON object that is not a ``trainer_state.json`` is read by the rule of ``json_history``
(format ``json``). Console logs and notebooks are read by ``console``, TensorBoard event files parsed by
``tfevents``, record-typed JSONL split by ``typed``; a W&B ``config.yaml`` beside a console log
(W&B's ``files/`` folder) gives the run's config.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from .columns import STEP_KEYS
from .console import read_printed_dicts, read_verl_console
from .notebook import read_notebook
from .detect import FORMATS, detect_format, newest_checkpoint_state, read_head
from .failure import ImportFailure, listing, shown
from .frameworks import FOLDER_FORMATS, READERS
from .json_history import find_history, position_start, step_fields
from .step_key import step_like
from .points import rows_by_step
from .tfevents import EventFileError, find_event_files, scan_scalars
from ..tracker_env import redacted
from .trackers import TRACKER_FORMATS, read_tracker
from .typed import find_kind_field, split_typed
from .values import count


def _flatten(obj: dict, bad: dict[str, int] | None = None, prefix: str = "") -> dict[str, Any]:
    """Nested objects joined with ``/``; a name met twice in one record (``"a/b"`` and
    ``{"a": {"b": ...}}``) keeps the last value and is counted in ``bad``."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        items = _flatten(v, None, key + "/").items() if isinstance(v, dict) else [(key, v)]
        for name, value in items:
            if name in out and bad is not None:
                count(bad, f"{name}: logged twice in one record (kept the last)")
            out[name] = value
    return out



def _is_trainer_state(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("log_history"), list)


def _read_trainer_state(path: Path, state: Any) -> tuple[list[dict], dict]:
    if not _is_trainer_state(state):
        raise ImportFailure(f"{path}: no 'log_history' list; is it a Hugging Face trainer_state.json? "
                            "(--format json reads a JSON document holding one list of per-step metric "
                            "objects)")
    rows, summary, bad = [], {}, {}
    for entry in state["log_history"]:
        if not isinstance(entry, dict):
            count(bad, "log_history entries that are not objects (left out)")
            continue
        if "train_runtime" in entry:  # the end-of-training summary, not a step
            summary = entry
            continue
        rows.append(_flatten(entry, bad))
    config = {k: v for k, v in state.items() if k != "log_history" and not isinstance(v, (dict, list))}
    return rows, {"config": config, "summary": summary, "bad_values": bad}


def _read_json_history(path: Path, doc: Any) -> tuple[list[dict], dict]:
    """A JSON document holding one list of per-step metric objects (``json_history``): its rows, the
    step from the entries' step field or their position (said in the notes)."""
    if not isinstance(doc, dict):
        raise ImportFailure(f"{path}: expected a JSON object holding a list of per-step metric objects (a "
                            "JSON list of objects is read by --format jsonl)")
    found = find_history(doc, str(path))
    bad: dict[str, int] = {}
    rows = [_flatten(e, bad) for e in found.entries]
    notes = []
    fields = step_fields(rows)
    if all(fields.values()):  # no step field, or none whose values count steps
        start, why = position_start(found.holder, len(rows))
        for i, row in enumerate(rows):
            row["step"] = start + i
        last = start + len(rows) - 1
        not_steps = "; ".join(f"{shown(name)} {no}" for name, no in fields.items())
        said = f"no step field: {not_steps}" if not_steps else "no step field"
        notes.append(f"step = position in {found.key!r} ({said}): {start}-{last}; {why}")
    if found.others:
        notes.append(f"the history is {found.key!r}; other lists of per-step objects left out: "
                     f"{listing(found.others, 10)}")
    config = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))}
    return rows, {"config": config, "bad_values": bad, "notes": notes}


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
                    count(bad, "last line cut short (left out)")
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
                        count(bad, "step: logged in 'data' beside the line's own step (the line's kept)")
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
                    count(bad, f"{h}: two columns of this name (kept the last)")
                if value is not None or h not in row:
                    row[h] = value
            extra = sum(1 for c in line[len(header):] if c.strip())
            if extra:
                count(bad, "cells beyond the header's columns (left out)", extra)
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
    points = []
    bad: dict[str, int] = {}
    for f in files:  # in name order = creation order; a later file's value for a step wins (counted)
        try:
            scan = scan_scalars(f)
        except EventFileError as e:
            raise ImportFailure(str(e)) from None
        for what, n in scan.problems.items():  # damaged or cut records: counted per file
            count(bad, f"{f.name}: {what}", n)
        points += [(e.step, e.tag, e.value, e.wall_time) for e in scan.events]
    rows = rows_by_step(points)
    return rows, {"files": [str(f) for f in files], "bad_values": bad}


def read_history(
    source: str | os.PathLike, format: str = "auto", *, log_every: int | None = None,
    eval_where: str | None = None, run: str | None = None, experiment: str | None = None,
) -> tuple[str, Path | str, list[dict], dict]:
    """``(format, path, rows, meta)``: the raw logged rows of ``source`` (no mapping applied).

    ``log_every`` numbers printed console dicts ``log_every·k``; ``eval_where`` (``FIELD=VALUE``)
    names the record-kind field of a typed JSONL and its evaluation value; ``run`` and
    ``experiment`` name the run in a tracker's store (see ``trackers``). ``path`` is the text
    given for a tracker's URI.
    """
    auto = format == "auto"
    if auto:
        format, path = detect_format(source)
    elif format in TRACKER_FORMATS:
        path = Path(source) if Path(source).exists() else str(source)  # a URI, or a W&B run path
    else:
        if format not in FORMATS:
            raise ImportFailure(f"unknown format {format!r}; formats are {', '.join(FORMATS)}")
        path = Path(source)
        if not path.exists():
            raise ImportFailure(f"{path}: no such file or directory")
        if format == "trainer_state" and path.is_dir():
            state = newest_checkpoint_state(path)
            if state is None:
                raise ImportFailure(f"{path}: no trainer_state.json in it or in checkpoint-*/")
            path = state
    if format in TRACKER_FORMATS:
        if eval_where is not None or log_every is not None:
            raise ImportFailure(f"--{'eval-where' if eval_where is not None else 'log-every'} does not apply to "
                                f"a tracker's store; {redacted(str(path))} is read as {format}")
        rows, meta = read_tracker(format, path, run=run, experiment=experiment)
        return format, redacted(path) if isinstance(path, str) else path, rows, meta
    if run is not None or experiment is not None:
        raise ImportFailure(f"--{'run' if run is not None else 'experiment'} applies to a tracker's store (W&B, "
                            f"MLflow, Trackio); {redacted(str(path))} is read as {format}")
    if path.is_dir() and format != "tensorboard" and format not in FOLDER_FORMATS:
        raise ImportFailure(f"{path} is a folder; format {format} reads a file")
    if format in ("trainer_state", "json"):
        doc = _load_json(path)
        if format == "json" or (auto and not _is_trainer_state(doc)):
            format = "json"  # a JSON document of a trainer's own, not Hugging Face's
            rows, meta = _read_json_history(path, doc)
        else:
            rows, meta = _read_trainer_state(path, doc)
    elif format in ("verl", "jsonl"):
        if format == "jsonl" and read_head(path).lstrip().startswith("["):
            rows, meta = _read_json_list(path)
        else:
            rows, meta = _read_jsonl(path, verl=format == "verl")
    elif format == "csv":
        rows, meta = _read_csv(path)
    elif format == "verl_console":
        rows, meta = read_verl_console(path)
    elif format in READERS:
        rows, meta = READERS[format](path)
    elif format in ("console", "notebook"):
        try:
            rows, meta = (read_printed_dicts if format == "console" else read_notebook)(path, log_every=log_every)
        except ValueError as e:
            raise ImportFailure(str(e)) from None
    else:
        rows, meta = _read_tensorboard(path)
    if format in CONSOLE_FORMATS and (wandb_config := _wandb_config_yaml(path)):
        # the settings the log printed itself come first
        meta = {**meta, "config": {**wandb_config, **meta.get("config", {})}}
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
        # the step keys stay as they are in every kind's records: the known names, and the step-like
        # names (``step_key``) one of which the plan may find to be the step
        like = tuple(dict.fromkeys(k for r in rows for k in r if step_like(k) and k not in STEP_KEYS))
        out, typed_meta = split_typed(rows, kind_field, evals, STEP_KEYS + like)
    except ValueError as e:
        raise ImportFailure(str(e)) from None
    config = _sibling_config(path)
    bad = dict(meta.get("bad_values", {}))
    for what, n in typed_meta.pop("bad_values", {}).items():
        count(bad, what, n)
    notes = [*meta.get("notes", []), *typed_meta.pop("notes", [])]
    return out, {**meta, **typed_meta, "bad_values": bad, "notes": notes, **({"config": config} if config else {})}


#: formats read from a console log, which W&B captures as ``files/output.log`` beside ``config.yaml``
CONSOLE_FORMATS = frozenset({"console", "verl_console", "roll_console", "areal_console"})


def _wandb_config_yaml(path: Path, limit: int = 5_000_000) -> dict:
    """The run's config from the ``config.yaml`` W&B writes beside the console log it captures
    (``files/config.yaml`` next to ``files/output.log``): every top-level setting is
    ``{value: ..., desc: ...}`` there, unwrapped here (nested as logged: verl's
    ``actor_rollout_ref: {rollout: {temperature: ...}}``), W&B's own ``_wandb`` left out. ``{}``
    when there is none, it is larger than ``limit`` bytes, it is not W&B's, or it holds YAML aliases
    (W&B writes none; an alias bomb would expand when walked)."""
    try:
        import yaml  # PyYAML: installed with transformers
    except ImportError:
        return {}
    cfg = path.parent / "config.yaml"
    try:
        if not cfg.is_file() or cfg.stat().st_size > limit:
            return {}
        text = cfg.read_text(encoding="utf-8")
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader)):
            return {}
        obj = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError):
        return {}
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, dict) and "value" in v
                                                        for v in obj.values()):
        return {}
    return {str(k): v["value"] for k, v in obj.items() if k != "_wandb"}


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

