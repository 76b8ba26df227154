"""The dashboard's warm-up (``entrodiag.app.app_warmup``): what a freshly started server prepares
before it serves: the pages' imports and the first page's numbers (the Runs table's rows in the
summary index, the summary of the run selected at start); failures counted, never raised."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from entrodiag.app import app_data, app_warmup  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "entrodiag" / "app"
SAMPLE = REPO / "data" / "sample-run"


def test_page_imports_are_the_scripts_import_lines():
    names = app_warmup.page_imports()
    for script in [*APP_DIR.glob("page_*.py"), APP_DIR / "streamlit_app.py"]:  # read here with a regex
        for line in re.findall(r"^(?:from (\S+) import|import (\S+))", script.read_text(), re.MULTILINE):
            module = line[0] or line[1]
            if module != "__future__":
                assert module in names, (script.name, module)
    assert "__future__" not in names and len(names) == len(set(names))


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A root holding a copy of the sample run, read with an empty cache folder."""
    shutil.copytree(SAMPLE, tmp_path / "runs" / "sample-run")
    monkeypatch.setenv(app_data.ROOT_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(app_data.METRIC_ENV, raising=False)
    app_data._indexes.clear()
    return tmp_path / "runs"


def test_warm_up_computes_the_first_page_once(root, monkeypatch):
    calls: list[str] = []
    analyze = app_data.analyze_run
    monkeypatch.setattr(app_data, "analyze_run", lambda run, **kw: calls.append(str(run.path)) or analyze(run, **kw))
    state = app_warmup.State()
    app_warmup.warm_up(state)
    assert state.done.is_set() and state.errors == []
    assert set(state.seconds) == {"imports", "first_page"}
    path = str(root / "sample-run")
    assert calls == [path]  # the summary of the run the sidebar selects at start
    summary = app_data.summary(path)  # the page's call: served from the cache
    assert calls == [path] and summary["run"]["steps"] == 120
    rows, fill = app_data.runs_overview_lazy(str(root))  # the Runs table's row is in the index
    assert fill is None and list(rows) == ["sample-run"]
    assert rows["sample-run"]["steps"] == 120


def test_warm_up_counts_errors_and_never_raises(root, monkeypatch):
    def broken(_root):
        raise OSError("disk gone")

    monkeypatch.setattr(app_data, "discover", broken)
    state = app_warmup.State()
    app_warmup.warm_up(state)  # does not raise
    assert state.done.is_set() and state.errors == ["OSError: disk gone"]


def test_wait():
    assert app_warmup.wait(app_warmup.State(), timeout=0)  # never started (streamlit run, tests): no wait
    state = app_warmup.State(started_at=time.monotonic())
    assert not app_warmup.wait(state, timeout=0.01)
    threading.Timer(0.05, state.imports_done.set).start()
    assert app_warmup.wait(state, timeout=5)


def test_wait_is_for_the_imports_within_one_budget_from_the_start(monkeypatch):
    """A script run waits for the warm-up's imports only (not its first page's numbers), and no later
    than ``WAIT_S`` after the warm-up started, however many script runs wait."""
    seen = []
    monkeypatch.setattr(app_warmup, "page_imports", lambda: [])
    monkeypatch.setattr(app_warmup, "first_page", lambda s: seen.append(app_warmup.wait(s, timeout=5)))
    state = app_warmup.State(started_at=time.monotonic())
    app_warmup.warm_up(state)
    assert seen == [True]  # waited for the imports while the first page was computed
    late = app_warmup.State(started_at=time.monotonic() - app_warmup.WAIT_S + 0.05)
    t0 = time.monotonic()
    assert not app_warmup.wait(late) and not app_warmup.wait(late)  # the second returns at once
    assert time.monotonic() - t0 < 1.0


def test_warm_up_log_lines_escape_control_characters(root, monkeypatch, caplog):
    def hostile(_root):
        raise OSError("run \x1b[2J\x1b]0;owned\x07 gone")

    monkeypatch.setattr(app_data, "discover", hostile)
    with caplog.at_level("WARNING", logger=app_warmup.LOG.name):
        app_warmup.warm_up(app_warmup.State())
    said = [r.getMessage() for r in caplog.records if r.name == app_warmup.LOG.name]
    assert said and all("\x1b" not in m and "\x07" not in m for m in said)
    assert any("\\x1b[2J" in m for m in said), said
