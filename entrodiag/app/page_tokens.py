"""Tokens: one recorded response with each token coloured by its entropy, high-window-entropy (HWE)
positions underlined, forking tokens outlined, and a hover with entropy, log-prob, advantage and
covariance; then the forking-token leaderboard and the HWE span statistics.

Every piece of run text (prompt, tokens) is ``html.escape``d before it goes into HTML or plotly.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from entrodiag.analysis.tokens import shown_token
from entrodiag.app import app_data, app_ui

RANKINGS = {"forking": "forking count", "forking_rate": "forking rate", "mean_entropy": "mean entropy"}


def shade(entropy: float | None, vmax: float) -> str:
    """Background colour of a token: transparent at 0 nats, deep orange at ``vmax`` and above."""
    if entropy is None:
        return "transparent"
    t = min(max(entropy / vmax, 0.0), 1.0)
    return f"rgba(230,85,13,{0.06 + 0.84 * t:.2f})"


def token_label(text: str | None, token_id: int | None) -> str:
    """What a token shows: its text (newlines and tabs made visible), else ``#id``."""
    if text is None:
        return f"#{token_id}"
    return shown_token(text).replace("\n", "↵").replace("\t", "⇥") or "∅"


def hover(row: dict) -> str:
    """Hover text of a token (plain text; escaped by the caller)."""
    parts = [f"pos {row['pos']}", f"entropy {app_ui.fmt(row.get('entropy'), '.4f')}",
             f"log-prob {app_ui.fmt(row.get('logprob'), '.4f')}",
             f"advantage {app_ui.fmt(row.get('advantage'), '+.4f')}",
             f"cov {app_ui.fmt(row.get('cov'), '+.4f')}", f"S* {app_ui.fmt(row.get('s_star'), '+.4f')}"]
    flags = [name for name, key in (("HWE", "is_hwe"), ("forking", "is_forking")) if row.get(key)]
    return " · ".join(parts + flags)


def tokens_html(prompt: str | None, tokens: pl.DataFrame, vmax: float) -> str:
    """The prompt (grey) and the response tokens as escaped, coloured spans with a hover title."""
    box = ("font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 20px; line-height: 2.3; "
           "padding: 6px 2px; word-break: break-all;")
    out = [f'<div style="{box}">']
    if prompt:
        out.append(f'<span style="color:#777" title="prompt">{app_ui.esc(prompt)}</span> ')
    for row in tokens.iter_rows(named=True):
        style = [f"background:{shade(row.get('entropy'), vmax)}", "padding:3px 2px", "margin:0 1px",
                 "border-radius:3px", "white-space:pre"]
        if row.get("is_hwe"):
            style.append("border-bottom:3px solid #1f4e79")
        if row.get("is_forking"):
            style.append("outline:1px dashed #333")
        out.append(f'<span class="ed-token" style="{";".join(style)}" title="{app_ui.esc(hover(row))}">'
                   f"{app_ui.esc(token_label(row.get('token'), row.get('token_id')))}</span>")
        if row.get("token") and "\n" in row["token"]:
            out.append("<br>")
    out.append("</div>")
    return "".join(out)


def legend_html(vmax: float) -> str:
    """Colour scale and markers of the token view."""
    stops = ", ".join(shade(vmax * i / 4, vmax) for i in range(5))
    return ('<div style="font-size: 13px; color: #555; display: flex; gap: 18px; align-items: center; '
            'flex-wrap: wrap;"><span>entropy 0 <span style="display:inline-block; width:120px; height:12px; '
            f'vertical-align:middle; background: linear-gradient(to right, {stops});"></span> '
            f'{vmax:.2f}+ nats</span><span style="border-bottom:3px solid #1f4e79">HWE position</span>'
            '<span style="outline:1px dashed #333">forking token (top 20% of its step)</span>'
            "<span>hover a token for its numbers</span></div>")


def token_figure(tokens: pl.DataFrame) -> go.Figure:
    """Entropy per position with the same hover (token text escaped)."""
    labels = [app_ui.plot_text(token_label(t, i)) for t, i in zip(tokens["token"], tokens["token_id"])]
    colors = ["#1f4e79" if h else ("#f58518" if f else "#9ecae9")
              for h, f in zip(tokens["is_hwe"].fill_null(False), tokens["is_forking"].fill_null(False))]
    text = [f"{lab}<br>{app_ui.plot_text(hover(row))}".replace(" · ", "<br>")
            for lab, row in zip(labels, tokens.iter_rows(named=True))]
    fig = go.Figure(go.Bar(x=list(range(tokens.height)), y=tokens["entropy"].to_list(),
                           marker={"color": colors}, hovertext=text, hoverinfo="text"))
    fig.update_layout(height=260, margin={"t": 30, "b": 30, "l": 50, "r": 10},
                      title="Entropy per token (dark: HWE, orange: forking)")
    fig.update_xaxes(tickmode="array", tickvals=list(range(tokens.height)), ticktext=labels)
    fig.update_yaxes(title="nats")
    return fig


