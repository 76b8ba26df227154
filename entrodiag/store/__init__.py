"""The run-directory format (docs/run-directory.md): schema v1, a crash-safe writer, and a polars reader.

Imports nothing else of the project and no torch.
"""

from .merge import merge_ranks
from .run import Run, load_run
from .rundir import RunError, find_run_dir
from .schema import SCHEMA, TABLES
from .writer import RunWriter, event_row, write_events

__all__ = [
    "SCHEMA", "TABLES", "Run", "RunError", "RunWriter", "event_row", "find_run_dir", "load_run", "merge_ranks",
    "write_events",
]
