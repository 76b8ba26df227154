"""The Weights & Biases sink: entrodiag's series in the user's W&B run, or in one of its own.

The run is found when first needed (on the Recorder's writer thread): ``wandb.run`` when the
user's code (or TRL's ``report_to="wandb"``) has one open, else a new run (project
``$WANDB_PROJECT`` or ``entrodiag``, named after the entrodiag run). ``entrodiag/*`` is plotted
against ``entrodiag/step``, entrodiag's own step axis, so that the series never clash with the
step counter of a run another library drives. Flags become W&B alerts when the run is online.
"""

from __future__ import annotations

import os
from typing import Any

from .base import PREFIX, TrackerSink, require

STEP_KEY = PREFIX + "step"


class WandbSink(TrackerSink):
    """Logs to ``wandb.run`` (the user's) or a run it starts and finishes itself.

    Args:
        project: the project of a run the sink starts (default ``$WANDB_PROJECT`` or ``entrodiag``).
        **init: more ``wandb.init`` arguments for a run the sink starts (``entity``, ``dir``, ``mode``, ...).
    """

    name = "wandb"

    def __init__(self, project: str | None = None, **init: Any) -> None:
        self.wandb = require("wandb", "wandb")
        self.project = project
        self.init = init
        self.run = None
        self.owned = False

    def start(self, meta: dict) -> None:
        super().start(meta)
        self.run = self.wandb.run

    def _open(self):
        if self.run is None:
            self.run = self.wandb.run  # opened since the Recorder was built (TRL opens it at train())
            if self.run is None:
                self.run = self.wandb.init(
                    project=self.project or os.environ.get("WANDB_PROJECT") or "entrodiag",
                    name=str(self.meta.get("run_id") or "entrodiag"), config=self.meta.get("config") or {},
                    **self.init)
                self.owned = True
            self.run.define_metric(STEP_KEY)
            self.run.define_metric(PREFIX + "*", step_metric=STEP_KEY)
        return self.run

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._open().log({STEP_KEY: step, **values})

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        run = self._open()
        run.summary[f"{PREFIX}last_{kind}"] = f"step {step}: {title}: {text}"
        if kind == "flag" and not run.offline:
            level = {"critical": "ERROR", "warning": "WARN"}.get(severity or "", "INFO")
            run.alert(title=title, text=text, level=getattr(self.wandb.AlertLevel, level))

    def close(self, status: str) -> None:
        if self.owned and self.run is not None:
            self.run.finish(exit_code=0 if status in ("finished", "stopped") else 1)
