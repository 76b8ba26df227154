"""Dynamics: entropy with its quantile band and the run's events, the entropy controller (target,
band, time in band, overshoot, settling, its output) when the run has one, reward, evaluations,
covariance, response length, zero-advantage share and high-entropy share against step, and the
entropy histogram over training as a heatmap."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from entrodiag.analysis.sources import log_hint
from entrodiag.app import app_data, app_ui
from entrodiag.entropy_control import EFFORT_LABELS, KNOB_LABELS, PIClip

#: Start → end numbers shown above the charts (``analyze_run``'s dynamics rows).
HEADLINE = ("entropy_mean", "reward_mean", "cov_mean", "resp_len_mean", "zero_adv_group_frac")
EVAL_COLORS = ["#e45756", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
#: Columns of the heatmap at most (steps are grouped into this many consecutive segments).
HEATMAP_SEGMENTS = 200


def headline(path: str) -> None:
    """Start → end of the key series (means over the first/last steps, from ``analyze_run``)."""
    dyn = app_data.summary(path)["dynamics"]
    if dyn["status"] != "ok":
        app_ui.empty(dyn.get("reason"), "Dynamics")
        return
    rows = {r["name"]: r for r in dyn["rows"]}
    shown = [rows[n] for n in HEADLINE if n in rows]
    for col, r in zip(st.columns(max(len(shown), 1)), shown):
        col.metric(r["label"], app_ui.fmt(r["end"], ".4g"), delta=f"{r['change']:+.3g} from {r['start']:.4g}",
                   delta_color="off")
    if dyn.get("note"):
        st.caption(app_ui.md(dyn["note"]))


def entropy_figure(steps: pl.DataFrame, events: pl.DataFrame) -> go.Figure:
    """Token-mean entropy with the p50–p90 band and p99; the run's events in a strip above them
    (one row per kind of event)."""
    fig = go.Figure()
    x = steps["step"].to_list()
    if logged(steps, "entropy_p50") and logged(steps, "entropy_p90"):
        fig.add_trace(go.Scatter(x=x, y=steps["entropy_p90"].to_list(), mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=steps["entropy_p50"].to_list(), mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor="rgba(76,120,168,0.2)", name="p50–p90"))
    if logged(steps, "entropy_p99"):
        fig.add_trace(go.Scatter(x=x, y=steps["entropy_p99"].to_list(), mode="lines", name="p99",
                                 line={"dash": "dot", "color": "#9ecae9"}))
    fig.add_trace(go.Scatter(x=x, y=steps["entropy_mean"].to_list(), mode="lines", name="mean",
                             line={"color": "#1f4e79", "width": 2}))
    top = max((steps[c].max() or 0.0) for c in ("entropy_mean", "entropy_p90", "entropy_p99")
              if c in steps.columns)
    for k, ((kind,), g) in enumerate(events.group_by("kind", maintain_order=True)):
        hover = [f"step {s} · {app_ui.plot_text(kind)} {app_ui.plot_text(n)}<br>{app_ui.plot_text(m)}"
                 for s, n, m in zip(g["step"], g["name"], g["message"])]
        fig.add_trace(go.Scatter(
            x=g["step"].to_list(), y=[top * (1.08 + 0.07 * k)] * g.height, mode="markers",
            name=f"event: {app_ui.plot_text(kind)}",
            marker={"symbol": app_ui.EVENT_SYMBOLS.get(kind, "circle"), "size": 11,
                    "color": app_ui.EVENT_COLORS.get(kind, "#888"), "line": {"width": 1, "color": "white"}},
            hovertext=hover, hoverinfo="text"))
    fig.update_layout(title="Token entropy (nats)", height=380, margin={"t": 60, "b": 40, "l": 50, "r": 10},
                      hovermode="closest", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1,
                                                   "xanchor": "right"})
    fig.update_xaxes(title="step")
    return fig


def logged(steps: pl.DataFrame, column: str) -> bool:
    """Whether the run logged ``column`` at some step (an imported run may have it, all null)."""
    return column in steps.columns and steps[column].drop_nulls().len() > 0


def eval_title(eval_colors: dict[str, str], width: int = 48) -> str:
    """``Evaluation: a, b, c`` with each name in its colour, broken into lines of about ``width``
    characters so that it stays over its panel."""
    lines, line, used, count = [], "Evaluation:", len("Evaluation:"), 0
    last = list(eval_colors)[-1] if eval_colors else None
    for name, color in eval_colors.items():
        piece = colored(app_ui.plot_text(name), color) + ("" if name == last else ",")
        if count and used + len(name) + 2 > width:  # a name never shares a line it would overflow
            lines.append(line)
            line, used, count = piece, len(name) + 1, 1
        else:
            line, used, count = f"{line} {piece}", used + len(name) + 2, count + 1
    return "<br>".join([*lines, line])


def colored(text: str, color: str) -> str:
    """A word of a panel title in its series' colour (the panels have no legends)."""
    return f'<span style="color:{color}">{text}</span>'


