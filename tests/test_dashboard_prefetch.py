"""The dashboard's chart code loaded while the user reads the first page (``app_prefetch``), and the
analysis layer importable without scipy (``analysis.stats`` imports it at first use)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest


def _app() -> None:
    import streamlit as st

    from entrodiag.app.app_prefetch import prefetch_charts

    st.title("a page")
    prefetch_charts()


def test_the_plotly_chunk_is_imported_once_per_session():
    """The installed Streamlit has exactly one plotly chunk (a Streamlit whose build renames it
    fails here, not silently in the browser); its name goes to the browser once, in a script the
    first page sends, as the argument of a dynamic import."""
    from entrodiag.app.app_prefetch import plotly_chunk

    name = plotly_chunk()
    assert name is not None and (Path(st.__file__).parent / "static" / "static" / "js" / name).is_file()
    at = AppTest.from_function(_app).run()
    sent = at.get("html")
    assert len(sent) == 1 and sent[0].proto.unsafe_allow_javascript
    assert f'const name = "{name}";' in sent[0].proto.body and "import(url)" in sent[0].proto.body
    assert not at.run().get("html")  # the next script run of the session sends nothing


def test_the_analysis_layer_imports_no_scipy():
    """``entrodiag analyze`` starts reading the token rows before scipy is imported (about 0.1-0.3 s):
    the analysis layer imports it at the first statistic that needs it."""
    code = ("import sys, entrodiag.analysis, entrodiag.analysis.summary; "
            "assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if m.startswith('scipy'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
