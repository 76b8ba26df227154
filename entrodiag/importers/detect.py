"""Which format a log is in: ``detect_format`` reads the path's name and the start of its content.

A folder is a Hugging Face output folder (``trainer_state.json`` or ``checkpoint-N/``, the newest
checkpoint read), a W&B run folder or an MLflow ``mlruns`` folder, or a TensorBoard log folder; a
tracker's URI (``sqlite:///``, ``http://``, ``wandb:``, ``trackio:``), a ``.wandb`` file or a
tracker's SQLite file names that tracker's store (see ``trackers``); a file is told by its name
(``tfevents``, ``.csv``, ``.ipynb``, ``.json``, ``.jsonl``) and, failing that, by its first line or
its first megabyte (a verl console log, printed Python dicts). The other frameworks' logs and dumps
(a slime dump folder, NeMo-RL's ``train_data_step*.jsonl``, ROLL's ``metrics_tag`` lines, ...) are
told by ``frameworks.detect_framework`` first.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .console import looks_like_printed_dicts, looks_like_verl_console
from .failure import ImportFailure
from .frameworks import FRAMEWORK_FORMATS, detect_framework
from .json_history import candidates
from .tfevents import EventFileError, find_event_files
from .trackers import TRACKER_FORMATS, tracker_of_file, tracker_of_folder, tracker_uri

FORMATS = ("trainer_state", "json", "verl", "verl_console", "console", "notebook", "jsonl", "csv",
           "tensorboard", *FRAMEWORK_FORMATS, *TRACKER_FORMATS)

#: bytes read from the start of a text file to recognise a console log (verl prints a long config
#: dump before the first step line)
CONSOLE_HEAD = 1 << 20


def newest_checkpoint_state(folder: Path) -> Path | None:
    """``folder/trainer_state.json``, else that of the highest ``checkpoint-N``, else ``None``."""
    if (folder / "trainer_state.json").is_file():
        return folder / "trainer_state.json"
    states = []
    for d in folder.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / "trainer_state.json").is_file():
            states.append((int(m.group(1)), d / "trainer_state.json"))
    return max(states)[1] if states else None


def detect_format(source: str | os.PathLike) -> tuple[str, Path | str]:
    """``(format, path to read)`` for ``source`` (a tracker's URI is returned as given, see
    ``trackers``); raises ``ImportFailure`` when unknown."""
    if isinstance(source, str) and tracker_uri(source) is not None:
        return tracker_uri(source), source
    p = Path(source)
    if not p.exists():
        raise ImportFailure(f"{p}: no such file or directory")
    if p.is_dir():
        state = newest_checkpoint_state(p)
        if state is not None:
            return "trainer_state", state
        tracker = tracker_of_folder(p)
        if tracker is not None:
            return tracker, p
        try:
            if find_event_files(p):
                return "tensorboard", p
        except EventFileError as e:
            raise ImportFailure(str(e)) from None
        if (fmt := detect_framework(p)) is not None:
            return fmt, p
        raise ImportFailure(
            f"{p} is a folder without trainer_state.json, checkpoint-*/trainer_state.json, TensorBoard event "
            "files, a W&B run, an MLflow mlruns layout or a framework dump (slime --dump-details, NeMo-RL "
            "train_data_step*.jsonl, verl rollout_data_dir, Tinker iteration_*/, AReaL dump_dir); name the log "
            "file itself"
        )
    name = p.name.lower()
    if "tfevents" in name:
        return "tensorboard", p
    tracker = tracker_of_file(p)
    if tracker is not None:
        return tracker, p
    if name.endswith((".csv", ".tsv")):
        return "csv", p
    if name.endswith(".ipynb"):
        return "notebook", p
    if (fmt := detect_framework(p, read_head(p, CONSOLE_HEAD))) is not None:
        return fmt, p
    head = read_head(p)
    printed = head.lstrip().startswith("{'")  # a printed Python dict (a console log), not JSON
    if name.endswith(".json") or (head.startswith(("{", "[")) and not printed):
        try:
            obj = json.loads(_first_line(p))
        except (ValueError, RecursionError):
            obj = None  # a multi-line JSON document (or no JSON)
        if isinstance(obj, dict) and isinstance(obj.get("log_history"), list):
            return "trainer_state", p  # a trainer_state.json written on one line
        if isinstance(obj, dict) and name.endswith(".json") and _one_line(p) and _holds_history(obj):
            return "json", p  # a JSON document written on one line, holding a list of per-step dicts
        if isinstance(obj, dict):
            return ("verl" if isinstance(obj.get("data"), dict) and "step" in obj else "jsonl"), p
        if head.lstrip().startswith("["):
            return "jsonl", p  # a JSON list of records (a trainer's log history saved as a list)
        if name.endswith(".json") or head.lstrip().startswith("{"):
            return "trainer_state", p  # read as "json" when it holds no log_history (readers)
        return "jsonl", p
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl", p
    text = read_head(p, CONSOLE_HEAD)
    if looks_like_verl_console(text):
        return "verl_console", p
    if looks_like_printed_dicts(text):
        return "console", p
    raise ImportFailure(
        f"{p}: cannot tell the format from the name or the content; pass --format "
        f"({', '.join(FORMATS)})"
    )


def read_head(p: Path, size: int = 4096) -> str:
    """The first ``size`` bytes of ``p`` as text (undecodable bytes replaced, a BOM dropped)."""
    with open(p, "rb") as f:
        return f.read(size).decode("utf-8", "replace").lstrip("\ufeff")


def _one_line(p: Path) -> bool:
    """Whether ``p`` holds a single non-blank line (a JSON document, not JSON lines)."""
    seen = 0
    with open(p, "rb") as f:
        for line in f:
            seen += bool(line.strip())
            if seen > 1:
                return False
    return seen == 1


def _holds_history(obj: dict) -> bool:
    try:
        return bool(candidates(obj))
    except RecursionError:
        return False


def _first_line(p: Path) -> str:
    """The first non-blank line of ``p``, whole however long (verl's and W&B's JSONL put over a
    hundred metrics on a line; a one-line trainer_state.json is all one line)."""
    with open(p, "rb") as f:
        for line in f:
            if line.strip():
                return line.decode("utf-8", "replace").lstrip("\ufeff")
    return ""

