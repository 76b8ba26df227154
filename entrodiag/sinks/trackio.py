"""The Trackio sink: entrodiag's series in the user's current Trackio run, or in one it starts
(project ``$TRACKIO_PROJECT`` or ``entrodiag``; its store is Trackio's, ``$TRACKIO_DIR``). A
flag is also a Trackio alert (``Run.alert``: its dashboard and webhooks show it).

Trackio's current run belongs to the user's context, so it is looked up in the Recorder's
constructor; the sink then logs through that ``Run`` object from the sinks' thread.
"""

from __future__ import annotations

import os

from .base import TrackerSink, require


class TrackioSink(TrackerSink):
    """Args:
        project: the project of a run the sink starts.
    """

    name = "trackio"

    def __init__(self, project: str | None = None) -> None:
        self.trackio = require("trackio", "trackio")
        self.project = project
        self.run = None
        self.owned = False

    def start(self, meta: dict) -> None:
        super().start(meta)
        from trackio.context_vars import current_run

        self.run = current_run.get()

    def _open(self):
        if self.run is None:
            self.run = self.trackio.init(
                project=self.project or os.environ.get("TRACKIO_PROJECT") or "entrodiag",
                name=str(self.meta.get("run_id") or "entrodiag"), config=self.meta.get("config") or {})
            self.owned = True
        return self.run

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._open().log(values, step=step)

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        if kind == "flag":
            level = {"critical": "ERROR", "warning": "WARN"}.get(severity or "", "INFO")
            self._open().alert(title=title, text=text, level=getattr(self.trackio.AlertLevel, level), step=step)

    def close(self, status: str) -> None:
        if self.owned and self.run is not None:
            self.run.finish()
