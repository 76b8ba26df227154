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
    seconds until the run ends (finished, failed, interrupted or stopped). Returns 1 as soon as
    a flag at or above ``fail_on`` is raised, else 0.
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
            if watcher.status.run_status in ENDED:
                print(f"the run is {watcher.status.run_status}; stopped watching", file=out, flush=True)
                return 0
            time.sleep(interval)
    finally:
        watcher.close()
