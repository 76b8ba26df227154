"""W&B runs: a local run folder read with W&B's own reader, or a run read through W&B's API.

A local run (``wandb/run-*`` or ``wandb/offline-run-*``; the ``run-<id>.wandb`` file in it) is a
transaction log of protocol-buffer records. Since W&B 0.29 the supported reader of that log is
``wandb leet inspect --json`` (its Go core; the Python ``datastore`` reader of older releases is
gone), which prints one JSON object per record. From those records:

- ``history``: one row per ``run.log`` call, with W&B's ``_step`` and ``_timestamp`` (its
  ``_runtime``, the seconds since the start, left out); nested dicts arrive flattened with ``.``; ``"NaN"``/``"Infinity"`` are the
  floats they name; media (an object with a ``_type``: histogram, image, table...) are left out,
  named in a note;
- ``run`` and ``config``: the run's config (the first record, then every ``run.config`` update);
- ``summary``: the summary updates, merged in order (the last value of each key, plus what the
  code set with ``run.summary[...]``), kept in run.json's ``imported.summary``;
- ``metric``: ``define_metric`` declarations; a declared step metric is said in a note;
- ``exit``: the exit code.

A log cut short (a run still running, or killed) is read up to its last whole record, and said.
A run on W&B's servers (``wandb:ENTITY/PROJECT/RUN_ID`` or its URL) is read with
``wandb.Api().run(...).scan_history()``, its config and summary; that needs W&B credentials
(``WANDB_API_KEY`` or ``wandb login``): without them the import stops with a one-line error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .columns import STEP_KEYS
from ..tracker_env import missing_package
from .failure import ImportFailure, listing
from .trackers import plain_row, wandb_url_path


def read_wandb(source: str | Path, run: str | None = None) -> tuple[list[dict], dict]:
    """``(rows, meta)`` of a W&B run: a local folder or ``.wandb`` file, or an online run path."""
    text = str(source)
    if isinstance(source, Path) or Path(text).exists():
        return read_wandb_folder(Path(text), run)
    if run is not None:
        raise ImportFailure(f"--run: {text} names one W&B run already")
    low = text.lower()
    base = None
    if low.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        path, parts = wandb_url_path(text), urlsplit(text)
        if parts.hostname not in ("wandb.ai", "www.wandb.ai"):  # a W&B server of one's own
            base = f"{parts.scheme}://{parts.netloc}"
    else:
        path = text[len("wandb:"):] if low.startswith("wandb:") else text
    if not path or path.strip("/").count("/") != 2:
        raise ImportFailure(f"{text}: not a W&B run folder, nor a run path ENTITY/PROJECT/RUN_ID "
                            "(wandb:ENTITY/PROJECT/RUN_ID or https://wandb.ai/ENTITY/PROJECT/runs/RUN_ID)")
    return read_wandb_online(path.strip("/"), base_url=base)


def run_files(path: Path, run: str | None = None) -> list[Path]:
    """The ``run-*.wandb`` files of ``path``: the file itself, the one in a run folder, or those of
    run ``run`` (a run id) in a ``wandb/`` folder, oldest first (a resumed run writes one folder per
    resumption); raises ``ImportFailure`` naming the choices."""
    if path.is_file():
        if path.suffix != ".wandb":
            raise ImportFailure(f"{path}: not a W&B .wandb file")
        return [path]
    own = sorted(path.glob("run-*.wandb"))
    if own and run is None:
        if len(own) > 1:
            raise ImportFailure(f"{path} holds {len(own)} .wandb files; name one: {listing([f.name for f in own])}")
        return own
    # run folders are named <kind>-<YYYYMMDD_HHMMSS>-<id>: by name is by start time
    found = sorted((f for f in path.glob("*/run-*.wandb") if not f.parent.is_symlink()),
                   key=lambda f: f.parent.name.partition("-")[2])
    if run is not None:
        mine = [f for f in [*own, *found] if f.stem == f"run-{run}"]
        if not mine:
            ids = sorted({f.stem.removeprefix("run-") for f in [*own, *found]})
            raise ImportFailure(f"--run {run}: no W&B run of that id in {path}; runs: {listing(ids)}")
        return mine
    if len(found) == 1:
        return found
    if not found:
        raise ImportFailure(f"{path}: no W&B run (no run-*.wandb file in it or in its run folders)")
    raise ImportFailure(f"{path} holds {len(found)} W&B run folders; name the run with --run ID or pass its "
                        "folder: " + listing([f.parent.name for f in found]))


def read_wandb_folder(path: Path, run: str | None = None) -> tuple[list[dict], dict]:
    """``(rows, meta)`` of the local W&B run at ``path`` (see the module docstring)."""
    files = run_files(path, run)
    rows: list[dict] = []
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    media: set[str] = set()
    step_metrics: set[str] = set()
    info: dict[str, Any] = {}
    notes: list[str] = []
    for file in files:
        first, said = len(rows), []
        for rec in _records(file, said):
            kind = rec.get("type")
            body = rec.get(kind) if isinstance(kind, str) else None
            if not isinstance(body, dict):
                continue
            if kind == "history":
                row = plain_row(body.get("item") or {}, media)
                row.pop("_runtime", None)  # seconds since the start: _timestamp (wall_time) says it
                rows.append(row)
            elif kind == "run":
                info.update({k: body[k] for k in ("run_id", "project", "entity", "display_name", "start_time")
                             if isinstance(body.get(k), str) and k not in info})
                _apply(config, body.get("config") or {})
            elif kind == "config":
                _apply(config, body)
            elif kind == "summary":
                _apply(summary, body)
            elif kind == "metric" and isinstance(body.get("step_metric"), str):
                step_metrics.add(body["step_metric"])
            elif kind == "exit":
                info["exit_code"] = body.get("exit_code", 0)
        notes.append(f"W&B run {info.get('run_id', file.stem.removeprefix('run-'))}"
                     + (f" ({info['display_name']})" if info.get("display_name") else "")
                     + f": {len(rows) - first} history rows read from {file.parent.name}/{file.name} "
                     "with wandb leet inspect")
        if "incomplete" in said[0]:  # wandb: "reached the end of an incomplete .wandb file"
            notes.append(f"{file.name} ends in an incomplete record (the run still running, or stopped): "
                         "read up to its last whole record")
    if len(files) > 1:
        notes.append(f"{len(files)} folders of run {run} (resumed): read oldest first; a step logged again "
                     "keeps the later value, counted where it differs")
    if media:
        notes.append(f"media values left out (histograms, images, tables): {listing(sorted(media))}")
    unknown = sorted(m for m in step_metrics if m not in STEP_KEYS)
    if unknown:
        notes.append(f"step metric declared with define_metric: {listing(unknown)}; pass --map NAME=step to "
                     f"number the steps by it (otherwise the first logged of {', '.join(STEP_KEYS[:4])}, ..., _step)")
    config.pop("_wandb", None)
    return rows, {"config": config, "summary": _scalars(summary), "notes": notes, "run": info,
                  "from": ", ".join(str(f.resolve()) for f in files)}


def _records(file: Path, said: list[str]) -> Iterator[dict]:
    """The records of ``file`` through ``wandb leet inspect --json``, one at a time (a long run's
    records are not all held at once); what the reader printed on stderr is added to ``said``."""
    if importlib.util.find_spec("wandb") is None:
        raise missing_package("wandb", "wandb", "reading a W&B run", ImportFailure)
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(file)]
    # no error reports sent from a read (the CLI passes --no-observability), no banner
    env = {**os.environ, "WANDB_ERROR_REPORTING": "false", "WANDB_SILENT": "true"}
    with tempfile.TemporaryFile() as err:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # not a record (a warning printed on stdout)
                if isinstance(rec, dict):
                    yield rec
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip()
    said.append(text)
    if proc.returncode != 0:
        why = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
        if "No such command" in text or "No such option" in text:
            why = "this wandb has no 'wandb leet inspect' (W&B >= 0.29 reads .wandb files): pip install -U wandb"
        raise ImportFailure(f"{file}: W&B could not read it ({why})")


def _apply(into: dict[str, Any], record: dict) -> None:
    """Apply a config or summary record (``update`` values, ``remove`` keys) to ``into``."""
    update = record.get("update")
    if isinstance(update, dict):
        into.update(update)
    remove = record.get("remove")
    for key in remove if isinstance(remove, (list, dict)) else []:
        name = key.get("key") if isinstance(key, dict) else key
        if isinstance(name, str):
            into.pop(name, None)


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's plain values (numbers, text, true/false), without W&B's own ``_`` keys and media."""
    kept = plain_row({k: v for k, v in summary.items() if not k.startswith("_")})
    return {k: v for k, v in kept.items() if isinstance(v, (int, float, str, bool))}