def response_view(path: str) -> None:
    """Pick a step and a response; show its tokens."""
    index = app_data.responses(path)
    if index.is_empty():
        app_ui.empty("no token rows: the Recorder keeps token rows for token_sample responses per step "
                     "(token_sample > 0)", "Tokens")
        return
    steps = index["step"].unique().sort().to_list()
    step = steps[0]
    if len(steps) > 1:
        step = st.select_slider("Step", options=steps, value=steps[-1], key="tok_step")
    rows = index.filter(pl.col("step") == step)
    options = list(range(rows.height))

    def label(i: int) -> str:
        r = rows.row(i, named=True)
        bits = [f"sample {r['sample_id']}"] + ([f"rank {r['rank']}"] if index["rank"].n_unique() > 1 else [])
        if r.get("reward") is not None:
            bits.append(f"reward {r['reward']:.2f}")
        if r.get("advantage") is not None:
            bits.append(f"advantage {r['advantage']:+.2f}")
        bits.append(f"{r['tokens']} tokens" + (f", {r['hwe']} HWE" if r["hwe"] else ""))
        return " · ".join(bits)

    # first shown: the response with the most HWE positions, then the most uncertain one
    order = ["hwe", *(["entropy_mean"] if "entropy_mean" in rows.columns else [])]
    ranked = rows.with_row_index("i").sort(order, descending=True, nulls_last=True)
    first = int(ranked["i"][0])
    choice = st.selectbox("Response", options, index=first, format_func=label, key=f"tok_resp::{step}")
    r = rows.row(choice, named=True)
    tokens = app_data.response_tokens(path, r["step"], r["rank"], r["sample_id"])
    steps_df = app_data.steps(path)
    vmax = 1.0
    if "entropy_p99" in steps_df.columns and steps_df["entropy_p99"].drop_nulls().len():
        vmax = max(float(steps_df["entropy_p99"].max()), 0.1)
    cols = st.columns(4)
    cols[0].metric("tokens", str(tokens.height))
    cols[1].metric("mean entropy (nats)", app_ui.fmt(tokens["entropy"].mean(), ".4f"))
    cols[2].metric("reward", app_ui.fmt(r.get("reward"), ".3f"))
    cols[3].metric("HWE positions", str(int(tokens["is_hwe"].fill_null(False).sum())))
    st.html(tokens_html(r.get("prompt"), tokens, vmax))
    st.html(legend_html(vmax))
    st.plotly_chart(token_figure(tokens), key="token_bars")
    spans = app_data.response_spans(path, r["step"], r["rank"], r["sample_id"])
    if spans.height:
        st.caption("HWE spans of this response: " + "; ".join(
            f"tokens {a}–{b} (window entropy {w:.3f})"
            for a, b, w in zip(spans["start"], spans["end"], spans["mean_window_entropy"])))


def leaderboard_view(path: str) -> None:
    """The forking-token leaderboard, ranked as the user picks."""
    st.subheader("Forking-token leaderboard")
    by = st.segmented_control("Rank by", list(RANKINGS), format_func=RANKINGS.__getitem__, default="forking",
                              key="tok_rank") or "forking"
    board = app_data.leaderboard(path, by)
    if board.is_empty():
        app_ui.empty("no token seen 5 or more times was ever among its step's top 20% by entropy",
                     "Forking tokens")
        return
    left, right = st.columns([3, 2])
    left.dataframe(
        board.with_columns(pl.col("token").map_elements(lambda t: token_label(t, None),
                                                        return_dtype=pl.String)),
        hide_index=True, width="stretch",
        column_config={
            "forking_rate": st.column_config.NumberColumn("forking rate", format="percent"),
            "forking_share": st.column_config.NumberColumn("share of forking", format="percent"),
            "mean_entropy": st.column_config.NumberColumn("mean entropy", format="%.3f"),
        })
    top = board.head(12)
    fig = go.Figure(go.Bar(
        x=top[by].to_list(),
        y=[app_ui.plot_text(token_label(t, None)) + f" ({i})" for t, i in zip(top["token"], top["token_id"])],
        orientation="h", marker={"color": "#f58518"}))
    fig.update_layout(height=340, margin={"t": 10, "b": 30, "l": 10, "r": 10})
    fig.update_xaxes(title=RANKINGS[by])
    fig.update_yaxes(autorange="reversed", type="category")
    right.plotly_chart(fig, key="leaderboard_bars")
    st.caption("Forking tokens: at or above their step's 80th entropy percentile (Wang et al. 2025).")


def spans_view(path: str) -> None:
    """High-window-entropy span statistics and the strongest spans."""
    st.subheader("High-window-entropy spans")
    s = app_data.span_stats(path)
    if not s.get("n_spans"):
        app_ui.empty("no span rows: spans are kept for the sampled responses (token_sample > 0)", "HWE spans")
        return
    cols = st.columns(4)
    cols[0].metric("spans", str(s["n_spans"]))
    cols[1].metric("mean length (tokens)", app_ui.fmt(s.get("mean_length"), ".2f"))
    cols[2].metric("mean window entropy", app_ui.fmt(s.get("mean_window_entropy"), ".3f"))
    if "spans_per_response_start" in s:
        cols[3].metric("spans per response", app_ui.fmt(s["spans_per_response_end"], ".2f"),
                       delta=f"{s['spans_per_response_end'] - s['spans_per_response_start']:+.2f} from "
                             f"{s['spans_per_response_start']:.2f}", delta_color="off")
    if s.get("examples"):
        st.caption("The spans with the highest window entropy (end exclusive)")
        st.dataframe(pl.DataFrame(s["examples"]), hide_index=True, width="stretch", column_config={
            "sample_id": "sample", "text": "span text",
            "mean_window_entropy": st.column_config.NumberColumn("window entropy", format="%.3f"),
            "max_entropy": st.column_config.NumberColumn("max entropy", format="%.3f")})


def body(path: str) -> None:
    """The page for one run."""
    response_view(path)
    leaderboard_view(path)
    spans_view(path)


ctx = app_ui.context()
st.title("Tokens")
run_path = app_ui.pick_run(ctx)
if run_path is not None:
    app_ui.run_page(ctx, run_path, body)
