"""The report's pages on the run's numbers, one builder each: dynamics, entropy control, the law,
the entropy distribution and forking tokens, example responses, the mechanism check, the comparison.
"""

from __future__ import annotations

from ..analysis.ceilings import compute_why
from ..analysis.tokens import shown_token
from ..analysis.verdicts import withheld_text
from .data import ReportData, mechanism_points
from .examples import draw_examples, fit_examples, pick_examples
from .figures import (
    plot_compare,
    plot_control,
    plot_covariance,
    plot_entropy,
    plot_entropy_heatmap,
    plot_evals,
    plot_law,
    plot_law_steps,
    plot_length,
    plot_mechanism,
    plot_reward,
    plot_shares,
    share_colorbar,
)
from .layout import Column, Page, TextFlow, line_height
from .style import COLORS, RUN_PALETTE, SEVERITY_COLORS, SIZE, fmt, fmt_pct, visible
from .summary_page import compute_lines, event_lines, law_table, metric_short


# --------------------------------------------------------------------------------- dynamics
def dynamics_pages(d: ReportData) -> list[Page]:
    """Entropy (mean and quantile band, with events), reward, evaluations, covariance,
    response length and shares against step."""
    lines = event_lines(d, limit=6)
    page = Page("Dynamics", "Per-step aggregates over every valid token of the step (long series: faint per "
                "step, solid trailing mean of 5 steps)"
                + ("; markers on the entropy plot are events recorded live." if lines else "."))
    bottom = page.bottom + (len(lines) + 1) * line_height(SIZE["small"]) + 0.2 if lines else page.bottom
    gs = page.chart_grid(2, 3, bottom=bottom)
    fig = page.fig
    axes = [fig.add_subplot(gs[i, j]) for i in range(2) for j in range(3)]
    law_reason = d.section("law").get("reason") if not d.eval_names else None
    plot_entropy(axes[0], d.run, d.run.events, xlabel=False)
    reward = d.section("reward")  # the task score where the logged reward holds a KL penalty
    plot_reward(axes[1], d.run, xlabel=False, **({"column": reward["column"], "label": reward["label"]}
                                                  if reward.get("status") == "ok" else {}))
    plot_evals(axes[2], d.run, d.eval_names, d.metric, xlabel=False, reason=law_reason)
    plot_covariance(axes[3], d.run)
    plot_length(axes[4], d.run)
    plot_shares(axes[5], d.run)
    if lines:
        flow = TextFlow([page], None, page=page, top=bottom - 0.1)
        flow.line("Events recorded during training (markers on the entropy plot)", size=SIZE["small"],
                  weight="bold")
        for line, color in lines:
            flow.line(visible(line), size=SIZE["small"], color=color)
    return [page]


# ------------------------------------------------------------------------------ entropy control
def control_pages(d: ReportData) -> list[Page]:
    """Entropy against the controller's target and band, the controller's output, and the numbers
    of ``analysis.control``: time in band, overshoot, settling."""
    from ..analysis.control import control_series

    c = d.section("control")
    note = ("No controller acted (entropy_control none): the run is measured against the target and band it was "
            "given; the dotted line is the configured control start." if c["mode"] == "none" else
            "The controller sets the entropy-bonus coefficient, or (pi_clip) an effort u that moves both clip bounds "
            "(|u| ≤ 0.25, shaded) and then the share of tokens detached by covariance, from the error "
            "target − entropy of each step (entrodiag.trainer.controllers); the dotted line is where it starts acting.")
    page = Page("Entropy control", note)
    text_h = 1.6
    gs = page.chart_grid(2, 1, bottom=page.bottom + text_h)
    ax, knob_ax = page.fig.add_subplot(gs[0, 0]), page.fig.add_subplot(gs[1, 0])
    plot_control(ax, knob_ax, control_series(d.run), c)
    flow = TextFlow([page], None, page=page, top=page.bottom + text_h - 0.1)
    flow.para(visible(c.get("text") or ""), size=SIZE["body"])
    flow.gap(0.04)
    settle = "never" if c.get("settling_steps") is None else f"{c['settling_steps']} (step {c['settling_step']})"
    flow.table([Column("controller", 1.2), Column("target (nats)", 1.0, "right"), Column("band", 1.2, "right"),
                Column("time in band", 1.0, "right"), Column("overshoot", 1.1, "right"),
                Column("settling steps", 1.2, "right")],
               [[c["mode"], fmt(c.get("target"), ".3f"), f"{fmt(c['band'][0], '.3f')}–{fmt(c['band'][1], '.3f')}",
                 fmt_pct(c.get("time_in_band")), f"{fmt(c.get('overshoot'), '.3f')} nats", settle]])
    return [page]


