"""Compare: the selected runs side by side (``compare_runs``) and overlaid against step: entropy,
reward, the evaluation metric and the covariance (e.g. none vs clip_cov vs kl_cov)."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from entrodiag.app import app_data, app_ui

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def table(ctx: app_ui.Context, paths: list[str]) -> pl.DataFrame:
    """One row per run with the key numbers of ``compare_runs``, formatted (for ``st.table``, whose
    cells are Markdown: the texts are escaped)."""
    rows = []
    for p in paths:
        o = app_data.overview_row(p)
        rows.append({
            "run": app_ui.md(ctx.name(p)), "intervention": app_ui.md(o["intervention"]),
            "status": app_ui.md(o["status"]),
            "steps": str(o["steps"]),
            "entropy": f"{app_ui.fmt(o['entropy_start'])} → {app_ui.fmt(o['entropy_end'])}",
            "reward": f"{app_ui.fmt(o['reward_start'])} → {app_ui.fmt(o['reward_end'])}",
            "accuracy (final / best)": f"{app_ui.fmt(o['eval_final'])} / {app_ui.fmt(o['eval_best'])}",
            "ceiling": app_ui.ceiling_text(o), "law R²": app_ui.fmt(o["law_r2"]),
            "cov > 0": app_ui.fmt(o["cov_pos_share"], ".0%"), "mechanism": app_ui.md(o["mechanism"] or "—"),
            "flags": app_ui.md(o["flags"] or "none"),
        })
    return pl.DataFrame(rows)


def overlay_figure(ctx: app_ui.Context, paths: list[str]) -> go.Figure:
    """Entropy, reward, evaluation metric and covariance of every run on shared axes."""
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=(
        "Token entropy (nats)", "Reward", "Evaluation (each run's law metric)", "cov(log p, A)"))
    for i, p in enumerate(paths):
        color = PALETTE[i % len(PALETTE)]
        o = app_data.overview_row(p)
        name = app_ui.plot_text(f"{ctx.name(p)} ({o['intervention']})")
        steps = app_data.steps(p)
        for col, r, c in (("entropy_mean", 1, 1), ("reward_mean", 1, 2), ("cov_mean", 2, 2)):
            if col in steps.columns:
                fig.add_trace(go.Scatter(x=steps["step"].to_list(), y=steps[col].to_list(), mode="lines",
                                         name=name, legendgroup=name, showlegend=(r, c) == (1, 1),
                                         line={"color": color}), row=r, col=c)
        if o["metric"]:
            ev = app_data.evals(p).filter(pl.col("name") == o["metric"]).sort("step")
            fig.add_trace(go.Scatter(x=ev["step"].to_list(), y=ev["value"].to_list(), mode="lines+markers",
                                     name=name, legendgroup=name, showlegend=False, marker={"size": 4},
                                     line={"color": color},
                                     hovertext=[app_ui.plot_text(o["metric"])] * ev.height), row=2, col=1)
    for (r, c), what in (((1, 1), "entropy_mean"), ((1, 2), "reward_mean"), ((2, 1), "evals"),
                         ((2, 2), "cov_mean")):
        if not any(v is not None for t in fig.select_traces(row=r, col=c) for v in (t.y or ())):
            app_ui.panel_note(fig, r, c, "no evaluation metric in any selected run" if what == "evals" else
                              f"no {what} in the step rows of any selected run")
    fig.add_hline(y=0, line={"color": "gray", "width": 1, "dash": "dot"}, row=2, col=2)
    fig.update_layout(height=640, margin={"t": 70, "b": 30, "l": 50, "r": 10}, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.06, "yanchor": "bottom", "x": 0})
    fig.update_xaxes(title="step", row=2)
    return fig


def body(ctx: app_ui.Context, paths: list[str]) -> None:
    """The comparison of ``paths``."""
    st.table(table(ctx, paths))
    metrics = sorted({app_ui.md(app_data.overview_row(p)["metric"] or "none") for p in paths})
    st.caption(f"entropy and reward: mean of the first → last steps; accuracy: each run's law metric "
               f"({', '.join(metrics)})")
    st.plotly_chart(overlay_figure(ctx, paths), key="overlay")


ctx = app_ui.context()
st.title("Compare")
if not app_ui.no_runs(ctx):
    readable = {e.path for e in ctx.discovery.runs if e.error is None}
    chosen = [p for p in ctx.selected if p in readable]
    if len(chosen) < 2:
        st.info("Select two or more runs in the sidebar (**Runs**) to overlay them, e.g. the same task with "
                "intervention none, clip_cov and kl_cov.", icon=":material/arrow_back:")
    if chosen:
        app_ui.live(ctx, chosen, lambda: body(ctx, chosen))
