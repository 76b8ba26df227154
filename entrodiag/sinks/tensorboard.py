"""The TensorBoard sink: entrodiag's series as scalars of an event file, events as text.

TensorBoard has no open run to join: the sink writes its own event file into ``logdir``
(default: the run directory's ``tensorboard/`` folder; for a run on an object store,
``tensorboard/<run_id>`` under the working directory). Point TensorBoard at it, or give the
folder your other TensorBoard logs go to (TRL's ``logging_dir``).
"""

from __future__ import annotations

from pathlib import Path

from .base import PREFIX, TrackerSink, require


class TensorBoardSink(TrackerSink):
    """Scalars ``entrodiag/<column>`` at entrodiag's step; each event as the text ``entrodiag/events``.

    Args:
        logdir: the folder of the event file (see the module doc for the default).
    """

    name = "tensorboard"

    def __init__(self, logdir: str | Path | None = None) -> None:
        require("tensorboard", "tensorboard")
        self.logdir = None if logdir is None else Path(logdir)
        self.writer = None

    def start(self, meta: dict) -> None:
        super().start(meta)
        if self.logdir is None:
            local = meta.get("local_dir")
            self.logdir = Path(local) / "tensorboard" if local else Path("tensorboard") / str(meta.get("run_id"))

    def _open(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.logdir))
        return self.writer

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        w = self._open()
        for k, v in values.items():
            w.add_scalar(k, v, step)

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        self._open().add_text(PREFIX + "events", f"**{title}**: {text}", step)

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
