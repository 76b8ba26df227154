"""The run an analysis reads, and the error it raises when that run cannot support it.

``RunLike`` is what every analysis function accepts (a ``Run`` or a path to a run directory);
``as_run`` resolves it through ``entrodiag.load_run``. ``AnalysisError`` says what to log or change.
"""

from __future__ import annotations

import os
from typing import Union

from ..store.reader import Run, load_run

RunLike = Union[Run, str, "os.PathLike[str]"]


class AnalysisError(ValueError):
    """The run (or data) cannot support this analysis; the message says what to log or change."""


def as_run(run: RunLike) -> Run:
    """A ``Run`` as is; a path through ``load_run`` (a run dir or a folder holding one run)."""
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, os.PathLike)):
        return load_run(run)
    raise TypeError(f"expected a Run or a path to a run directory, got {type(run).__name__}")