# -------------------------------------------------------------------------------------- law
def law_pages(d: ReportData) -> list[Page]:
    """Performance against entropy with the fitted law, its band, the ceiling and the early
    fits; the same against step; the numbers below."""
    fit = d.fit
    assert fit is not None
    points = "steps" if d.section("metric").get("training") else "evaluations"
    early = f"Early fits use the first 15/30/50% of the {points} and predict the rest. " if d.law_fits else ""
    page = Page("The entropy law", "Cui et al. 2025: performance R = −a·e^H + b in the training entropy H; "
                f"at H = 0 the law's ceiling is b − a. {early}{metric_short(d)}.")
    text_h = 2.3
    gs = page.chart_grid(1, 2, bottom=page.bottom + text_h, gap_x=1.65, width_ratios=[1.25, 1.0])
    ax_law = page.fig.add_subplot(gs[0, 0])
    ax_steps = page.fig.add_subplot(gs[0, 1])
    sc = plot_law(ax_law, fit, d.early, ceiling=d.law_fits)
    page.colorbar(sc, [ax_law], "step")
    plot_law_steps(ax_steps, fit, d.early, law=d.law_fits)

    law = d.section("law")
    top = page.bottom + text_h - 0.1
    mid = page.left + 5.1
    left = TextFlow([page], None, page=page, top=top, x1=mid - 0.2)
    left.line(f"Fitted on all {law['n']} {points}", size=SIZE["small"], weight="bold")
    law_table(d, left, size=SIZE["small"])
    compute_lines(d, left, SIZE["small"])
    reason = compute_why(d.summary)
    if reason:  # why the compute asymptote (in compute_lines' Ceilings line) has no number
        left.para(f"Compute sigmoid (ScaleRL): {visible(reason, limit=240)}", size=SIZE["tiny"],
                  color=COLORS["missing"])
    m = d.section("metric")
    if m.get("training"):
        left.para(f"Why this R: {m['reason']}", size=SIZE["tiny"], color=COLORS["missing"])
    right = TextFlow([page], None, page=page, top=top, x0=mid)
    right.line(f"Early prediction: fit the first f of the {points}, predict the rest", size=SIZE["small"],
               weight="bold")
    ep = d.section("early_prediction")
    withheld = withheld_text(law.get("verdict"))
    rows, notes = [], []
    for r in ep.get("rows", []):
        if r.get("reason"):
            if r["reason"] != withheld:  # the verdict's withholding is said once, below
                notes.append(f"f = {r['frac']:.2f}: {r['reason']}")
            continue
        half = None if r.get("hi") is None else (r["hi"] - r["lo"]) / 2
        rows.append([f"{r['frac']:.2f}", f"{r['n_fit']} / {r['n_test']}", fmt(r["rmse"], ".3g"),
                     fmt(r["predicted_final"], ".3g"), f"{fmt(r.get('estimate'), '.3g')} ± {fmt(half, '.2g')}",
                     fmt(r["actual_final"], ".3g"),
                     fmt(r.get("estimate_error"), "+.3g") + ("" if r.get("covered") in (None, True) else " miss")])
    if rows:
        level = fmt_pct((ep.get("rows") or [{}])[0].get("level", 0.9))
        right.table([Column("f", 0.4, "right"), Column("fit / test", 0.7, "right"), Column("RMSE", 0.6, "right"),
                     Column("law final", 0.75, "right"), Column(f"estimate ± {level}", 1.25, "right"),
                     Column("actual", 0.6, "right"), Column("error", 0.75, "right")], rows)
        if not d.law_fits:
            right.para("The law does not describe this run: read these rows as a backtest, not a forecast.",
                       size=SIZE["small"], color=COLORS["missing"])
    for note in notes:
        right.para(note, size=SIZE["small"], color=COLORS["missing"])
    if ep.get("status") != "ok":
        right.para(f"Not available: {ep.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    right.para("Cui et al. fitted the first ~15% of steps and predicted the rest with RMSE ≈ 1%.",
               size=SIZE["tiny"], color=COLORS["muted"])
    return [page]


