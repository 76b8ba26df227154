"""The browser loads the chart code while the user reads the first page.

The first page that draws a plotly chart (Dynamics, after the Runs page) makes the browser load and
evaluate Streamlit's plotly chunk (``PlotlyChart.<hash>.js``, about 4.7 MB of JavaScript): about a
second before its charts draw, once per browser tab. ``prefetch_charts`` sends, once per session,
a small script that waits until the page is drawn and settled (Streamlit's running indicator gone,
nothing stale, no skeleton or spinner left, no element added for 0.3 s) and imports that chunk
itself: the same module the chart element imports later (one module per URL), so that page finds
it loaded. The first page is not delayed: the import starts only once it has settled.

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
#: Milliseconds without a new element before the page counts as settled.
QUIET_MS = 300

#: Polls every 50 ms (at most ``tries`` times) until the page is drawn and settled: no script run
#: shown as running, nothing stale, no skeleton or spinner left, and no element added for
#: ``QUIET_MS`` (an element whose code loads lazily, the Runs table's grid, mounts late); then,
#: after the next frame is painted, imports the chunk, its URL resolved against Streamlit's own
#: entry module.
_SCRIPT = """<script>
(() => {
  const name = %s;
  const entry = document.querySelector('script[type=module][src*="/static/js/index."]');
  if (!entry) return;
  const url = new URL(name, entry.src).href;
  const busy = ['stStatusWidget', 'stSkeleton', 'stSpinner'].map(t => `[data-testid=${t}]`).join(', ')
    + ', [data-stale=true]';
  let last = performance.now(), tries = 200;
  const added = new MutationObserver(() => { last = performance.now(); });
  added.observe(document.body, {childList: true, subtree: true});
  const wait = () => {
    const settled = !document.querySelector(busy) && performance.now() - last >= %d;
    if (!settled && --tries > 0) { setTimeout(wait, 50); return; }
    added.disconnect();
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
    st.sidebar.html(_SCRIPT % (json.dumps(name), QUIET_MS), unsafe_allow_javascript=True)


__all__ = ["QUIET_MS", "SENT", "plotly_chunk", "prefetch_charts"]
