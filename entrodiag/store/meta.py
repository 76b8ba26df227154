"""run.json as the readers take it: checked once when a run is opened, and the run's status.

``check_meta`` refuses a run.json whose fields have types the readers do not use (``META_FIELDS``);
``run_status`` is the one rule for ``interrupted`` (a running run whose writer is known dead).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time

from .rundir import RunError, RunPath
from .schema import RUN_JSON, SCHEMA

#: A running run whose heartbeat is older than this many heartbeat intervals is interrupted.
STALE_HEARTBEATS = 3.0


def read_meta(run_dir: RunPath) -> dict:
    """run.json of the run at ``run_dir``, checked (``check_meta``); ``RunError`` when unreadable."""
    try:
        meta = json.loads((run_dir / RUN_JSON).read_bytes().decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{run_dir / RUN_JSON} is unreadable ({e}); is the disk full or the file cut?") from None
    return check_meta(meta, run_dir)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_TEXT = (lambda v: isinstance(v, str), "text")
_OBJECT = (lambda v: isinstance(v, dict), "a JSON object")
_LIST = (lambda v: isinstance(v, list), "a list")
#: run.json fields the reader and the analyses interpret: the test each value must pass and what
#: it must be. A null or absent field is always accepted, except the heartbeat's two (numbers).
META_FIELDS: dict[str, tuple] = {
    **{k: _TEXT for k in ("run_id", "status", "created", "finished", "source", "model", "task", "intervention",
                          "host", "entrodiag_version", "entropy_control")},
    **{k: _OBJECT for k in ("config", "recorder", "imported", "entropy_semantics")},
    **{k: _LIST for k in ("resumed", "failed_checkpoints")},
    "heartbeat": (_number, "a number (unix seconds)"),
    "heartbeat_interval_s": (lambda v: _number(v) and v > 0, "a positive number of seconds"),
    "entropy_temperature": (lambda v: _number(v) and v > 0, "a positive number"),
    "pid": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a process id (an integer)"),
    "world_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "entropy_hist_edges": (lambda v: isinstance(v, list) and all(x is None or _number(x) for x in v),
                           "a list of numbers (the last may be null)"),
}
_NOT_NULL = ("heartbeat", "heartbeat_interval_s")


def check_meta(meta, run_dir: RunPath | str) -> dict:
    """``meta`` (run.json of the run at ``run_dir``) when it is an entrodiag run.json of this
    schema whose fields (``META_FIELDS``) have the types the readers use; else ``RunError`` naming
    the file and the first bad field, e.g. ``runs/a/run.json: field 'heartbeat_interval_s' is
    "ten"; it must be a positive number of seconds``. Checked once, when run.json is read."""
    where = f"{str(run_dir).rstrip('/')}/{RUN_JSON}"
    if not isinstance(meta, dict) or not str(meta.get("schema", "")).startswith("entrodiag/"):
        raise RunError(f"{where} is not an entrodiag run.json (no 'schema' field)")
    if meta["schema"] != SCHEMA:
        raise RunError(f"{run_dir} uses schema {meta['schema']}, this entrodiag reads {SCHEMA}; upgrade entrodiag")
    for name, (ok, what) in META_FIELDS.items():
        if name in meta and (meta[name] is not None or name in _NOT_NULL) and not ok(meta[name]):
            shown = json.dumps(meta[name], default=str)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise RunError(f"{where}: field {name!r} is {shown}; it must be {what} (fix or remove the field)")
    return meta


def writer_alive(meta: dict) -> bool:
    """False when the run's writer is known dead: stale heartbeat, or a dead pid on this host."""
    interval = float(meta.get("heartbeat_interval_s", 10.0))
    if time.time() - float(meta.get("heartbeat", 0.0)) > STALE_HEARTBEATS * interval + 1.0:
        return False
    if meta.get("host") == socket.gethostname() and meta.get("pid"):
        try:
            os.kill(int(meta["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OSError):
            pass
    return True


#: Run statuses after which nothing more will be written (``run_status``).
ENDED = ("finished", "failed", "interrupted", "stopped")


def run_status(meta: dict) -> str:
    """A run's status from its run.json: the recorded one (running | finished | failed | stopped),
    except that a ``running`` run whose writer is known dead (a heartbeat older than
    ``STALE_HEARTBEATS`` intervals, or a dead pid on this host) is ``interrupted``. The one rule of
    ``inspect``, ``watch``, the dashboard and queries; it reads the clock, so a caller that holds
    an unchanged run.json asks again to learn that its writer died."""
    status = str(meta.get("status", "unknown"))
    if status == "running" and not writer_alive(meta):
        return "interrupted"
    return status