# ---------------------------------------------------------------------------- distribution
def distribution_pages(d: ReportData) -> list[Page]:
    """The histogram heatmap over training, the coarse shares by segment, the forking-token
    leaderboard and the HWE span statistics."""
    page = Page("Entropy distribution and forking tokens",
                "Wang et al. 2025: a minority of high-entropy 'forking' tokens (top 20% of their step) carries "
                "the learning; below, which tokens fork and how the distribution moved.")
    split = page.left + 6.0
    gs = page.chart_grid(1, 1, right=split, reserve_right=0.95)
    ax = page.fig.add_subplot(gs[0, 0])
    mesh = plot_entropy_heatmap(ax, d.run, d.run.meta.get("entropy_hist_edges") or [])
    if mesh is not None:
        share_colorbar(page, mesh, ax)

    flow = TextFlow([page], None, page=page, x0=split + 0.25)
    dist = _subsection(flow, d, "entropy_distribution", "Share of tokens by entropy, by training segment",
                       first=True)
    if dist is not None:
        names = list(dist["segments"][0]["coarse"])
        rows = [[f"{s['first_step']}–{s['last_step']}", *[fmt_pct(s["coarse"][n], 1) for n in names],
                 fmt(s.get("entropy_p50"), ".3f"), fmt(s.get("entropy_p90"), ".3f")] for s in dist["segments"]]
        flow.table([Column("steps", 0.85), *[Column(n, 0.78, "right") for n in names],
                    Column("p50", 0.55, "right"), Column("p90", 0.55, "right")], rows)
        flow.line("shares in nats; p50/p90: mean of the step quantiles", size=SIZE["tiny"], color=COLORS["muted"])
    ft = _subsection(flow, d, "forking_tokens", "Forking-token leaderboard",
                     note="tokens most often among their step's top 20% by entropy")
    if ft is not None:
        rows = [[visible(shown_token(r["token"]), mono=True, limit=18), str(r["token_id"]), f"{r['count']:,}",
                 f"{r['forking']:,}", fmt_pct(r["forking_rate"]), fmt(r["mean_entropy"], ".3f")]
                for r in ft["rows"]]
        flow.table([Column("token", 1.2, mono=True), Column("id", 0.5, "right"), Column("seen", 0.6, "right"),
                    Column("forking", 0.62, "right"), Column("rate", 0.55, "right"),
                    Column("mean H (nats)", 1.0, "right")], rows)
        flow.line("from the token rows (a sample of responses per step)", size=SIZE["tiny"], color=COLORS["muted"])
    hs = _subsection(flow, d, "hwe_spans", "High-window-entropy spans (ARES, w = 4)")
    if hs is not None:
        text = (f"{hs['n_spans']:,} spans in the sampled responses, mean length {fmt(hs.get('mean_length'), '.2f')} "
                f"tokens, mean window entropy {fmt(hs.get('mean_window_entropy'), '.3f')} nats")
        if hs.get("spans_per_response_start") is not None:
            text += (f"; spans per response {fmt(hs['spans_per_response_start'], '.2f')} (start) → "
                     f"{fmt(hs.get('spans_per_response_end'), '.2f')} (end)")
        if hs.get("hwe_token_frac_start") is not None:
            text += (f"; HWE token share {fmt_pct(hs['hwe_token_frac_start'], 1)} → "
                     f"{fmt_pct(hs.get('hwe_token_frac_end'), 1)}")
        flow.para(text + ".", size=SIZE["small"])
    return [page]


