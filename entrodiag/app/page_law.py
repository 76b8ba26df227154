"""Entropy law: evaluation accuracy against training entropy coloured by step, the fitted law
R = −a·e^H + b with its confidence band and ceiling b − a (Cui et al. 2025), and a slider that
refits on the first x% of the evaluations to show how early the ceiling could have been predicted."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from entrodiag.analysis import EarlyPrediction, LawFit, early_prediction
from entrodiag.analysis.early_curve import early_curve
from entrodiag.analysis.verdicts import LawVerdict, judge_law
from entrodiag.app import app_data, app_ui


def points_word(fit: LawFit) -> str:
    """What the fit's points are: ``steps`` when R is a training series, else ``evaluations``."""
    return "steps" if fit.metric_choice is not None and fit.metric_choice.is_training else "evaluations"


def law_figure(fit: LawFit, curve: dict, early: EarlyPrediction | None, k: int) -> go.Figure:
    """Points (filled: used by the early fit), the full fit with band, the early fit, both ceilings
    (``early=None``: no early fit and no ceiling, where the law does not describe the run)."""
    H, R, steps = np.asarray(fit.H), np.asarray(fit.R), list(fit.steps)
    if early is None:  # no ceiling: the curve is not drawn down to H = 0, only over the points' entropy
        keep = [i for i, h in enumerate(curve["H"]) if h >= 0.95 * float(H.min())]
        curve = {**curve, **{k: [curve[k][i] for i in keep] for k in ("H", "R", "low", "high")
                             if curve.get(k) is not None}}
    fig = go.Figure()
    if curve.get("low") is not None:
        fig.add_trace(go.Scatter(x=curve["H"], y=curve["high"], mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=curve["H"], y=curve["low"], mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor="rgba(31,78,121,0.15)",
                                 name=f"{curve['level']:.0%} band"))
    fig.add_trace(go.Scatter(x=curve["H"], y=curve["R"], mode="lines", line={"color": "#1f4e79", "width": 2},
                             name=f"fit: R = −{fit.a:.3f}·e^H + {fit.b:.3f}"))
    if early is not None:
        fig.add_hline(y=fit.ceiling, line={"color": "#1f4e79", "dash": "dash", "width": 1},
                      annotation_text=f"ceiling {fit.ceiling:.3f}", annotation_position="top right")
    if early is not None and early.a is not None:
        grid = np.asarray(curve["H"])
        fig.add_trace(go.Scatter(x=grid, y=early_curve(early, grid), mode="lines",
                                 line={"color": "#f58518", "dash": "dash", "width": 2},
                                 name=f"fit on the first {k} points"))
        fig.add_hline(y=early.ceiling, line={"color": "#f58518", "dash": "dot", "width": 1},
                      annotation_text=f"early ceiling {early.ceiling:.3f}",
                      annotation_position="bottom right")
    hover = [f"step {s}<br>H {h:.4f}<br>R {r:.4f}" for s, h, r in zip(steps, H, R)]
    points = points_word(fit)
    used_name = f"{points} in the early fit" if early is not None else points
    for used, name, symbol in ((True, used_name, "circle"),
                               (False, "held out", "circle-open")):
        idx = np.arange(len(H)) < k if used else np.arange(len(H)) >= k
        if idx.any():
            fig.add_trace(go.Scatter(
                x=H[idx], y=R[idx], mode="markers", name=name, hovertext=[h for h, i in zip(hover, idx) if i],
                hoverinfo="text",
                marker={"symbol": symbol, "size": 9, "color": [s for s, i in zip(steps, idx) if i],
                        "colorscale": "Viridis", "cmin": min(steps), "cmax": max(steps),
                        "line": {"width": 1.5}, "showscale": used,
                        "colorbar": {"title": "step", "x": 1.02}}))
    fig.update_layout(height=480, margin={"t": 30, "b": 40, "l": 60, "r": 10},
                      legend={"orientation": "h", "y": -0.18})
    fig.update_xaxes(title=f"training entropy H (nats, trailing mean of {fit.smooth} steps)")
    fig.update_yaxes(title=app_ui.plot_text(fit.metric))
    return fig


def fit_metrics(fit: LawFit, verdict: LawVerdict) -> None:
    """a, b, ceiling with their intervals, R², RMSE, points (no ceiling or R̂ where the law does
    not describe the run)."""
    cols = st.columns(5)
    for col, (label, key) in zip(cols, (("a", "a"), ("b", "b"), ("ceiling b − a", "ceiling"))):
        lo, hi = fit.ci.get(key, (None, None))
        if key == "ceiling" and not verdict.fits:
            app_ui.note_metric(col, label, "—", verdict.withheld())
            continue
        app_ui.note_metric(col, label, app_ui.fmt(getattr(fit, key)),
                           f"{fit.level:.0%} CI {app_ui.fmt(lo)}–{app_ui.fmt(hi)}")
    app_ui.note_metric(cols[3], "R²", app_ui.fmt(fit.r2), f"RMSE {fit.rmse:.4f}")
    if verdict.fits:
        app_ui.note_metric(cols[4], "R̂ at the last step", app_ui.fmt(fit.r_last),
                           f"{app_ui.fmt(fit.ceiling_frac, '.0%')} of the ceiling")
    else:
        app_ui.note_metric(cols[4], "R̂ at the last step", "—", verdict.withheld())


