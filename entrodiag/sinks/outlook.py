"""The entropy law's ceiling and the entropy forecast as tracker numbers (``entrodiag/outlook/*``).

They come from the watch's status (``entrodiag.watch.WatchStatus``): the in-process watch of the
built-in trainer sends them after each of its polls, and the Recorder once more at close (from
a status computed then on the whole run). ``SinkSet.outlook`` sends only the values that changed.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("entrodiag")

#: the forecast's fields that are sent (``EntropyForecast``), when set
FORECAST_FIELDS = ("floor", "predicted_step", "predicted_low", "predicted_high", "steps_left", "reached_step",
                   "half_life")


def outlook_values(status: Any) -> dict[str, float]:
    """``outlook/ceiling`` (only where the law fits) and ``outlook/forecast_<field>`` from a
    ``WatchStatus``."""
    values: dict[str, float] = {}
    if status.ceiling is not None:
        values["outlook/ceiling"] = float(status.ceiling)
    fc = status.forecast
    if fc is not None:
        for name in FORECAST_FIELDS:
            v = getattr(fc, name)
            if v is not None:
                values[f"outlook/forecast_{name}"] = float(v)
    return values


def run_outlook(run_dir: str | os.PathLike) -> tuple[int | None, dict[str, float]]:
    """The last recorded step of the run at ``run_dir`` and its outlook values (detectors, law and
    forecast run once on the whole run, as ``entrodiag watch`` would); ``(None, {})`` where that
    fails (logged): the run closes all the same."""
    from ..watch import Watcher

    try:
        watcher = Watcher(run_dir, events=None)
        watcher.poll(force=True)
    except Exception:
        log.info("entrodiag: no outlook sent to the trackers at close", exc_info=True)
        return None, {}
    return watcher.status.step, outlook_values(watcher.status)
