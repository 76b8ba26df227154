"""The Weights & Biases sink: entrodiag's series in the user's W&B run, or in one of its own.

The run is found when first needed (on the sinks' thread): ``wandb.run`` when the
user's code (or TRL's ``report_to="wandb"``) has one open, else a new run (project
``$WANDB_PROJECT`` or ``entrodiag``, named after the entrodiag run). ``entrodiag/*`` is plotted
against ``entrodiag/step``, entrodiag's own step axis (defined once per run, the user's too), so
that the series never clash with the step counter of a run another library drives; in the user's
run they are logged with ``commit=False``, joining its current row, so that they never advance
its ``_step``. Flags become W&B alerts when the run is online.
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
        self.defined = None  # the run whose entrodiag/* metrics are defined

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
        if self.defined is not self.run:  # the user's run as well as our own
            self.run.define_metric(STEP_KEY)
            self.run.define_metric(PREFIX + "*", step_metric=STEP_KEY)
            self.defined = self.run
        return self.run

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        run = self._open()
        # in the user's run, never advance its _step: the values join its current row
        run.log({STEP_KEY: step, **values}, commit=None if self.owned else False)

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        run = self._open()
        run.summary[f"{PREFIX}last_{kind}"] = f"step {step}: {title}: {text}"
        if kind == "flag" and not run.offline:
            level = {"critical": "ERROR", "warning": "WARN"}.get(severity or "", "INFO")
            run.alert(title=title, text=text, level=getattr(self.wandb.AlertLevel, level))

    def close(self, status: str) -> None:
        if self.owned and self.run is not None:
            self.run.finish(exit_code=0 if status in ("finished", "stopped") else 1)