def early_metrics(early: EarlyPrediction) -> None:
    """The slider's early prediction: points used, RMSE on the rest, final and ceiling."""
    if early.reason:
        total = early.n_fit + early.n_test
        st.info(app_ui.md(f"Early fit on {early.n_fit} of {total} points: {early.reason}."), icon=":material/info:")
        return
    cols = st.columns(4)
    app_ui.note_metric(cols[0], "Early fit on", f"{early.n_fit} points", f"predicts {early.n_test} more")
    cols[1].metric("RMSE on the rest", app_ui.fmt(early.rmse, ".4f"))
    app_ui.note_metric(cols[2], "Predicted final", app_ui.fmt(early.predicted_final),
                       f"actual {app_ui.fmt(early.actual_final)} ({early.final_error:+.3f})")
    cols[3].metric("Early ceiling", app_ui.fmt(early.ceiling))


def body(path: str) -> None:
    """The page for one run."""
    s = app_data.summary(path)
    names = list(s["run"]["eval_metrics"])
    choice = s.get("metric") or {}
    if choice.get("status") == "ok" and choice["name"] not in names:
        names.append(choice["name"])  # a training series: the run has no validation metric
    if not names:
        app_ui.empty(s["law"].get("reason"), "Entropy law")
        return
    if choice.get("status") == "ok":
        say = st.warning if choice.get("training") else st.caption
        say(app_ui.md(f"R = {choice['name']} ({choice['label']}): {choice['reason']}"))
    verdict = s["law"].get("verdict") if s["law"]["status"] == "ok" else None
    if verdict and verdict["status"] != "fits":
        st.warning(app_ui.md(f"Law: {verdict['text']}"))
    app_ui.ceilings_caption(s)  # the compute-axis ceiling beside the law's (analysis.compute_law)
    default = s["law"]["metric"] if s["law"]["status"] == "ok" else names[0]
    metric = st.selectbox("R: the metric the law predicts", names, index=names.index(default), key="law_metric")
    view = app_data.law(path, metric)
    if view.fit is None:
        app_ui.empty(view.reason, "Entropy law")
        return
    fit = view.fit
    verdict = judge_law(fit, [f["kind"] for f in s["flags"]["items"]])  # the verdict on this R
    if not verdict.fits and metric != s["law"].get("metric"):
        st.warning(app_ui.md(f"Law on {metric}: {verdict.text}"))
    fit_metrics(fit, verdict)
    if not verdict.fits:  # no early prediction where the law does not describe the run
        st.plotly_chart(law_figure(fit, view.curve, None, len(fit.H)), key="law")
        st.caption(f"R = {app_ui.md(fit.metric)}, H = {app_ui.md(fit.entropy)} (trailing mean of {fit.smooth} "
                   f"steps), {fit.n} {points_word(fit)}; no ceiling or early prediction: "
                   f"{app_ui.md(verdict.text)}")
        return
    pct = st.slider(f"Refit on the first x% of the {points_word(fit)} (early prediction)", 10, 90, 30, step=5,
                    format="%d%%", key="law_frac")
    early = early_prediction(fit, fracs=[pct / 100])[0]
    st.plotly_chart(law_figure(fit, view.curve, early, early.n_fit), key="law")
    early_metrics(early)
    ep = s["early_prediction"]
    if ep["status"] == "ok" and s["law"].get("metric") == metric:
        table = pl.DataFrame([{
            "first": f"{row['frac']:.0%}", "fit / rest": f"{row['n_fit']} / {row['n_test']}",
            "RMSE on the rest": app_ui.fmt(row.get("rmse"), ".4f"),
            "law's final": app_ui.fmt(row.get("predicted_final")),
            f"estimate ± {row.get('level', 0.9):.0%}": (
                "—" if row.get("hi") is None
                else f"{app_ui.fmt(row.get('estimate'))} ± {app_ui.fmt((row['hi'] - row['lo']) / 2)}"),
            "actual final": app_ui.fmt(row.get("actual_final")),
            "covered": "" if row.get("covered") is None else ("yes" if row["covered"] else "miss"),
            "ceiling": app_ui.fmt(row.get("ceiling")),
            "note": app_ui.md(row.get("reason") or ""),
        } for row in ep["rows"]])
        if not any(table["note"]):
            table = table.drop("note")
        st.caption("Early prediction at the fractions of Cui et al. 2025 (fit the first part, predict the "
                   "rest)")
        st.table(table)
    st.caption(f"R = {app_ui.md(fit.metric)}, H = {app_ui.md(fit.entropy)} (trailing mean of {fit.smooth} "
               f"steps), {fit.n} {points_word(fit)}; band and intervals from a pairs bootstrap.")


ctx = app_ui.context()
st.title("Entropy law")
run_path = app_ui.pick_run(ctx)
if run_path is not None:
    app_ui.run_page(ctx, run_path, body)