def _subsection(flow: TextFlow, d: ReportData, name: str, title: str, *, note: str | None = None,
                first: bool = False) -> dict | None:
    """A titled block of a text column (``note``: a tiny line under the title) for the analysis
    section ``name``: the section when it has something to show, else ``None`` after one line
    saying why not."""
    if not first:
        flow.gap(0.15)
    flow.line(title, size=SIZE["body"], weight="bold")
    if note:
        flow.line(note, size=SIZE["tiny"], color=COLORS["muted"])
    section = d.section(name)
    if section.get("status") == "ok":
        return section
    flow.para(f"Not shown: {section.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    return None


# -------------------------------------------------------------------------------- examples
def examples_pages(d: ReportData) -> list[Page]:
    """Sampled responses with token entropy as colour and HWE positions underlined, and the
    spans with the highest window entropy."""
    page = Page("Example responses", "Responses the Recorder kept as token rows, at the first, middle and last "
                "recorded step: the highest-, median- and lowest-entropy one. Token text as recorded (⏎ newline, "
                "⇥ tab, ␣ a space, □ a character the font cannot draw).")
    hs = d.section("hwe_spans")
    spans = (hs.get("examples") or []) if hs.get("status") == "ok" else []
    spans_h = (len(spans) + 2) * line_height(SIZE["small"]) + 0.15 if spans else 0.0
    examples = pick_examples(d.run, per_stage=3)
    if not examples:
        TextFlow([page], None, page=page).para(
            "No token rows to show: the Recorder keeps token rows for token_sample responses per step.",
            color=COLORS["missing"])
        return [page]
    examples = fit_examples(examples, page.width, page.top - page.bottom - spans_h)
    y = draw_examples(page, examples, top=page.top, bottom=page.bottom + spans_h)
    if spans:
        flow = TextFlow([page], None, page=page, top=y - 0.1)
        flow.line("Spans with the highest mean window entropy", size=SIZE["body"], weight="bold")
        for ex in spans:
            flow.line(f"step {ex['step']} · sample {ex['sample_id']} · tokens {ex['start']}–{ex['end']} · window "
                      f"entropy {fmt(ex['mean_window_entropy'], '.3f')} nats · max {fmt(ex['max_entropy'], '.3f')}:  "
                      f"{visible(ex.get('text'), limit=90)}", size=SIZE["small"])
    return [page]


# ------------------------------------------------------------------------------- mechanism
def mechanism_pages(d: ReportData) -> list[Page]:
    """Measured ΔH against −cov and against entropy pressure, step by step, with the verdict."""
    m = d.section("mechanism")
    page = Page("Mechanism check", "Cui et al. 2025: ΔH ≈ −η·Cov(log π, A): positive covariance drains entropy. "
                "Wang et al. 2026: entropy pressure (mean of −A·S*) predicts ΔH token by token.")
    text_h = 1.85
    gs = page.chart_grid(1, 2, bottom=page.bottom + text_h, reserve_right=0.75)
    pts = mechanism_points(d.run)
    ax1, ax2 = page.fig.add_subplot(gs[0, 0]), page.fig.add_subplot(gs[0, 1])
    sc = plot_mechanism(ax1, pts["cov"], xlabel="−cov(log p, A) of the step", title="ΔH against −covariance",
                        reason="no cov_mean in the step rows", color=COLORS["covariance"])
    sc2 = plot_mechanism(ax2, pts["pressure"], xlabel="entropy pressure of the step (mean −A·S*)",
                         title="ΔH against entropy pressure",
                         reason="no entropy_pressure in the step rows: pass logprobs (or logits) to record_batch",
                         color=COLORS["pressure"])
    if sc is not None or sc2 is not None:
        page.colorbar(sc if sc is not None else sc2, [ax1, ax2], "step")

    flow = TextFlow([page], None, page=page, top=page.bottom + text_h - 0.1)
    verdict_color = {"agrees": "#2e6b30", "agrees in sign": "#2e6b30", "disagrees": SEVERITY_COLORS["critical"]}
    flow.line(f"Verdict: {m.get('verdict')}", size=10.5, weight="bold",
              color=verdict_color.get(m.get("verdict"), COLORS["text"]))
    flow.para(m.get("explanation") or "", size=SIZE["body"])
    flow.line(visible(f"ΔH from: {m.get('delta_source')}; {m.get('n')} steps; mean ΔH "
                      f"{fmt(m.get('mean_delta'), '+.3g')} nats, mean −cov {fmt(m.get('mean_neg_cov'), '+.3g')}"),
              size=SIZE["small"], color=COLORS["muted"])
    flow.gap(0.04)
    flow.table([Column("predictor", 1.6), Column("Pearson r", 0.9, "right"), Column("p", 0.8, "right"),
                Column("Spearman ρ", 0.95, "right"), Column("same sign", 0.9, "right"),
                Column("chance", 0.8, "right")],
               [["−cov_mean", fmt(m.get("pearson"), ".3f"), fmt(m.get("pearson_p"), ".2g"), fmt(m.get("spearman"), ".3f"),
                 fmt_pct(m.get("sign_agreement")), fmt_pct(m.get("sign_chance"))],
                ["entropy_pressure", fmt(m.get("pressure_pearson"), ".3f"), "", "",
                 fmt_pct(m.get("pressure_sign_agreement")), ""]])
    return [page]


# ------------------------------------------------------------------------------ comparison
def comparison_pages(d: ReportData) -> list[Page]:
    """The runs side by side: entropy, reward and the evaluation metric against step, and the
    table of ``compare_runs``."""
    runs = [d.run, *d.others]
    colors = [RUN_PALETTE[i % len(RUN_PALETTE)] for i in range(len(runs))]
    page = Page("Comparison", "This run (black) beside the runs given with --compare; on this page a colour "
                "stands for a run, not a quantity. Long series are drawn as their trailing mean of 5 steps.")
    table = d.comparison
    n = table.height if table is not None else 0
    text_h = min(3.4, 0.45 + (n + 1) * line_height(SIZE["small"]) + 0.35)
    gs = page.chart_grid(1, 3, bottom=page.bottom + text_h)
    metric = d.metric or (d.eval_names[0] if d.eval_names else None)
    axes = [page.fig.add_subplot(gs[0, i]) for i in range(3)]
    plot_compare(axes[0], runs, colors, "entropy_mean", title="Entropy", ylabel="entropy, token mean (nats)",
                 legend=True)
    plot_compare(axes[1], runs, colors, "reward_mean", title="Training reward", ylabel="reward")
    if metric:
        plot_compare(axes[2], runs, colors, "", title=f"Evaluation: {visible(metric, limit=30)}",
                     ylabel=visible(metric, limit=30), evals=metric)
    else:
        from .figures import missing

        missing(axes[2], "Evaluation", "this run has no evaluations to compare")
    if table is None:
        return [page]
    flow = TextFlow([page], None, page=page, top=page.bottom + text_h - 0.1)
    flow.line("compare_runs: start/end = medians of the first/last steps; the law fitted per run (ceiling only "
              "where it fits)", size=SIZE["small"],
              weight="bold")
    rows, row_colors = [], []
    for i, r in enumerate(table.iter_rows(named=True)):
        rows.append([
            visible(r["run"], limit=40), visible(r["intervention"], limit=20), str(r["steps"]),
            f"{fmt(r['entropy_start'], '.3g')} → {fmt(r['entropy_end'], '.3g')}",
            f"{fmt(r['reward_start'], '.3g')} → {fmt(r['reward_end'], '.3g')}",
            f"{fmt(r['eval_final'], '.3g')} ({fmt(r['eval_best'], '.3g')})",
            fmt(r["ceiling"], ".4g"), fmt(r["law_r2"], ".2f"), fmt_pct(r["cov_pos_share"]),
            visible(r["mechanism"]), visible(r["flags"] or "none"),
        ])
        row_colors.append(colors[i])
    flow.table([Column("run", 1.75), Column("intervention", 0.95), Column("steps", 0.5, "right"),
                Column("entropy (nats)", 1.05, "right"), Column("reward", 1.0, "right"),
                Column("eval end (best)", 1.05, "right"), Column("ceiling", 0.65, "right"),
                Column("R²", 0.45, "right"), Column("cov > 0", 0.6, "right"), Column("mechanism", 1.35),
                Column("flags", 1.25)], rows, row_colors=row_colors)
    for i, r in enumerate(table.iter_rows(named=True)):
        if r["flags"] and len(r["flags"]) > 18:
            flow.para(f"{r['run']}: {r['flags']}", size=SIZE["tiny"], color=colors[i], hang=0.15)
    return [page]
