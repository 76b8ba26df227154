"""Collapse: the collapse flags of the run on a timeline with the events recorded while it trained
(flags raised live, alerts, intervention switches, stops), then each flag with its evidence and
advice, and the detectors that could not judge."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from entrodiag.app import app_data, app_ui


def timeline_figure(flags: list[dict], events: pl.DataFrame, last_step: int | None) -> go.Figure:
    """One row per flag kind (a bar over its steps, coloured by severity) and per event kind."""
    fig = go.Figure()
    for sev in ("info", "warning", "critical"):
        items = [f for f in flags if f["severity"] == sev]
        if items:
            fig.add_trace(go.Bar(
                y=[f["kind"] for f in items], x=[f["last_step"] - f["first_step"] + 1 for f in items],
                base=[f["first_step"] for f in items], orientation="h", name=sev,
                marker={"color": app_ui.SEVERITY_COLORS[sev]}, showlegend=True,
                hovertext=[f"{app_ui.plot_text(f['kind'])} ({sev}), steps {f['first_step']}–"
                           f"{f['last_step']}<br>{app_ui.plot_text(f['message'])}" for f in items],
                hoverinfo="text"))
    for (kind,), g in events.group_by("kind", maintain_order=True):
        fig.add_trace(go.Scatter(
            x=g["step"].to_list(), y=[f"event: {app_ui.plot_text(kind)}"] * g.height, mode="markers",
            name=f"event: {app_ui.plot_text(kind)}",
            marker={"size": 12, "symbol": app_ui.EVENT_SYMBOLS.get(kind, "circle"),
                    "color": app_ui.EVENT_COLORS.get(kind, "#888")},
            hovertext=[f"step {s}: {app_ui.plot_text(n)} {app_ui.plot_text(sv or '')}<br>"
                       f"{app_ui.plot_text(m)}"
                       for s, n, sv, m in zip(g["step"], g["name"], g["severity"], g["message"])],
            hoverinfo="text"))
    rows = len({f["kind"] for f in flags}) + events["kind"].n_unique()
    fig.update_layout(barmode="overlay", height=150 + 40 * rows, margin={"t": 40, "b": 40, "l": 10, "r": 10},
                      title="Flags over the steps where they hold, and the events recorded while training",
                      legend={"orientation": "h", "y": -0.3})
    fig.update_xaxes(title="step", range=None if last_step is None else [-0.5, last_step + 0.5])
    fig.update_yaxes(autorange="reversed")
    return fig


def flag_card(flag: dict) -> None:
    """One flag: severity, kind, steps, message, evidence and advice."""
    with st.container(border=True):
        color = {"info": "blue", "warning": "orange", "critical": "red"}[flag["severity"]]
        st.markdown(f":{color}-badge[{flag['severity'].upper()}] **{app_ui.md(flag['kind'])}** · steps "
                    f"{flag['first_step']}–{flag['last_step']}")
        st.markdown(app_ui.md(flag["message"]))
        st.markdown("**Try:** " + app_ui.md(flag["advice"]))
        evidence = {k: v for k, v in flag["evidence"].items()}
        if evidence:
            st.caption("Evidence: " + " · ".join(
                f"{app_ui.md(k)} = {app_ui.fmt(v, '.4g') if isinstance(v, (int, float)) else app_ui.md(v)}"
                for k, v in evidence.items()))


def events_table(events: pl.DataFrame) -> pl.DataFrame:
    """The events as a table (detail JSON shortened)."""
    def short(detail: str | None) -> str:
        try:
            d = json.loads(detail or "{}")
        except json.JSONDecodeError:
            return detail or ""
        return ", ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (dict, list)))[:160]

    return events.select(
        "step", "kind", "name", "severity",
        pl.col("first_step").alias("from"), pl.col("last_step").alias("to"), "message",
        pl.col("detail").map_elements(short, return_dtype=pl.String).alias("detail"),
    )


def body(path: str) -> None:
    """The page for one run."""
    s = app_data.summary(path)
    flags = s["flags"]["items"]
    events = app_data.events(path)
    cols = st.columns(4)
    for col, sev in zip(cols, ("critical", "warning", "info")):
        col.metric(f"{sev} flags", str(sum(f["severity"] == sev for f in flags)))
    cols[3].metric("events recorded", str(events.height))
    if flags or events.height:
        st.plotly_chart(timeline_figure(flags, events, s["run"]["last_step"]), key="timeline")
    if not flags and s["flags"].get("judged") == 0:
        st.info("Not judged yet: no detector could judge this run (why: under Not judged).",
                icon=":material/hourglass_empty:")
    elif not flags:
        st.success("No collapse flag raised by the detectors on the recorded steps.",
                   icon=":material/check_circle:")
    for f in flags:
        flag_card(f)
    if s["flags"]["skipped"]:
        with st.expander(f"Not judged ({len(s['flags']['skipped'])} detectors)"):
            for kind, why in s["flags"]["skipped"].items():
                st.markdown(f"- **{app_ui.md(kind)}**: {app_ui.md(why)}")
    st.subheader("Events recorded while training")
    if events.height:
        st.dataframe(events_table(events), hide_index=True, width="stretch")
    else:
        st.caption("none: events are written by `entrodiag watch` and by the trainer's --stop-on, "
                   "--on-collapse and --alerts")


ctx = app_ui.context()
st.title("Collapse")
run_path = app_ui.pick_run(ctx)
if run_path is not None:
    app_ui.run_page(ctx, run_path, body)
