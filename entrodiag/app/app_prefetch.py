"""The browser loads the chart code while the user reads the first page.

The first page that draws a plotly chart (Dynamics, after the Runs page) makes the browser load and
evaluate Streamlit's plotly chunk (``PlotlyChart.<hash>.js``, about 4.7 MB of JavaScript): about a
second before its charts draw, once per browser tab. ``prefetch_charts`` sends, once per session,
a small script that waits until the page is drawn (Streamlit's running indicator gone, nothing
stale, no skeleton or spinner left) and imports that chunk itself: the same module the chart element imports
later (one module per URL), so that page finds it loaded. The first page is not delayed: the
import starts only once the page is drawn.

Nothing is sent when the installed Streamlit has no such chunk (another build) or when the import
fails in the browser (the chart element then loads it as before).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import streamlit as st

#: Session-state key: the prefetch script was sent to this browser tab.
SENT = "entrodiag_prefetch_sent"

#: Polls every 50 ms (at most ``tries`` times) until the page is drawn: no script run shown as
#: running, nothing stale, no skeleton or spinner left; then, after the next frame is painted,
#: imports the chunk, its URL resolved against Streamlit's own entry module.
_SCRIPT = """<script>
(() => {
  const name = %s;
  const entry = document.querySelector('script[type=module][src*="/static/js/index."]');
  if (!entry) return;
  const url = new URL(name, entry.src).href;
  const busy = '[data-testid=stStatusWidget], [data-stale=true], [data-testid=stSkeleton], [data-testid=stSpinner]';
  let tries = 200;
  const wait = () => {
    if (document.querySelector(busy) && --tries > 0) { setTimeout(wait, 50); return; }
    requestAnimationFrame(() => setTimeout(() => import(url).catch(() => {}), 0));
  };
  setTimeout(wait, 50);
})();
</script>"""


@cache
def plotly_chunk() -> str | None:
    """The file name of the installed Streamlit's plotly chunk (``PlotlyChart.<hash>.js``), or
    ``None`` when there is not exactly one."""
    js = Path(st.__file__).parent / "static" / "static" / "js"
    found = sorted(p.name for p in js.glob("PlotlyChart.*.js"))
    return found[0] if len(found) == 1 else None


def prefetch_charts() -> None:
    """Send the chunk-loading script to this browser tab, once per session (in the sidebar, after
    everything else of the page); nothing when the chunk is not found."""
    name = plotly_chunk()
    if name is None or st.session_state.get(SENT):
        return
    st.session_state[SENT] = True
    st.sidebar.html(_SCRIPT % json.dumps(name), unsafe_allow_javascript=True)


__all__ = ["SENT", "plotly_chunk", "prefetch_charts"]
