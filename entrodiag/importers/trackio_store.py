"""Trackio runs, read through Trackio's own API from its local store.

Trackio keeps each project in one SQLite file, ``<store>/<project>.db``, where the store is
``$TRACKIO_DIR``, else ``$HF_HOME/trackio`` (``~/.cache/huggingface/trackio``). The source is that
file (detected by its tables), or ``trackio:PROJECT`` for the store Trackio itself uses; ``--run``
names the run (its name or id; the project's newest run by default, said in a note).

The runs and their config come from ``trackio.Api().runs(project)``, each run's logged rows from
``SQLiteStorage.get_logs`` (what Trackio's own ``trackio get`` reads locally), all of them, not
subsampled; one row per ``trackio.log`` call, with its ``step`` and its ``timestamp`` (kept as
``wall_time``, seconds). Trackio reads its store folder from a module constant set when it is
first imported; to read a file in another folder, that constant is pointed at the file's folder
for the read and restored after.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..tracker_env import missing_package
from .failure import ImportFailure, listing
from .trackers import plain_row


def read_trackio(source: str | Path, run: str | None = None) -> tuple[list[dict], dict]:
    """``(rows, meta)`` of one run of a Trackio project (see the module docstring)."""
    try:
        import trackio
        from trackio import sqlite_storage
    except ImportError:
        raise missing_package("trackio", "trackio", "reading a Trackio project", ImportFailure) from None
    text = str(source)
    if not isinstance(source, Path) and text.lower().startswith("trackio:"):
        project, folder = text[len("trackio:"):], None
        if not project:
            raise ImportFailure(f"{text}: name the project, trackio:PROJECT")
    elif Path(text).is_file():
        project, folder = Path(text).stem, Path(text).resolve().parent
    else:
        raise ImportFailure(f"{text}: no such file (a Trackio project is its <project>.db file, or trackio:PROJECT "
                            "in Trackio's own store)")
    with _store(sqlite_storage, folder):
        where = sqlite_storage.SQLiteStorage.get_project_db_path(project)
        if not where.is_file():
            raise ImportFailure(f"Trackio project {project!r}: no such project ({where} does not exist)")
        try:
            runs = list(trackio.Api().runs(project))
            created = {str(r.get("id")): str(r.get("created_at") or "")
                       for r in sqlite_storage.SQLiteStorage.get_run_records(project)}
            chosen, notes = _pick_run(project, runs, created, run)
            logs = sqlite_storage.SQLiteStorage.get_logs(project, chosen.name, run_id=chosen.id)
            config = dict(chosen.config or {})
        except sqlite3.Error as e:  # not a Trackio store, or a damaged one
            raise ImportFailure(f"{where}: Trackio could not read it ({e})") from None
        except (ValueError, OSError) as e:
            raise ImportFailure(f"Trackio project {project!r}: {e}") from None
    media: set[str] = set()
    rows = []
    for log in logs:
        stamp = log.pop("timestamp", None)
        row = plain_row(log, media)
        wall = _seconds(stamp)
        if wall is not None:
            row.setdefault("wall_time", wall)
        rows.append(row)
    notes.append(f"Trackio run {chosen.name} ({chosen.id}) of project {project!r}: {len(rows)} logged rows")
    if media:
        notes.append(f"media values left out (histograms, images, tables): {listing(sorted(media))}")
    return rows, {"config": {k: v for k, v in config.items() if not k.startswith("_")},
                  "run": {"run_id": chosen.id, "run_name": chosen.name, "project": project,
                          "created_at": created.get(str(chosen.id))},
                  "notes": notes, "from": f"{where} run {chosen.name}"}


def _pick_run(project: str, runs: list[Any], created: dict[str, str], run: str | None) -> tuple[Any, list[str]]:
    """The run named ``run`` (a name or id), else the newest; the notes that say how it was chosen."""
    if not runs:
        raise ImportFailure(f"Trackio project {project!r} holds no runs")
    if run is not None:
        mine = [r for r in runs if run in (r.name, str(r.id))]
        if not mine:
            raise ImportFailure(f"--run {run}: no run of that name or id in Trackio project {project!r}; runs: "
                                + listing([r.name for r in runs]))
        if len(mine) > 1:
            raise ImportFailure(f"--run {run}: {len(mine)} runs of that name in Trackio project {project!r}; "
                                f"name one by id: {listing([str(r.id) for r in mine])}")
        return mine[0], []
    ordered = sorted(runs, key=lambda r: created.get(str(r.id), ""), reverse=True)
    if len(ordered) == 1:
        return ordered[0], []
    note = (f"Trackio project {project!r} holds {len(runs)} runs: imported the newest, {ordered[0].name}; "
            f"pass --run NAME for another ({listing([r.name for r in ordered[1:]])})")
    return ordered[0], [note]


def _seconds(stamp: Any) -> float | None:
    """An ISO 8601 timestamp as seconds since the epoch (``None`` when not one)."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


@contextmanager
def _store(sqlite_storage: Any, folder: Path | None) -> Iterator[None]:
    """Trackio's store folder pointed at ``folder`` for one read (``None``: Trackio's own)."""
    if folder is None:
        yield
        return
    saved = sqlite_storage.TRACKIO_DIR
    sqlite_storage.TRACKIO_DIR = folder
    try:
        yield
    finally:
        sqlite_storage.TRACKIO_DIR = saved
