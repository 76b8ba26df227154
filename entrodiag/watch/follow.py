"""``entrodiag watch``: print a run's new flags and a live status line until it ends."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO

from ..analysis.collapse import at_or_above, severity_rank
from ..analysis.jsonable import finite
from ..schemas import stamp
from ..store.meta import ENDED
from ..store.rundir import RunError
from ..store.schema import RUN_JSON
from .watcher import Watcher, WatchStatus, describe_flag

#: ``watch --follow``'s exit code when the run ends ``interrupted`` (its writer died without
#: closing the run: killed, out of memory, the node lost).
EXIT_INTERRUPTED = 3
#: ... when the run ends ``failed`` (its trainer recorded a failure: an exception ended it).
EXIT_FAILED = 4
#: ... when the run ends ``stopped`` (the trainer stopped it on a flag, ``--stop-on``, or on
#: SIGTERM/SIGINT; ``train --resume`` continues it).
EXIT_STOPPED = 5
#: ... when the run disappears while followed (its run.json or folder was removed).
EXIT_GONE = 6
#: ``watch --follow``'s exit code for each way a run ends; with 1 (a flag at ``--fail-on``) and 2
#: (not a run, bad input) a scheduler tells every outcome apart. Only ``finished`` is 0.
EXIT_CODES = {"finished": 0, "interrupted": EXIT_INTERRUPTED, "failed": EXIT_FAILED, "stopped": EXIT_STOPPED}
#: What each ending code means, as ``watch`` prints it.
_WHY = {EXIT_INTERRUPTED: "its writer died without closing it", EXIT_FAILED: "its trainer recorded a failure",
        EXIT_STOPPED: "stopped before its last step; train --resume continues it"}


def follow(
    run_dir: str | os.PathLike,
    *,
    keep_following: bool = False,
    interval: float = 10.0,
    fail_on: str | None = None,
    alerts_config: str | os.PathLike | None = None,
    thresholds: dict[str, float] | None = None,
    floor_frac: float = 0.5,
    record_events: bool = True,
    out: IO[str] | None = None,
    metric: str | None = None,
    as_json: bool = False,
) -> int:
    """Watch a run: each new flag once (with evidence and advice), then a status line.

    Without ``keep_following`` it reads the run once. With it, it polls every ``interval``
    seconds until the run ends (finished, failed, interrupted or stopped); the status is decided
    at every poll, also when no file changed, so a trainer killed with SIGKILL is seen as
    ``interrupted`` at the next poll on its host (elsewhere once its heartbeat is stale). Returns 1
    as soon as a flag at or above ``fail_on`` is raised; read once, 0; followed, the code of how
    the run ended (``EXIT_CODES``: 0 finished, 3 interrupted, 4 failed, 5 stopped) or ``EXIT_GONE``
    (6) when its run.json disappears. A path that is not a run raises ``RunError`` (exit 2).
    ``as_json``: each line is a JSON event (``status_event`` and friends; schema
    ``entrodiag/schemas/watch-event.schema.json``) instead of text.
    """
    if interval <= 0:
        raise ValueError(f"--interval must be positive, got {interval}")
    if fail_on is not None:
        severity_rank(fail_on)
    out = out or sys.stdout
    alerts = None
    if alerts_config is not None:
        from .alerts import load_alert_config

        alerts = load_alert_config(alerts_config)
    watcher = Watcher(run_dir, thresholds=thresholds, floor_frac=floor_frac, alerts=alerts,
                      events="file" if record_events else None, metric=metric)
    last_line = last_metric = None

    def say(text: str, event: dict) -> None:
        print(json.dumps(stamp(event), allow_nan=False, default=str) if as_json else text, file=out, flush=True)

    try:
        while True:
            try:
                new = watcher.poll()
            except (RunError, OSError):
                if _run_json_exists(watcher.path):
                    raise
                say(f"{watcher.path} is no longer a run (its run.json was removed); stopped watching "
                    f"(exit {EXIT_GONE})", end_event("removed", None, EXIT_GONE, "its run.json was removed"))
                return EXIT_GONE
            for flag in new:
                say(describe_flag(flag, watcher.status.step),
                    {"event": "flag", "step": watcher.status.step, "flag": flag.to_dict()})
            st = watcher.status
            if st.metric and (st.metric, st.metric_label) != last_metric:  # which metric is R, and why
                say(f"R = {st.metric} ({st.metric_label}): {st.metric_reason}",
                    {"event": "metric", "metric": st.metric, "label": st.metric_label, "reason": st.metric_reason})
                last_metric = (st.metric, st.metric_label)
            line = st.line()
            if line != last_line:
                say(line, status_event(st))
                last_line = line
            if fail_on is not None and at_or_above(new, fail_on):
                say(f"a {fail_on} (or worse) flag was raised: exit 1",
                    end_event("fail_on", st.run_status, 1, f"a {fail_on} (or worse) flag was raised"))
                return 1
            if not keep_following:
                if as_json:
                    say("", end_event("read_once", st.run_status, 0, "read once"))
                return 0
            if st.run_status in ENDED:
                code = EXIT_CODES[st.run_status]
                why = f" (exit {code}: {_WHY[code]})" if code else ""
                say(f"the run is {st.run_status}; stopped watching{why}",
                    end_event("ended", st.run_status, code, f"the run is {st.run_status}" + (f": {_WHY[code]}" if code else "")))
                return code
            time.sleep(interval)
    finally:
        watcher.close()


def status_event(st: WatchStatus) -> dict:
    """The ``status`` event of ``watch --json``: the live status's fields and its text line."""
    fc = st.forecast
    return {"event": "status", "run_status": st.run_status, "step": st.step, "entropy": finite(st.entropy),
            "reward": finite(st.reward), "metric": st.metric, "accuracy": finite(st.accuracy),
            "ceiling": finite(st.ceiling), "law_status": st.law_status,
            "asymptote": finite(st.asymptote), "mid_step": finite(st.mid_step), "compute_status": st.compute_status,
            "forecast": None if fc is None else fc.to_dict(), "active_flags": st.active_flags, "line": st.line()}


def end_event(reason: str, run_status: str | None, exit_code: int, message: str) -> dict:
    """The ``end`` event of ``watch --json``: why watching stopped and the exit code."""
    return {"event": "end", "reason": reason, "run_status": run_status, "exit_code": exit_code, "message": message}


def _run_json_exists(path) -> bool:
    """Whether the run at ``path`` (a ``Path`` or an object-store ``Location``) still has its
    run.json; a check that itself fails counts as present (the error is then reported as is)."""
    try:
        return (path / RUN_JSON).exists()
    except OSError:
        return True
