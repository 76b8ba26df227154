"""What a freshly started dashboard prepares before (and while) its first visitor's browser loads:
the imports of every page (the analysis layer, scipy, plotly's figure classes) and the numbers of
the first page (the Runs page: the root's runs, their table rows, the summary of the run the sidebar
selects at start), so that the first script run finds them imported and cached.

``entrodiag dashboard`` starts ``warm_up`` in a background thread once Streamlit's runtime runs
(``dashboard_server.py``) and serves when it is over, or after ``SERVE_AFTER_S`` seconds (a root of
many runs). A script run that starts while the warm-up still imports waits for its imports (``wait``:
two threads importing the analysis layer at once can see its modules half initialised), within
``WAIT_S`` seconds of the warm-up's start in all; the first page's numbers need no wait, as
``st.cache_data`` computes each once for every caller.
A failure here is logged and counted (``State.errors``), never raised: the page then does the work
itself, as without the warm-up.
"""

from __future__ import annotations

import ast
import importlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger("entrodiag.dashboard")
#: The most seconds the server waits for the warm-up before it serves.
SERVE_AFTER_S = 10.0
#: The most seconds after the warm-up's start that a script run waits for its imports.
WAIT_S = 60.0
#: Imported at first use by the analysis layer (``analysis.stats``), so not named by the pages'
#: import lines: imported with them, before any script run.
LAZY_IMPORTS = ("scipy.special", "scipy.optimize")


@dataclass
class State:
    """The warm-up's progress: ``started_at`` (``time.monotonic()``; ``None``: not started);
    ``imports_done`` once the pages' modules are imported; ``done`` once it is over; seconds of each
    part; errors met."""

    started_at: float | None = None
    imports_done: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


STATE = State()


def page_imports(folder: Path | None = None) -> list[str]:
    """The modules the page scripts (``page_*.py``) and the entry script import, from their import
    lines (the scripts themselves draw when run, so they are read, not imported)."""
    folder = folder or Path(__file__).resolve().parent
    names: list[str] = []
    for script in sorted(folder.glob("page_*.py")) + [folder / "streamlit_app.py"]:
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return list(dict.fromkeys(n for n in names if n != "__future__"))


def warm_up(state: State = STATE) -> None:
    """Import what the pages import, then compute what the first page shows (see the module
    docstring). Sets ``state.imports_done`` once the imports are over and ``state.done`` when it
    is, whatever happened."""
    try:
        t0 = time.perf_counter()
        for name in [*page_imports(), *LAZY_IMPORTS]:
            try:
                importlib.import_module(name)
            except Exception as e:  # noqa: BLE001 - logged and counted; the page reports it itself
                state.errors.append(f"import {name}: {e}")
        state.seconds["imports"] = time.perf_counter() - t0
        state.imports_done.set()
        t0 = time.perf_counter()
        first_page(state)
        state.seconds["first_page"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - the warm-up never stops the server
        state.errors.append(f"{type(e).__name__}: {e}")
    finally:
        state.imports_done.set()
        state.done.set()
        for error in state.errors:  # control characters of a run's name or an error escaped
            LOG.warning("entrodiag dashboard warm-up: %s", _escaped(error))


def _escaped(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``), so that a log line cannot carry a
    terminal escape sequence of a hostile run name."""
    return text if text.isprintable() else repr(text)[1:-1]


def first_page(state: State) -> None:
    """The Runs page's numbers for the configured root: its runs, their table rows (or the
    background fill for many new runs) and the summary of the run selected at start."""
    from entrodiag.app import app_data

    root = app_data.runs_root()
    discovery = app_data.discover(root)
    if not discovery.runs:
        return
    app_data.runs_overview_lazy(root)
    readable = [e.path for e in discovery.runs if e.error is None]
    if readable:  # the sidebar's default selection (app_ui.sidebar)
        try:
            app_data.summary(readable[0])
        except Exception as e:  # noqa: BLE001 - the page shows the error itself
            state.errors.append(f"summary of {readable[0]}: {e}")


def start(state: State = STATE) -> threading.Thread:
    """Run ``warm_up`` in a daemon thread and return it."""
    state.started_at = time.monotonic()
    thread = threading.Thread(target=warm_up, args=(state,), name="entrodiag-dashboard-warm-up", daemon=True)
    thread.start()
    return thread


def wait(state: State = STATE, timeout: float = WAIT_S) -> bool:
    """Wait until the warm-up's imports are over, at most until ``timeout`` seconds after its start
    (one budget for every script run of every session; no wait when it never started: ``streamlit
    run`` of the entry script, tests); whether they are."""
    if state.started_at is None:
        return True
    return state.imports_done.wait(max(0.0, state.started_at + timeout - time.monotonic()))