#: The panels under the entropy chart: (row, col) -> the step columns it draws ("evals": the
#: evaluations), for the note on a panel the run logged nothing for.
PANELS: dict[tuple[int, int], tuple[str, ...]] = {
    (1, 1): ("reward_mean",), (1, 2): ("evals",), (2, 1): ("cov_mean", "entropy_pressure"),
    (2, 2): ("resp_len_mean",), (3, 1): ("zero_adv_group_frac",), (3, 2): ("high_entropy_frac",),
}


def panels_figure(steps: pl.DataFrame, evals: pl.DataFrame,
                  hint: Callable[[str], str | None] = lambda c: None) -> go.Figure:
    """Reward, evaluations, covariance, response length, zero-advantage and high-entropy shares.

    Panels with two or more series name them in the title, in the series' colours. A panel the
    run logged nothing for says so, with ``hint(column)`` (what to log; ``None``: nothing to add)."""
    names = evals["name"].unique(maintain_order=True).to_list() if "name" in evals.columns else []
    eval_colors = dict(zip(names, EVAL_COLORS * (len(names) // len(EVAL_COLORS) + 1)))
    titles = (
        "Reward (mean ± std)",
        eval_title(eval_colors) if names else "Evaluation",
        colored("cov(log p, A)", "#e45756") + " and " + colored("entropy pressure", "#b279a2"),
        "Response length (tokens)", "Zero-advantage groups (share)", "Tokens above 0.672 nats (share)",
    )
    fig = make_subplots(rows=3, cols=2, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.09)
    x = steps["step"].to_list()

    def line(col: str, row: int, c: int, name: str, color: str) -> None:
        if col in steps.columns and steps[col].drop_nulls().len():
            fig.add_trace(go.Scatter(x=x, y=steps[col].to_list(), mode="lines", name=name,
                                     line={"color": color}), row=row, col=c)

    if {"reward_mean", "reward_std"} <= set(steps.columns):
        up = (steps["reward_mean"] + steps["reward_std"]).to_list()
        down = (steps["reward_mean"] - steps["reward_std"]).to_list()
        fig.add_trace(go.Scatter(x=x, y=up, mode="lines", line={"width": 0}, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=down, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor="rgba(84,162,75,0.2)", hoverinfo="skip"), row=1, col=1)
    line("reward_mean", 1, 1, "reward", "#54a24b")
    for (name,), g in evals.sort("step").group_by("name", maintain_order=True):
        fig.add_trace(go.Scatter(x=g["step"].to_list(), y=g["value"].to_list(), mode="lines+markers",
                                 name=app_ui.plot_text(name), marker={"size": 4},
                                 line={"color": eval_colors[name]}), row=1, col=2)
    line("cov_mean", 2, 1, "cov_mean", "#e45756")
    line("entropy_pressure", 2, 1, "entropy pressure", "#b279a2")
    fig.add_hline(y=0, line={"color": "gray", "width": 1, "dash": "dot"}, row=2, col=1)
    line("resp_len_mean", 2, 2, "response length", "#72b7b2")
    line("zero_adv_group_frac", 3, 1, "zero-advantage groups", "#f58518")
    line("high_entropy_frac", 3, 2, "share > 0.672 nats", "#4c78a8")
    for (row, col), columns in PANELS.items():
        if any(names if c == "evals" else logged(steps, c) for c in columns):
            continue
        what = "no evaluations" if columns == ("evals",) else f"no {' or '.join(columns)} in the step rows"
        more = hint(columns[0])
        app_ui.panel_note(fig, row, col, what + (f": {more}" if more else ""))
    fig.update_layout(height=760, margin={"t": 40, "b": 30, "l": 50, "r": 10}, hovermode="x unified",
                      showlegend=False)
    fig.update_xaxes(title="step", row=3)
    return fig


def heatmap_figure(dist: dict) -> go.Figure | None:
    """Share of tokens per entropy bin (rows) over training (columns), from the step histograms."""
    segs = [s for s in dist["segments"] if s["shares"] is not None]
    if not segs:
        return None
    edges = dist["edges"]
    used = [i for i in range(len(edges) - 1) if any(s["shares"][i] for s in segs)]
    top = (used[-1] + 1) if used else len(edges) - 1  # bins above the highest entropy seen are left out
    labels = [f"{lo:.3g}–{'∞' if hi is None else f'{hi:.3g}'}" for lo, hi in pairwise(edges[:top + 1])]
    z = [[s["shares"][i] for s in segs] for i in range(len(labels))]
    x = [(s["first_step"] + s["last_step"]) / 2 for s in segs]
    custom = [[f"{s['first_step']}–{s['last_step']}" for s in segs] for _ in labels]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=labels, colorscale="Viridis", colorbar={"title": "share"}, customdata=custom,
        hovertemplate="steps %{customdata}<br>entropy %{y} nats<br>share %{z:.1%}<extra></extra>"))
    fig.update_layout(title="Token-entropy histogram over training (share of all tokens of the steps)",
                      height=380, margin={"t": 40, "b": 30, "l": 90, "r": 10})
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="entropy (nats)", type="category")
    return fig


