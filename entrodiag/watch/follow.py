"""``entrodiag watch``: print a run's new flags and a live status line until it ends."""

from __future__ import annotations

import os
import sys
import time
from typing import IO

from ..analysis.collapse import at_or_above, severity_rank
from .watcher import Watcher, describe_flag

#: Run statuses after which nothing more will be written.
ENDED = ("finished", "failed", "interrupted", "stopped")
#: The exit code of ``watch --follow`` when the run ends ``interrupted`` (its writer died without
#: closing the run: killed, out of memory, the node lost), so a scheduler can tell it apart from
#: an ending (0), a flag at ``--fail-on`` (1) and bad input (2).
EXIT_INTERRUPTED = 3


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
    as soon as a flag at or above ``fail_on`` is raised, ``EXIT_INTERRUPTED`` (3) when a followed
    run ends interrupted, else 0.
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
            new = watcher.poll()
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
                interrupted = st.run_status == "interrupted"
                why = f" (exit {EXIT_INTERRUPTED}: its writer died without closing it)" if interrupted else ""
                print(f"the run is {st.run_status}; stopped watching{why}", file=out, flush=True)
                return EXIT_INTERRUPTED if interrupted else 0
            time.sleep(interval)
    finally:
        watcher.close()
