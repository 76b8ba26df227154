"""The trackers' own stores as import sources: which store a source names, and reading it.

``entrodiag import`` reads a run straight from where W&B, MLflow or Trackio keep it, each
through the tracker's own reader (``wandb_store``, ``mlflow_store``, ``trackio_store``); each
tracker is an optional extra (``entrodiag[wandb]``, ``[mlflow]``, ``[trackio]``), imported only
when such a source is read. What names which store:

- W&B: a run folder (``wandb/run-*`` or ``wandb/offline-run-*``, found by its ``run-*.wandb``
  file), the ``.wandb`` file itself, a ``wandb/`` folder (with ``--run ID`` when it holds several
  runs); a run path ``wandb:ENTITY/PROJECT/RUN_ID`` or a run's URL
  ``https://wandb.ai/ENTITY/PROJECT/runs/RUN_ID`` (online; needs W&B credentials).
- MLflow: a tracking URI: an ``mlruns`` folder (found by its experiments' ``meta.yaml``), an
  MLflow SQLite file (found by its tables) or ``sqlite:///...`` (any SQLAlchemy URI:
  ``postgresql://...``, ``mysql://...``), or a server ``http(s)://HOST:PORT``; with ``--run`` (a
  run id or name) or ``--experiment`` (a name or id).
- Trackio: a project's SQLite file (``<store>/<project>.db``, found by its tables), or
  ``trackio:PROJECT`` in the store Trackio itself uses (``$TRACKIO_DIR``, else
  ``$HF_HOME/trackio``); with ``--run NAME`` when the project holds several runs.

A tracker's URI or path is written to run.json, and shown in refusals, with any password in it
masked (``entrodiag.tracker_env.redacted``).
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from .failure import ImportFailure

#: the formats read from a tracker's store
TRACKER_FORMATS = ("wandb", "mlflow", "trackio")

#: URI schemes of an MLflow tracking store (a server, or a SQLAlchemy database)
MLFLOW_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql")

#: a W&B run's URL path: /ENTITY/PROJECT/runs/RUN_ID
_WANDB_RUN_URL = re.compile(r"^/(?P<entity>[^/]+)/(?P<project>[^/]+)/runs/(?P<run>[^/?#]+)/?$")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def tracker_uri(source: str) -> str | None:
    """The tracker a source that is not a local path names (``wandb``, ``mlflow``, ``trackio``),
    from its scheme: ``wandb:``, ``trackio:``, a W&B run URL, an MLflow URI; else ``None``."""
    low = source.lower()
    if low.startswith("wandb:"):
        return "wandb"
    if low.startswith("trackio:"):
        return "trackio"
    scheme, sep, _ = source.partition("://")
    if not sep or scheme.lower().split("+")[0] not in MLFLOW_SCHEMES:
        return None
    if scheme.lower() in ("http", "https") and wandb_url_path(source) is not None:
        return "wandb"
    return "mlflow"


def wandb_url_path(url: str) -> str | None:
    """``ENTITY/PROJECT/RUN_ID`` of a W&B run URL (``https://wandb.ai/E/P/runs/ID``), else ``None``."""
    m = _WANDB_RUN_URL.match(urllib.parse.urlsplit(url).path)
    return f"{m['entity']}/{m['project']}/{m['run']}" if m else None


def tracker_of_folder(p: Path) -> str | None:
    """``wandb`` for a W&B run folder or a ``wandb/`` folder of runs, ``mlflow`` for an ``mlruns``
    folder, else ``None``."""
    if any(p.glob("run-*.wandb")) or any(p.glob("*/run-*.wandb")):
        return "wandb"
    for meta in p.glob("*/meta.yaml"):  # an mlruns folder: one folder per experiment
        try:
            head = meta.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            continue
        if "experiment_id:" in head and "lifecycle_stage:" in head:
            return "mlflow"
    return None


def tracker_of_file(p: Path) -> str | None:
    """``wandb`` for a ``.wandb`` file; ``mlflow`` or ``trackio`` for an SQLite file holding that
    tracker's tables; else ``None``."""
    if p.suffix == ".wandb":
        return "wandb"
    try:
        with open(p, "rb") as f:
            if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                return None
    except OSError:
        return None
    tables = sqlite_tables(p)
    if {"experiments", "runs", "metrics"} <= tables:
        return "mlflow"
    if {"metrics", "configs"} <= tables:
        return "trackio"
    return None


def sqlite_tables(p: Path) -> set[str]:
    """The table names of the SQLite file ``p``, opened read-only (empty when unreadable)."""
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return set()


def plain_row(item: dict, media: set[str] | None = None, prefix: str = "") -> dict[str, Any]:
    """A logged row as plain values: nested dicts flattened with ``/``, ``"NaN"``/``"Infinity"``/
    ``"-Infinity"`` (how W&B and Trackio store them) as the floats they name, media (a dict with a
    ``_type``, or W&B's flattened ``NAME._type`` keys: histograms, images, tables) left out and
    their names added to ``media``.

    >>> plain_row({"a": {"b": 1}, "h": {"_type": "histogram"}, "x": "NaN"})
    {'a/b': 1, 'x': nan}
    """
    dropped = {k[: -len("._type")] for k in item if k.endswith("._type")}
    out: dict[str, Any] = {}
    for k, v in item.items():
        name = f"{prefix}{k}"
        if any(k == d or k.startswith(d + ".") for d in dropped) or (isinstance(v, dict) and "_type" in v):
            if media is not None:
                media.add(name.removesuffix("._type") if k.endswith("._type") else name)
            continue
        if isinstance(v, dict):
            out.update(plain_row(v, media, name + "/"))
        else:
            out[name] = _FLOATS.get(v, v) if isinstance(v, str) else v
    return out


def read_tracker(fmt: str, source: str | Path, *, run: str | None = None,
                 experiment: str | None = None) -> tuple[list[dict], dict]:
    """``(rows, meta)`` of the run ``source`` names in the store of tracker ``fmt`` (see the module
    docstring); ``meta`` as ``readers.read_history``'s, with ``from`` (where it was read) and ``run``
    (the tracker's id, name, ... of the run)."""
    if experiment is not None and fmt != "mlflow":
        raise ImportFailure(f"--experiment applies to MLflow stores; {source} is read as {fmt}")
    if fmt == "wandb":
        from .wandb_store import read_wandb

        return read_wandb(source, run=run)
    if fmt == "mlflow":
        from .mlflow_store import read_mlflow

        return read_mlflow(source, run=run, experiment=experiment)
    if fmt == "trackio":
        from .trackio_store import read_trackio

        return read_trackio(source, run=run)
    raise ImportFailure(f"unknown tracker {fmt!r}; trackers are {', '.join(TRACKER_FORMATS)}")
