"""Where the trainer caches what it builds once: the tiny model's warm starts and the named
models' downloads and conversions (``$ENTRODIAG_CACHE`` or ``~/.cache/entrodiag``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$ENTRODIAG_CACHE`` or ``~/.cache/entrodiag``."""
    return Path(os.environ.get("ENTRODIAG_CACHE") or Path.home() / ".cache" / "entrodiag")
