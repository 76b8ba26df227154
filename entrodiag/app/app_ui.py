"""Layout pieces shared by the pages: the sidebar (root, run picker, live refresh), the run picker
of single-run pages, empty states, live refresh, number formatting and escaping.

Text that comes from a run (token text, prompts, responses, run and folder names, metric and
evaluation names, model names, flag messages) is escaped wherever it is rendered: ``esc``
(``html.escape``) before any HTML (``st.html``), ``plot_text`` in plotly labels and hover text
(plotly draws a subset of HTML), ``md`` before anything Streamlit draws as Markdown: ``st.markdown``,
captions, alerts, headers, ``st.table`` cells, and the labels, values, deltas and ``help=`` tooltips of
metrics and widgets (an image there would be fetched from its host). Options of selectboxes and
multiselects and ``st.dataframe`` cells are plain text.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from entrodiag.analysis.ceilings import ceilings_line, compute_why
from entrodiag.analysis.verdicts import withheld_text
from entrodiag.app import app_data
from entrodiag.store import RunError

#: Refresh intervals offered for live runs (seconds).
INTERVALS = (2, 5, 10, 30, 60)
SEVERITY_COLORS = {"info": "#4c78a8", "warning": "#f58518", "critical": "#e45756"}
#: Markers of the run's events (flags raised live, alerts, failed alerts, switches, stops).
EVENT_SYMBOLS = {"flag": "triangle-down", "alert": "diamond", "alert_failed": "x", "switch": "star",
                 "stop": "square", "checkpoint_failed": "x-open"}
EVENT_COLORS = {"flag": "#4c78a8", "alert": "#54a24b", "alert_failed": "#e45756", "switch": "#b279a2",
                "stop": "#000000", "checkpoint_failed": "#b71c1c"}
STATUS_COLORS = {"running": "green", "finished": "blue", "interrupted": "orange", "failed": "red",
                 "stopped": "violet"}


@dataclass(frozen=True)
class Context:
    """What the sidebar chose: the root and its runs, the selected run paths, live refresh."""

    root: str
    discovery: app_data.Discovery
    selected: tuple[str, ...]
    live: bool
    interval: int

    def name(self, path: str) -> str:
        """The run's name relative to the root."""
        return next((e.name for e in self.discovery.runs if e.path == path), path)