def read_wandb_online(path: str, base_url: str | None = None) -> tuple[list[dict], dict]:
    """``(rows, meta)`` of the W&B run ``ENTITY/PROJECT/RUN_ID`` read through ``wandb.Api``."""
    try:
        import wandb
    except ImportError:
        raise missing_package("wandb", "wandb", "reading a W&B run", ImportFailure) from None
    try:
        api = wandb.Api(overrides={"base_url": base_url} if base_url else None, timeout=60)
    except wandb.errors.UsageError:  # no API key
        raise ImportFailure(f"W&B run {path}: no W&B credentials; set WANDB_API_KEY or run `wandb login`, or "
                            "import the run's local folder (wandb/run-*)") from None
    try:
        online = api.run(path)
        rows = [plain_row(dict(r)) for r in online.scan_history(page_size=1000)]
        config = {k: v for k, v in dict(online.config).items() if not k.startswith("_")}
        summary = _scalars(dict(online.summary_metrics))
    except (wandb.errors.Error, ValueError, OSError) as e:  # OSError: requests' connection errors
        said = str(e).strip()
        raise ImportFailure(f"W&B run {path}: {said.splitlines()[0] if said else type(e).__name__}") from None
    for row in rows:
        row.pop("_runtime", None)
    info = {"run_id": online.id, "project": online.project, "entity": online.entity,
            "display_name": online.name}
    return rows, {"config": config, "summary": summary, "run": info, "from": f"wandb:{path}",
                  "notes": [f"W&B run {path} ({online.name}): {len(rows)} history rows read through wandb.Api"]}
