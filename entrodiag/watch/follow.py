"""``entrodiag watch``: print a run's new flags and a live status line until it ends."""

from __future__ import annotations

import os
import sys
import time
from typing import IO

from ..analysis.collapse import at_or_above, severity_rank
from ..store.meta import ENDED
from ..store.rundir import RunError
from ..store.schema import RUN_JSON
from .watcher import Watcher, describe_flag

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
) -> int:
    """Watch a run: each new flag once (with evidence and advice), then a status line.

    Without ``keep_following`` it reads the run once. With it, it polls every ``interval``
    seconds until the run ends (finished, failed, interrupted or stopped); the status is decided
    at every poll, also when no file changed, so a trainer killed with SIGKILL is seen as
    ``interrupted`` at the next poll on its host (elsewhere once its heartbeat is stale). Returns 1
    as soon as a flag at or above ``fail_on`` is raised; read once, 0; followed, the code of how
    the run ended (``EXIT_CODES``: 0 finished, 3 interrupted, 4 failed, 5 stopped) or ``EXIT_GONE``
    (6) when its run.json disappears. A path that is not a run raises ``RunError`` (exit 2).
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
    try:
        while True:
            try:
                new = watcher.poll()
            except (RunError, OSError):
                if _run_json_exists(watcher.path):
                    raise
                print(f"{watcher.path} is no longer a run (its run.json was removed); stopped watching "
                      f"(exit {EXIT_GONE})", file=out, flush=True)
                return EXIT_GONE
            for flag in new:
                print(describe_flag(flag, watcher.status.step), file=out, flush=True)
            st = watcher.status
            if st.metric and (st.metric, st.metric_label) != last_metric:  # which metric is R, and why
                print(f"R = {st.metric} ({st.metric_label}): {st.metric_reason}", file=out, flush=True)
                last_metric = (st.metric, st.metric_label)
            line = st.line()
            if line != last_line:
                print(line, file=out, flush=True)
                last_line = line
            if fail_on is not None and at_or_above(new, fail_on):
                print(f"a {fail_on} (or worse) flag was raised: exit 1", file=out, flush=True)
                return 1
            if not keep_following:
                return 0
            if st.run_status in ENDED:
                code = EXIT_CODES[st.run_status]
                why = f" (exit {code}: {_WHY[code]})" if code else ""
                print(f"the run is {st.run_status}; stopped watching{why}", file=out, flush=True)
                return code
            time.sleep(interval)
    finally:
        watcher.close()


def _run_json_exists(path) -> bool:
    """Whether the run at ``path`` (a ``Path`` or an object-store ``Location``) still has its
    run.json; a check that itself fails counts as present (the error is then reported as is)."""
    try:
        return (path / RUN_JSON).exists()
    except OSError:
        return True