# ----------------------------------------------------------------------------------- formatting
def fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` (a number) formatted with ``spec``; an em dash when missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def ceiling_text(row: dict) -> str:
    """A run's ceiling b − a for a table cell, from an overview row (``compare_runs``): the number,
    or ``withheld (<verdict>)`` where the law's verdict withholds it, else an em dash."""
    if row.get("ceiling") is not None:
        return fmt(row["ceiling"])
    verdict = row.get("law_verdict")
    return withheld_text({"status": verdict}) if verdict and verdict != "fits" else "—"


def ceilings_caption(summary: dict) -> None:
    """Both ceilings of ``analyze_run``'s dict on one line (``analysis.ceilings``), and why the compute
    sigmoid gives no number where it gives none."""
    st.caption(md(f"Ceilings: {ceilings_line(summary)}"))
    why = compute_why(summary)
    if why:
        st.caption(md(f"Compute sigmoid (ScaleRL): {why}"))


def esc(text: object) -> str:
    """HTML-escaped text (quotes too), for ``st.html``."""
    return html.escape("" if text is None else str(text), quote=True)


def plot_text(text: object) -> str:
    """Text for plotly labels, legends and hover text: plotly draws a subset of HTML and decodes
    ``&amp;``, ``&lt;`` and ``&gt;`` (not ``&quot;``), so those three are escaped."""
    return html.escape("" if text is None else str(text), quote=False)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&])")
#: Where GitHub-flavoured Markdown turns plain text into a link even when escaped (``http://``,
#: ``www.``, ``name@host``): a word joiner (U+2060, invisible, no line break) is put there.
_AUTOLINK = re.compile(r"(?<=\\:)(?=//)|(?<=www)(?=\\\.)|(?<=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def md(text: object) -> str:
    """Text with every Markdown character (links, images, emphasis, HTML, ``&`` entities, Streamlit's
    ``:color[...]`` and ``:icon:`` directives, LaTeX ``$``) backslash-escaped, and bare URLs and
    addresses kept from becoming links: it renders as the text itself wherever Streamlit draws
    Markdown (see the module docstring)."""
    return _AUTOLINK.sub(WORD_JOINER, _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text)))


def note_metric(where: Any, label: str, value: str, note: str | None = None, help: str | None = None) -> None:
    """A metric whose small line is a note (an interval, a count), not a change: no arrow, no colour."""
    where.metric(label, value, delta=note, delta_color="off", delta_arrow="off", help=help)


def status_badge(status: str) -> str:
    """A status as a coloured Markdown badge."""
    return f":{STATUS_COLORS.get(status, 'gray')}-badge[{md(status)}]"


# -------------------------------------------------------------------------------------- sidebar
def sidebar() -> Context:
    """Draw the sidebar (runs root, runs, live refresh) and store the ``Context`` for the pages."""
    with st.sidebar:
        root = st.text_input("Runs root", value=app_data.runs_root(), key="root",
                             help="a folder of runs (searched 3 levels deep) or one run, under the root the "
                             "dashboard was started on; or an object-store URL such as s3://bucket/runs "
                             "(endpoint and credentials come from the server's environment)")
        root, refused = app_data.checked_root(root)  # nothing outside the configured root is read
        if refused:
            discovery = app_data.Discovery(root, (), f"Refused: {refused}.")
        else:
            discovery = app_data.discover(root)
        selected: list[str] = []
        if discovery.runs:
            names = {e.path: f"{e.name}  ·  {e.status}" for e in discovery.runs}
            readable = [e.path for e in discovery.runs if e.error is None]
            selected = st.multiselect(
                "Runs", options=list(names), default=readable[:1], format_func=names.__getitem__,
                key=f"selected::{discovery.root}",
                help="single-run pages show the first one (or let you choose); Compare overlays them all",
            )
        live = st.toggle("Live refresh", value=True, key="live", help="re-read a running run on its own")
        interval = st.select_slider("Refresh every", options=INTERVALS, value=5, key="interval",
                                    format_func=lambda s: f"{s} s", disabled=not live)
        st.caption("entrodiag dashboard · reads only completed part files")
    ctx = Context(discovery.root, discovery, tuple(selected), bool(live), int(interval))
    st.session_state["ctx"] = ctx
    return ctx


def context() -> Context:
    """The ``Context`` the entry script's sidebar stored for this run of the script."""
    return st.session_state["ctx"]


# --------------------------------------------------------------------------------- empty states
def no_runs(ctx: Context) -> bool:
    """Show why there is nothing to show (empty root, not a run, nothing picked); True if so."""
    if ctx.discovery.problem:
        st.info(md(ctx.discovery.problem), icon=":material/folder_open:")
        return True
    if not ctx.selected:
        st.info("Pick a run in the sidebar (**Runs**).", icon=":material/arrow_back:")
        return True
    return False


def pick_run(ctx: Context) -> str | None:
    """The run a single-run page shows: the selected one, or a choice among the selected ones.

    Shows the empty state and returns ``None`` when there is no readable run to show.
    """
    if no_runs(ctx):
        return None
    path = ctx.selected[0]
    if len(ctx.selected) > 1:  # the choice carries over to the other single-run pages
        current = st.session_state.get("current_run")
        index = ctx.selected.index(current) if current in ctx.selected else 0
        path = st.selectbox("Run", ctx.selected, index=index, format_func=ctx.name)
        st.session_state["current_run"] = path
    entry = next((e for e in ctx.discovery.runs if e.path == path), None)
    if entry is not None and entry.error:
        st.error(md(f"{ctx.name(path)} cannot be read: {entry.error}"), icon=":material/error:")
        return None
    try:
        app_data.open_run(path)
    except RunError as e:
        st.error(md(f"{ctx.name(path)} cannot be read: {e}"), icon=":material/error:")
        return None
    return path


def run_caption(ctx: Context, path: str) -> None:
    """One caption line under a page's title: run name, status, source, intervention, steps."""
    run = app_data.open_run(path)
    steps = app_data.steps(path)
    span = f"steps {steps['step'].min()}–{steps['step'].max()}" if steps.height else "no steps yet"
    st.caption(" · ".join([md(ctx.name(path)), status_badge(run.status), *(md(x) for x in (
        f"source {run.meta.get('source') or 'custom'}",
        f"intervention {run.meta.get('intervention') or 'none'}", span))]))


def empty(reason: str | None, what: str) -> None:
    """An analysis section that has nothing to show, with its reason."""
    st.info(md(f"{what}: {reason or 'not available for this run'}"), icon=":material/info:")


# ------------------------------------------------------------------------------------------ live
def run_page(ctx: Context, path: str, body: Callable[[str], None]) -> None:
    """A single-run page below its title: the run's caption and ``body(path)``, refreshed together
    while the run is live (see ``live``)."""

    def page() -> None:
        run_caption(ctx, path)
        body(path)

    live(ctx, [path], page)


def live(ctx: Context, paths: Sequence[str], body: Callable[[], None]) -> None:
    """Run ``body``; while live refresh is on and one of ``paths`` is running, as a fragment that
    reruns every ``ctx.interval`` seconds (only the page body, re-reading the run's new part files).
    Above the body, a warning names the damaged part files the body's reads had to skip."""
    running = ctx.live and any(app_data.open_run(p).status == "running" for p in paths)
    if not running:
        slot = st.empty()
        body()
        damage_warning(slot, ctx, paths)
        return

    def refreshed() -> None:
        if not any(app_data.open_run(p).status == "running" for p in paths):
            st.rerun()  # the run stopped: redraw the whole page once, without the timer
        st.caption(f":green-badge[live] re-reading every {ctx.interval} s · "
                   f"last read {time.strftime('%H:%M:%S')}")
        slot = st.empty()
        body()
        damage_warning(slot, ctx, paths)

    st.fragment(refreshed, run_every=ctx.interval)()


def damage_warning(slot: Any, ctx: Context, paths: Sequence[str]) -> None:
    """Fill ``slot`` with a warning naming the part files of ``paths`` that cannot be decoded (the
    reader skips them and the page shows the rest), or leave it empty."""
    lines = []
    for path in paths:
        try:
            skipped = app_data.skipped_parts(path)
        except RunError:
            continue
        lines += [f"- {md(ctx.name(path))}: {md(part['path'])}: {md(part['reason'])}" for part in skipped]
    if lines:
        slot.warning(f"**{len(lines)} damaged part file(s) skipped**: their rows are left out of this page "
                     "(`entrodiag inspect RUN` checks every file).\n\n" + "\n".join(lines),
                     icon=":material/broken_image:")


def panel_note(fig: Any, row: int, col: int, text: str) -> None:
    """Write ``text`` (plain run text allowed: it is made safe for Plotly) in the middle of the empty
    panel (``row``, ``col``) of a subplot figure, wrapped, in the colour of a warning."""
    note = "<br>".join(textwrap.wrap(plot_text(text), 55))
    axes = fig.get_subplot(row, col)  # the middle of the panel, in paper coordinates
    (x0, x1), (y0, y1) = axes.xaxis.domain, axes.yaxis.domain
    fig.add_annotation(text=note, x=(x0 + x1) / 2, y=(y0 + y1) / 2, xref="paper", yref="paper",
                       xanchor="center", yanchor="middle", showarrow=False, align="center",
                       font={"color": "#8a6d00", "size": 12})