def control_figure(df: pl.DataFrame, c: dict) -> go.Figure:
    """Entropy against the target and its band, and the controller's output (the knob it sets), from
    ``analysis.control.control_series`` (``df``) and the ``control`` section of ``analyze_run`` (``c``)."""
    x = df["step"].to_list()
    knob = c.get("knob") if c.get("knob") in df.columns else None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=(
        f"Entropy under {app_ui.plot_text(c['mode'])}: target and band",
        "Controller output: " + (KNOB_LABELS[knob] if knob else "none (measured only)")))
    for col, fill in (("control/band_high", None), ("control/band_low", "tonexty")):  # per step: a schedule
        fig.add_trace(go.Scatter(x=x, y=df[col].to_list(), mode="lines", line={"width": 0}, fill=fill,
                                 fillcolor="rgba(46,139,58,0.15)", showlegend=False, hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=df["control/target"].to_list(), mode="lines", name="target",
                             line={"color": "#2e8b3a", "dash": "dash"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=df["entropy_mean"].to_list(), mode="lines", name="entropy",
                             line={"color": "#1f4e79"}), row=1, col=1)
    if knob:
        fig.add_trace(go.Scatter(x=x, y=df[knob].to_list(), mode="lines", name=KNOB_LABELS[knob],
                                 line={"color": "#b03030", "shape": "hv"}), row=2, col=1)
    if knob == "control/effort":
        fig.add_hrect(y0=-PIClip.CLIP_SPAN, y1=PIClip.CLIP_SPAN, fillcolor="rgba(128,128,128,0.12)", line_width=0,
                      row=2, col=1)
        for col, name in EFFORT_LABELS.items():
            if col in df.columns:
                fig.add_trace(go.Scatter(x=x, y=df[col].to_list(), mode="lines", name=name,
                                         line={"color": "gray", "width": 1, "dash": "dot", "shape": "hv"}), row=2, col=1)
    for row in (1, 2):
        fig.add_vline(x=c["control_from"], line={"color": "gray", "dash": "dot"}, row=row, col=1)
    fig.update_layout(height=460, margin={"t": 40, "b": 30, "l": 50, "r": 10}, hovermode="x unified",
                      showlegend=False)
    fig.update_xaxes(title="step", row=2)
    return fig


def control_section(path: str) -> None:
    """The entropy controller's numbers and chart (only for runs trained with an entropy target)."""
    c = app_data.summary(path).get("control") or {}
    if c.get("status") != "ok":
        return
    st.subheader("Entropy control")
    cols = st.columns(5)
    app_ui.note_metric(cols[0], "target (nats)", app_ui.fmt(c["target"], ".3f"),
                       f"band {c['band'][0]:.3f}–{c['band'][1]:.3f}")
    app_ui.note_metric(cols[1], "time in band", app_ui.fmt(c.get("time_in_band"), ".0%"),
                       f"{c['n_scored']} steps from step {c['scored_from']}")
    app_ui.note_metric(cols[2], "overshoot (nats)", app_ui.fmt(c.get("overshoot"), ".3f"),
                       f"{app_ui.fmt(c.get('overshoot_frac'), '.0%')} of the target")
    app_ui.note_metric(cols[3], "settling steps",
                       "never" if c.get("settling_steps") is None else str(c["settling_steps"]),
                       f"from step {c['control_from']}")
    app_ui.note_metric(cols[4], "controller", app_ui.md(c["mode"]),
                       None if c.get("knob_end") is None else f"output now {c['knob_end']:.4g}")
    st.plotly_chart(control_figure(app_data.control(path), c), key="control")


def body(path: str) -> None:
    """The page for one run."""
    steps = app_data.steps(path)
    if steps.is_empty() or "entropy_mean" not in steps.columns:
        app_ui.empty("no step rows yet: a Recorder writes them on flush and on close", "Dynamics")
        return
    headline(path)
    st.plotly_chart(entropy_figure(steps, app_data.events(path)), key="entropy")
    control_section(path)
    run = app_data.open_run(path)
    st.plotly_chart(panels_figure(steps, app_data.evals(path), lambda column: log_hint(run, column)),
                    key="panels")
    fig = heatmap_figure(app_data.distribution(path, min(steps.height, HEATMAP_SEGMENTS)))
    if fig is None:
        app_ui.empty("no entropy histograms in the step rows", "Entropy histogram")
    else:
        st.plotly_chart(fig, key="heatmap")


ctx = app_ui.context()
st.title("Dynamics")
run_path = app_ui.pick_run(ctx)
if run_path is not None:
    app_ui.run_page(ctx, run_path, body)
