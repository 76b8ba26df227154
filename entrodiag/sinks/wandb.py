"""The Weights & Biases sink: entrodiag's series in the user's W&B run, or in one of its own.

The run is found when first needed (on the sinks' thread): ``wandb.run`` when the
user's code (or TRL's ``report_to="wandb"``) has one open, else a new run (project
``$WANDB_PROJECT`` or ``entrodiag``, named after the entrodiag run). ``entrodiag/*`` is plotted
against ``entrodiag/step``, entrodiag's own step axis (defined once per run, the user's too), so
that the series never clash with the step counter of a run another library drives. Flags become
W&B alerts when the run is online.

In a run it joins, the values are logged with ``commit=False``: they join the run's pending row
(the one its owner's next ``log`` commits). A row holds one value per key, and the sinks' thread
can hand over several entrodiag steps between two rows of the owner's, so before logging a new
entrodiag step the sink asks the run for its current row (``run.step``). If that row still holds
an earlier entrodiag step of the sink's:

- in TRL's run (``source`` ``trl`` with ``report_to`` naming wandb: transformers' W&B callback
  and TRL log without ``step=``), the sink commits that row (``log({}, commit=True)``) and logs
  into the next one: every entrodiag step gets a row (a Recorder you build yourself, ``source``
  ``custom``, never commits: inside TRL's run it needs ``source="trl"`` with ``report_to`` in its
  ``config``, or ``WandbSink(commit_rows=True)``, to commit);
- in a run of the user's, it does not: a commit advances W&B's ``_step``, and W&B drops a later
  ``log(..., step=k)`` whose ``k`` is below it, a second ``log`` at the user's current ``step=``
  included, so no number of the sink's commits is safe for a user who logs with ``step=``. The
  newer entrodiag step replaces the earlier one in the pending row (``replaced`` counts them,
  warned once, written to the run's summary as ``entrodiag/steps_replaced`` at close); the run
  folder keeps every step. A user who logs without ``step=`` loses nothing by the commits:
  ``WandbSink(commit_rows=True)`` (a row the user is building with ``commit=False`` may then be
  split in two, nothing lost).

In ``mode="shared"`` runs (several writing processes; W&B has no step to ask there) and
``mode="disabled"`` ones (a no-op run) the values join the pending row as they come. A joined run
its owner finishes before the Recorder closes fails the sink's next log at once (the sink set
counts it and switches the sink off): close the Recorder first.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .base import PREFIX, TrackerSink, require

log = logging.getLogger("entrodiag")

STEP_KEY = PREFIX + "step"


class WandbSink(TrackerSink):
    """Logs to ``wandb.run`` (the user's) or a run it starts and finishes itself.

    Args:
        project: the project of a run the sink starts (default ``$WANDB_PROJECT`` or ``entrodiag``).
        commit_rows: in a run it joins, commit the pending row when it holds an earlier entrodiag
            step (every step gets a row; safe only where nobody logs with ``step=``); default:
            in TRL's run only (see the module's docstring).
        **init: more ``wandb.init`` arguments for a run the sink starts (``entity``, ``dir``, ``mode``, ...).
    """

    name = "wandb"

    def __init__(self, project: str | None = None, commit_rows: bool | None = None, **init: Any) -> None:
        self.wandb = require("wandb", "wandb")
        self.project = project
        self.commit_rows = commit_rows
        self.init = init
        self.run = None
        self.owned = False
        self.defined = None  # the run whose entrodiag/* metrics are defined
        #: (W&B row, entrodiag step) of the sink's last log in a run it joined
        self.pending: tuple[int, int] | None = None
        #: entrodiag steps replaced by a newer one in a row of the user's run (see the module's docstring)
        self.replaced = 0

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
        if self.owned:
            run.log({STEP_KEY: step, **values})
            return
        if self.wandb.run is not run:  # finished by its owner: W&B's run.step would wait 30 s on it
            raise RuntimeError("the W&B run was finished before entrodiag's sinks closed: "
                               "close the Recorder first")
        # shared: several writers, no step to ask; disabled: a no-op run whose step is always 0
        row = None if run.settings.mode in ("shared", "disabled") else self._row(run, step)
        run.log({STEP_KEY: step, **values}, commit=False)
        self.pending = None if row is None else (row, step)

    def _row(self, run, step: int) -> int:
        """The joined run's row that entrodiag ``step`` goes into: the pending one, committed first
        when it holds an earlier step of the sink's and rows may be committed."""
        row = run.step
        if self.pending is None or self.pending[0] != row or self.pending[1] == step:
            return row  # the row holds nothing of ours, or this very step (an event beside its numbers)
        if self.commit_rows if self.commit_rows is not None else trl_run(self.meta):
            run.log({}, commit=True)
            return run.step
        self.replaced += 1
        if self.replaced == 1:
            log.warning("W&B: entrodiag steps arrive faster than the rows of your run advance; a newer "
                        "step replaces the previous one in W&B (counted as entrodiag/steps_replaced; the "
                        "run folder keeps every step). If you log without step=, "
                        "WandbSink(commit_rows=True) keeps them all")
        return row

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        run = self._open()
        run.summary[f"{PREFIX}last_{kind}"] = f"step {step}: {title}: {text}"
        if kind == "flag" and not run.offline:
            level = {"critical": "ERROR", "warning": "WARN"}.get(severity or "", "INFO")
            run.alert(title=title, text=text, level=getattr(self.wandb.AlertLevel, level))

    def close(self, status: str) -> None:
        if self.run is not None and self.replaced:
            self.run.summary[PREFIX + "steps_replaced"] = self.replaced
        if self.owned and self.run is not None:
            self.run.finish(exit_code=0 if status in ("finished", "stopped") else 1)


def trl_run(meta: dict) -> bool:
    """Whether the recorded run is TRL's with ``report_to`` naming wandb (its W&B rows logged
    without ``step=``, by transformers' callback and TRL)."""
    if meta.get("source") != "trl":
        return False
    report_to = (meta.get("config") or {}).get("report_to") or []
    return bool({"wandb", "all"} & set([report_to] if isinstance(report_to, str) else report_to))
