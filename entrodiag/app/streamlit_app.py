"""entrodiag dashboard: the entry script (``entrodiag dashboard`` runs it; from a checkout,
``ENTRODIAG_RUNS_ROOT=runs streamlit run entrodiag/app/streamlit_app.py`` works too).

Draws the sidebar (runs root, runs, live refresh) and runs the chosen page; each page is one file
beside this one in the package ``entrodiag.app`` and takes its numbers from ``entrodiag.analysis``
through the cached loaders of ``app_data``.
"""

from __future__ import annotations

import streamlit as st

from entrodiag.app import app_warmup

PAGES = [
    st.Page("page_runs.py", url_path="runs", title="Runs", icon=":material/table_rows:", default=True),
    st.Page("page_dynamics.py", url_path="dynamics", title="Dynamics", icon=":material/show_chart:"),
    st.Page("page_law.py", url_path="law", title="Entropy law", icon=":material/function:"),
    st.Page("page_collapse.py", url_path="collapse", title="Collapse", icon=":material/warning:"),
    st.Page("page_tokens.py", url_path="tokens", title="Tokens", icon=":material/text_fields:"),
    st.Page("page_compare.py", url_path="compare", title="Compare", icon=":material/compare_arrows:"),
]

st.set_page_config(page_title="entrodiag", page_icon=":material/monitoring:", layout="wide")
page = st.navigation(PAGES)
# On a just-started server the warm-up (app_warmup) may still be importing the pages' modules: wait
# for its imports before importing the app, as two threads importing the analysis layer at once can
# see its modules half initialised (its numbers need no wait: st.cache_data computes each once).
app_warmup.wait()

from entrodiag.app import app_prefetch, app_ui  # noqa: E402

app_ui.sidebar()
page.run()
app_prefetch.prefetch_charts()  # the chart code loads while the user reads this page
