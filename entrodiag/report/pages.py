"""The report's pages, one builder each: summary, dynamics, the law, the entropy distribution and
forking tokens, example responses, the mechanism check, the comparison, and the appendix.

A builder takes the ``ReportData`` and returns its pages (a text page that overflows continues on
a new one). ``plan`` decides which pages a run supports; a page whose data is missing is left out
and the summary says, in one line each, what is missing and what to log to get it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..analysis.sources import HINTS, framework, log_hint
from ..analysis.tokens import shown_token
from ..store.reader import BAD_VALUES_WARNING, SKIP_WARNING
from ..store.values import describe as describe_bad_values
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
from .style import (
    COLORS,
    RUN_PALETTE,
    SEVERITY_COLORS,
    SIZE,
    event_style,
    fmt,
    fmt_ci,
    fmt_pct,
    text_width,
    visible,
)

#: A one-line headline per flag kind, for the verdict.
HEADLINES: dict[str, str] = {
    "early_collapse": "entropy collapsed early",
    "entropy_floor": "entropy reached a floor and the reward plateaued",
    "entropy_explosion": "entropy exploded while the reward fell",
    "positive_covariance": "the log-prob/advantage covariance stayed positive",
    "vanishing_signal": "the learning signal is vanishing",
    "high_entropy_extinction": "the high-entropy (forking) tokens died out",
    "entropy_volatility": "entropy is volatile",
    "length_collapse": "response length collapsed",
    "ceiling_exhausted": "the entropy law's ceiling is nearly reached",
}

#: Dynamics rows shown among the key numbers on the summary (with their unit).
KEY_ROWS: dict[str, str] = {
    "entropy_mean": "entropy, token mean (nats)",
    "reward_mean": "reward",
    "score_mean": "task score",
    "cov_mean": "cov(log p, A)",
    "high_entropy_frac": "share of tokens > 0.672 nats",
    "zero_adv_group_frac": "zero-advantage groups",
    "resp_len_mean": "response length (tokens)",
}


@dataclass
class Section:
    """A page in the plan: its title, its builder, or why it is left out."""

    title: str
    build: Callable[[ReportData], list[Page]] | None
    reason: str | None = None


# ------------------------------------------------------------------------------------ plan
def plan(d: ReportData) -> list[Section]:
    """The pages this run supports, in order (left-out ones carry their reason)."""
    s = d.summary
    law = d.section("law")
    mech = d.section("mechanism")
    dist = d.section("entropy_distribution")
    ft = d.section("forking_tokens")
    out = [Section("Summary", summary_pages)]
    if s["run"]["steps"]:
        out.append(Section("Dynamics", dynamics_pages))
    else:
        out.append(Section("Dynamics", None, "no step rows: nothing was recorded yet"))
    if d.section("control").get("status") == "ok":  # only runs trained with an entropy target
        out.append(Section("Entropy control", control_pages))
    if law.get("status") == "ok" and d.fit is not None:
        out.append(Section("The entropy law", law_pages))
    else:
        out.append(Section("The entropy law", None, law.get("reason") or "the law could not be fitted"))
    if dist.get("status") == "ok" or ft.get("status") == "ok":
        out.append(Section("Entropy distribution and forking tokens", distribution_pages))
    else:
        out.append(Section("Entropy distribution and forking tokens", None,
                           f"{dist.get('reason')}; {ft.get('reason')}"))
    if s["run"]["rows"].get("tokens"):
        out.append(Section("Example responses", examples_pages))
    else:
        out.append(Section("Example responses", None, "no token rows: " + (
            log_hint(d.run, "tokens") or "the Recorder keeps token rows for token_sample responses per step "
            "(token_sample > 0)")))
    if mech.get("status") == "ok":
        out.append(Section("Mechanism check", mechanism_pages))
    else:
        out.append(Section("Mechanism check", None, mech.get("reason") or mech.get("explanation")))
    if d.others:
        out.append(Section("Comparison", comparison_pages))
    out.append(Section("Appendix: configuration", appendix_pages))
    return out


def render(d: ReportData) -> list[Page]:
    """Every page of the report, in order. The summary is drawn last (and placed first), so that it
    names every damaged part file that any page's query had to skip."""
    built: list[list[Page]] = []
    for section in plan(d):
        if section.build is not None and section.build is not summary_pages:
            built.append(section.build(d))
    return [page for pages in [summary_pages(d), *built] for page in pages]


# ---------------------------------------------------------------------------------- summary
def _verdict(d: ReportData) -> tuple[str, str]:
    """One sentence on the run and the colour to print it in."""
    flags = [f for f in d.section("flags").get("items", []) if f["severity"] in ("critical", "warning")]
    if flags:
        f = flags[0]
        more = len(d.section("flags")["items"]) - 1
        steps = f"steps {f['first_step']}–{f['last_step']}"
        text = (f"{f['severity'].capitalize()}: {HEADLINES.get(f['kind'], f['kind'])} ({steps}): {f['message']}; "
                f"what to change: {f['advice']}" + (f" ({more} more flag(s) below)." if more else "."))
        return text, SEVERITY_COLORS[f["severity"]]
    rows = {r["name"]: r for r in d.section("dynamics").get("rows", [])}
    parts = []
    if "entropy_mean" in rows:
        r = rows["entropy_mean"]
        parts.append(f"entropy went from {fmt(r['start'], '.3g')} to {fmt(r['end'], '.3g')} nats")
    metric = d.metric or (d.eval_names[0] if d.eval_names else None)
    if metric in rows:
        r = rows[metric]
        parts.append(f"{metric} from {fmt(r['start'], '.3g')} to {fmt(r['end'], '.3g')}")
    law = d.section("law")
    verdict = law.get("verdict") or {}
    if law.get("status") == "ok" and verdict.get("status") != "fits":
        parts.append(f"the entropy law: {verdict.get('text')}")
    elif law.get("status") == "ok" and law.get("ceiling_frac") is not None:
        parts.append(f"the run reached {fmt_pct(law['ceiling_frac'])} of the law's ceiling"
                     + (" (on the training reward)" if (law.get("metric_choice") or {}).get("training") else ""))
    info = d.section("flags").get("items", [])
    head = "No collapse detected" + (f" (only {len(info)} informational flag(s))" if info else "")
    return head + (": " + ", ".join(parts) if parts else "") + ".", "#2e6b30"


def _meta_rows(d: ReportData) -> list[tuple[str, str]]:
    r = d.summary["run"]
    meta = d.run.meta
    steps = f"{r['steps']}" + (f" (steps {r['first_step']}–{r['last_step']})" if r["steps"] else "")
    rows = r.get("rows", {})
    counts = ", ".join(f"{k} {v:,}" for k, v in rows.items())
    events = d.run.events.height
    return [
        ("run", r["run_id"]), ("path", r["path"]),
        ("status", r["status"]), ("source", r.get("source")),
        ("model", r.get("model")), ("task", r.get("task")),
        ("intervention", r.get("intervention") or "none"), ("steps", steps),
        ("world size", r.get("world_size")), ("entropy temperature", meta.get("entropy_temperature")),
        ("created", meta.get("created")), ("rows", counts + (f", events {events}" if events else "")),
        ("evaluations", ", ".join(r.get("eval_metrics") or []) or "none"),
        ("entrodiag", meta.get("entrodiag_version")),
        *([("entropy", _entropy_short(d.section("entropy_semantics")))]
          if d.section("entropy_semantics").get("statement") else []),
    ]


def _entropy_short(sem: dict) -> str:
    """The entropy column's kind, aggregation and temperature in a few words (run.json)."""
    kind = {"token_entropy": "full-vocabulary", "sampled_neglogp": "sampled −log p"}.get(sem.get("kind"), "kind unknown")
    agg = (sem.get("aggregation") or "aggregation unknown").replace("_", " ")
    temp = sem.get("temperature")
    return f"{sem.get('column')}: {kind}, {agg}, T {'unknown' if temp is None else temp}"


def _forecast_line(d: ReportData) -> str | None:
    fc = d.summary.get("forecast")
    if not isinstance(fc, dict) or fc.get("status") != "ok":
        return None
    acc = fc.get("accuracy_at_floor")
    if (d.section("law").get("verdict") or {}).get("status") != "fits":
        acc = None  # the law does not describe the run: no prediction from it
    law = f"; the law predicts {d.metric or 'accuracy'} {fmt(acc, '.3g')} there" if acc is not None else ""
    floor = f"{fmt(fc.get('floor'), '.3g')} nats"
    if fc.get("reached_step") is not None:
        return f"Entropy already fell below half its start ({floor}) at step {fc['reached_step']}{law}."
    if fc.get("predicted_step") is not None:
        lo, hi = fc.get("predicted_low"), fc.get("predicted_high")
        interval = f" (interval {lo}–{hi})" if lo is not None and hi is not None else ""
        left = f", {fc['steps_left']} steps from now" if fc.get("steps_left") is not None else ""
        return f"Entropy reaches half its start ({floor}) at step {fc['predicted_step']}{interval}{left}{law}."
    return f"Entropy is not forecast to reach half its start ({floor}) from its current trend."


def summary_pages(d: ReportData) -> list[Page]:
    """Run metadata, the verdict, the key numbers, the law, every flag with its advice, and what
    the data does not show."""
    pages: list[Page] = []
    first = Page("Entropy diagnostic report",
                 "What happened to this RL fine-tuning run's entropy, why, and what to change. "
                 "Every number comes from entrodiag.analysis (as `entrodiag analyze` prints it).")
    pages.append(first)
    flow = TextFlow(pages, lambda: Page("Summary (continued)"), page=first)

    meta = [(k, visible(v, limit=120)) for k, v in _meta_rows(d)]
    half = (len(meta) + 1) // 2
    cols = [Column("", 1.3), Column("", 3.9), Column("", 1.3), Column("", 4.0)]
    rows = []
    for i in range(half):
        right = meta[half + i] if half + i < len(meta) else ("", "")
        rows.append([meta[i][0], meta[i][1], right[0], right[1]])
    flow.table(cols, rows, header=False, size=SIZE["small"])

    text, color = _verdict(d)
    flow.heading("Verdict")
    flow.para(text, size=10.0, color=color, weight="bold", keep=True)
    fc = _forecast_line(d)
    if fc:
        flow.gap(0.03)
        flow.para(fc, size=SIZE["body"], keep=True)

    _skipped(d, flow)
    _key_numbers(d, flow)
    _flags(d, flow)
    _events(d, flow)
    _missing(d, flow)
    return pages


def _skipped(d: ReportData, flow: TextFlow) -> None:
    """The damaged part files the reader skipped (their rows are in no number of this report)."""
    skipped = d.run.skipped()
    if not skipped:
        return
    flow.heading(f"Damaged files skipped ({len(skipped)})", color=COLORS["missing"])
    flow.para("These part files of the run cannot be decoded; their rows are left out of every number "
              "and figure of this report. `entrodiag inspect RUN` checks every file.",
              size=SIZE["small"], color=COLORS["missing"])
    for part in skipped:
        flow.para(f"• {visible(part['path'], limit=90)}: {visible(part['reason'], limit=160)}",
                  size=SIZE["small"], hang=0.12, color=COLORS["missing"])


def _key_numbers(d: ReportData, flow: TextFlow) -> None:
    dyn = d.section("dynamics")
    law = d.section("law")
    rows = []
    if dyn.get("status") == "ok":
        by_name = {r["name"]: r for r in dyn["rows"]}
        for name, label in KEY_ROWS.items():
            if name in by_name:
                r = by_name[name]
                label = r["label"] if name == "reward_mean" else label  # says when it holds a KL penalty
                rows.append([label, fmt(r["start"]), fmt(r["end"]), fmt(r["change"], "+.3g"), ""])
        for name in d.eval_names:
            if name in by_name:
                r = by_name[name]
                rows.append([visible(name, limit=40) + (" (R)" if name == d.metric else ""), fmt(r["start"]),
                             fmt(r["end"]), fmt(r["change"], "+.3g"), f"best {fmt(r.get('best'))}"])
    n_left = len(rows) + 2
    n_right = 11 if law.get("status") == "ok" else 3
    flow.heading("Key numbers")
    flow.ensure(max(n_left, n_right) * line_height(SIZE["small"]) + 0.3)
    top = flow.y
    mid = flow.page.left + 5.35
    left = TextFlow(flow.pages, flow.make_page, page=flow.page, top=top, x1=mid - 0.2)
    if rows:
        left.table([Column("quantity", 2.05), Column("start", 0.72, "right"), Column("end", 0.72, "right"),
                    Column("change", 0.72, "right"), Column("", 0.85, "right")], rows)
        if dyn.get("note"):
            left.line(visible(dyn["note"]), size=SIZE["tiny"], color=COLORS["muted"])
    else:
        left.para(f"Dynamics not available: {dyn.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    right = TextFlow(flow.pages, flow.make_page, page=flow.page, top=top, x0=mid)
    if law.get("status") == "ok":
        right.line("Entropy law R = −a·e^H + b", size=SIZE["small"], weight="bold")
        right.para(metric_line(d), size=SIZE["tiny"],
                   color=COLORS["missing"] if (law.get("metric_choice") or {}).get("training") else COLORS["muted"])
        level = fmt_pct(law.get("level", 0.95))
        ci = law.get("ci", {})
        right.table(
            [Column("", 2.25), Column("estimate", 1.35, "right"), Column(f"{level} interval", 1.6, "right")],
            [["a", fmt(law["a"]), fmt_ci(ci.get("a"))],
             ["b", fmt(law["b"]), fmt_ci(ci.get("b"))],
             ["ceiling b − a (R at H = 0)", _law_number(d, fmt(law["ceiling"])), fmt_ci(ci.get("ceiling"))],
             ["R² / RMSE / points", f"{fmt(law['r2'], '.3f')} / {fmt(law['rmse'], '.3g')} / {law['n']}", ""],
             ["the law's R at the last step", _law_number(d, fmt(law.get("r_last"))), ""],
             ["fraction of the ceiling reached", _law_number(d, fmt_pct(law.get("ceiling_frac"), 1)), ""],
             ["share of the attainable gain realised", _law_number(d, fmt_pct(law.get("gain_frac"), 1)), ""]],
        )
        verdict = law.get("verdict") or {}
        if verdict:
            right.para(f"Law: {verdict['text']}", size=SIZE["small"],
                       color="#2e6b30" if verdict["status"] == "fits" else COLORS["missing"])
    else:
        right.line("Entropy law R = −a·e^H + b", size=SIZE["small"], weight="bold")
        right.para(f"Not fitted: {law.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    flow.y = min(left.y, right.y)


def _law_number(d: ReportData, text: str) -> str:
    """A number predicted by the law, or 'withheld (<verdict>)' where the law does not describe the
    run (the analysis has nulled it; ``verdicts.judge_law``)."""
    if d.law_fits:
        return text
    return f"withheld ({(d.section('law').get('verdict') or {}).get('status', 'no verdict')})"


def _metric_short(d: ReportData) -> str:
    """``R = name (label)``."""
    m = d.section("metric")
    return f"R = {visible(d.section('law')['metric'], limit=40)}" + (f" ({m['label']})" if m.get("label") else "")


def metric_line(d: ReportData) -> str:
    """Which metric is R and why, with H and its smoothing (the analysis' ``metric`` section)."""
    law, m = d.section("law"), d.section("metric")
    what = f"R = {visible(law['metric'], limit=40)}"
    if m.get("status") == "ok":
        what += f" ({m['label']}: {m['reason']})"
    return f"{what}; H = {law['entropy']} (trailing mean of {law['smooth']} steps); Cui et al. 2025"


def _flags(d: ReportData, flow: TextFlow) -> None:
    fl = d.section("flags")
    items = fl.get("items", [])
    flow.heading(f"Flags ({len(items)}, worst first)" if items else "Flags")
    if not items:
        flow.para("No collapse flag raised by the detectors that could judge this run.", color="#2e6b30")
    for f in items:
        color = SEVERITY_COLORS.get(f["severity"], COLORS["text"])
        flow.ensure(3 * line_height(SIZE["body"]) + 0.05)
        flow.line(f"{f['severity'].upper()}   {f['kind']}   steps {f['first_step']}–{f['last_step']}",
                  weight="bold", color=color)
        flow.para(f["message"], indent=0.25, size=SIZE["body"])
        flow.para(f"→ {f['advice']}", indent=0.25, hang=0.15, size=SIZE["body"], color="#2e6b30")
        flow.gap(0.05)
    skipped = fl.get("skipped") or {}
    by_reason: dict[str, list[str]] = {}
    for kind, why in skipped.items():
        by_reason.setdefault(why, []).append(kind)
    for why, kinds in by_reason.items():
        flow.para(f"Not judged: {', '.join(kinds)}: {why}", size=SIZE["small"], color=COLORS["muted"], hang=0.15)


def event_lines(d: ReportData, limit: int = 12) -> list[tuple[str, str]]:
    """(text, colour) per recorded event (flags raised live, switches, stops, alerts), each text
    starting with the event's marker on the entropy plot."""
    ev = d.run.events
    lines = []
    for row in ev.head(limit).iter_rows(named=True):
        color, _, char, _ = event_style(row.get("kind"), row.get("severity"))
        sev = f" ({row['severity']})" if row.get("severity") else ""
        name = "→ " + str(row.get("name")) if row.get("kind") == "switch" else str(row.get("name") or "")
        msg = f": {row['message']}" if row.get("message") else ""
        lines.append((f"{char} step {row.get('step')} · {row.get('kind')} {name}{sev}{msg}", color))
    if ev.height > limit:
        lines.append((f"… and {ev.height - limit} more event(s)", COLORS["muted"]))
    return lines


def _events(d: ReportData, flow: TextFlow) -> None:
    lines = event_lines(d)
    if not lines:
        return
    flow.heading("Events recorded during training")
    for line, color in lines:
        flow.para(line, size=SIZE["small"], hang=0.15, color=color)


def _hints_once(d: ReportData, lines: list[str]) -> list[str]:
    """An imported run's framework hint in full the first time, then 'as above' (one hint, many lines)."""
    fw = framework(d.run)
    hints = sorted(set(HINTS.get(fw, {}).values()), key=len, reverse=True) if fw else []
    seen: set[str] = set()
    out = []
    for line in lines:
        for h in hints:
            if h in line:
                line = line.replace(h, "as above") if h in seen else line
                seen.add(h)
        out.append(line)
    return out


def _missing(d: ReportData, flow: TextFlow) -> None:
    lines = list(d.summary.get("missing") or [])
    left_out = [s for s in plan(d) if s.build is None]
    lines += [f"{s.title} page left out: {s.reason}" for s in left_out]
    lines += [f"analysis warning: {w}" for w in d.summary.get("warnings") or []
              if not w.startswith((SKIP_WARNING, BAD_VALUES_WARNING))]  # said separately
    bad = d.summary["run"].get("bad_values")
    if bad:
        lines.append(f"impossible values, read as missing: {describe_bad_values(bad)}")
    lines += [f"approximation: {w}" for w in d.section("entropy_semantics").get("warnings") or []]
    reward = d.section("reward")
    if reward.get("status") == "ok" and reward.get("reason"):
        lines.append(f"reward series: {reward['column']} ({reward['label']}): {reward['reason']}")
    if not lines:
        return
    lines = _hints_once(d, lines)
    flow.heading("What this report cannot show", color=COLORS["missing"])
    for line in lines:
        flow.para(f"• {line}", size=SIZE["small"], hang=0.12, color=COLORS["missing"])


# --------------------------------------------------------------------------------- dynamics
def dynamics_pages(d: ReportData) -> list[Page]:
    """Entropy (mean and quantile band, with events), reward, evaluations, covariance,
    response length and shares against step."""
    page = Page("Dynamics", "Per-step aggregates over every valid token of the step (long series: faint per "
                "step, solid trailing mean of 5 steps); markers on the entropy plot are events recorded live.")
    lines = event_lines(d, limit=6)
    bottom = page.bottom + (len(lines) + 1) * line_height(SIZE["small"]) + 0.2 if lines else page.bottom
    gs = page.chart_grid(2, 3, bottom=bottom)
    fig = page.fig
    axes = [fig.add_subplot(gs[i, j]) for i in range(2) for j in range(3)]
    law_reason = d.section("law").get("reason") if not d.eval_names else None
    plot_entropy(axes[0], d.run, d.run.events, xlabel=False)
    plot_reward(axes[1], d.run, xlabel=False)
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
    page = Page("The entropy law", "Cui et al. 2025: validation performance R = −a·e^H + b in the training "
                "entropy H; at H = 0 the law's ceiling is b − a. Early fits use the first 15/30/50% of the "
                "evaluations and predict the rest. " + _metric_short(d) + ".")
    text_h = 2.3
    gs = page.chart_grid(1, 2, bottom=page.bottom + text_h, gap_x=1.65, width_ratios=[1.25, 1.0])
    ax_law = page.fig.add_subplot(gs[0, 0])
    ax_steps = page.fig.add_subplot(gs[0, 1])
    sc = plot_law(ax_law, fit, d.early, ceiling=d.law_fits)
    page.colorbar(sc, [ax_law], "step")
    plot_law_steps(ax_steps, fit, d.early)

    law = d.section("law")
    top = page.bottom + text_h - 0.1
    mid = page.left + 4.6
    left = TextFlow([page], None, page=page, top=top, x1=mid - 0.2)
    left.line("Fitted on all evaluations", size=SIZE["small"], weight="bold")
    ci = law.get("ci", {})
    left.table([Column("", 1.9), Column("estimate", 0.9, "right"), Column(f"{fmt_pct(law.get('level'))} interval",
                                                                           1.5, "right")],
               [["a", fmt(law["a"]), fmt_ci(ci.get("a"))], ["b", fmt(law["b"]), fmt_ci(ci.get("b"))],
                ["ceiling b − a", _law_number(d, fmt(law["ceiling"])), fmt_ci(ci.get("ceiling"))],
                ["R²", fmt(law["r2"], ".3f"), ""],
                ["RMSE (fitted points)", fmt(law["rmse"], ".3g"), f"{law['n']} points"],
                ["fraction of ceiling reached", _law_number(d, fmt_pct(law.get("ceiling_frac"), 1)), ""],
                ["headroom to the ceiling", _law_number(d, fmt(law.get("headroom"), ".3g")), ""]])
    m = d.section("metric")
    if m.get("training"):
        left.para(f"Why this R: {m['reason']}", size=SIZE["tiny"], color=COLORS["missing"])
    verdict = law.get("verdict") or {}
    if verdict:
        left.para(f"Law: {verdict['text']}", size=SIZE["tiny"],
                  color="#2e6b30" if verdict["status"] == "fits" else COLORS["missing"])
    right = TextFlow([page], None, page=page, top=top, x0=mid)
    right.line("Early prediction: fit the first f of the evaluations, predict the rest", size=SIZE["small"],
               weight="bold")
    ep = d.section("early_prediction")
    rows, notes = [], []
    for r in ep.get("rows", []):
        if r.get("reason"):
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
        verdict = law.get("verdict") or {}
        if verdict.get("status") not in (None, "fits"):
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
    dist = d.section("entropy_distribution")
    flow.line("Share of tokens by entropy, by training segment", size=SIZE["body"], weight="bold")
    if dist.get("status") == "ok":
        names = list(dist["segments"][0]["coarse"])
        rows = [[f"{s['first_step']}–{s['last_step']}", *[fmt_pct(s["coarse"][n], 1) for n in names],
                 fmt(s.get("entropy_p50"), ".3f"), fmt(s.get("entropy_p90"), ".3f")] for s in dist["segments"]]
        flow.table([Column("steps", 0.85), *[Column(n, 0.78, "right") for n in names],
                    Column("p50", 0.55, "right"), Column("p90", 0.55, "right")], rows)
        flow.line("shares in nats; p50/p90: mean of the step quantiles", size=SIZE["tiny"], color=COLORS["muted"])
    else:
        flow.para(f"Not available: {dist.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    flow.gap(0.15)
    ft = d.section("forking_tokens")
    flow.line("Forking-token leaderboard", size=SIZE["body"], weight="bold")
    flow.line("tokens most often among their step's top 20% by entropy", size=SIZE["tiny"], color=COLORS["muted"])
    if ft.get("status") == "ok":
        rows = [[visible(shown_token(r["token"]), mono=True, limit=18), str(r["token_id"]), f"{r['count']:,}", f"{r['forking']:,}",
                 fmt_pct(r["forking_rate"]), fmt(r["mean_entropy"], ".3f")] for r in ft["rows"]]
        flow.table([Column("token", 1.2, mono=True), Column("id", 0.5, "right"), Column("seen", 0.6, "right"),
                    Column("forking", 0.62, "right"), Column("rate", 0.55, "right"),
                    Column("mean H (nats)", 1.0, "right")], rows)
        flow.line("from the token rows (a sample of responses per step)", size=SIZE["tiny"], color=COLORS["muted"])
    else:
        flow.para(f"Not shown: {ft.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    flow.gap(0.15)
    hs = d.section("hwe_spans")
    flow.line("High-window-entropy spans (ARES, w = 4)", size=SIZE["body"], weight="bold")
    if hs.get("status") == "ok":
        text = (f"{hs['n_spans']:,} spans in the sampled responses, mean length {fmt(hs.get('mean_length'), '.2f')} "
                f"tokens, mean window entropy {fmt(hs.get('mean_window_entropy'), '.3f')} nats")
        if hs.get("spans_per_response_start") is not None:
            text += (f"; spans per response {fmt(hs['spans_per_response_start'], '.2f')} (start) → "
                     f"{fmt(hs.get('spans_per_response_end'), '.2f')} (end)")
        if hs.get("hwe_token_frac_start") is not None:
            text += (f"; HWE token share {fmt_pct(hs['hwe_token_frac_start'], 1)} → "
                     f"{fmt_pct(hs.get('hwe_token_frac_end'), 1)}")
        flow.para(text + ".", size=SIZE["small"])
    else:
        flow.para(f"Not shown: {hs.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    return [page]


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


# -------------------------------------------------------------------------------- appendix
def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, value) pairs, sorted by key."""
    if isinstance(obj, dict) and obj:
        out: list[tuple[str, Any]] = []
        for k in sorted(obj, key=str):
            out += _flatten(obj[k], f"{prefix}{k}.")
        return out
    return [(prefix.rstrip("."), obj)]


_TIMES = ("heartbeat", "finished", "time")


def _value(v: Any, key: str = "") -> str:
    if isinstance(v, float) and v > 1e9 and key.rsplit(".", 1)[-1] in _TIMES:  # unix seconds
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(v)) + "Z"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str, ensure_ascii=False)
    if isinstance(v, float):
        return fmt(v, ".6g")
    return str(v)


def _pairs(flow: TextFlow, items: list[tuple[str, Any]]) -> None:
    """(key, value) pairs in three column pairs when every value fits, else in two."""
    size = SIZE["tiny"] + 0.5
    cells = [(visible(k, mono=True), visible(_value(v, k), mono=True)) for k, v in items]
    total = flow.x1 - flow.x0
    for ncols in (3, 2):
        width = total / ncols
        key_w = min(2.1, max((text_width(k, size, mono=True) for k, _ in cells), default=1.0) + 0.15)
        if ncols == 2 or all(text_width(v, size, mono=True) <= width - key_w - 0.12 for _, v in cells):
            break
    per = (len(cells) + ncols - 1) // ncols
    rows = []
    for i in range(per):
        row: list[str] = []
        for c in range(ncols):
            k, v = cells[c * per + i] if c * per + i < len(cells) else ("", "")
            row += [k, v]
        rows.append(row)
    columns = []
    for _ in range(ncols):
        columns += [Column("", key_w, mono=True), Column("", width - key_w, mono=True)]
    flow.table(columns, rows, header=False, size=size)


def appendix_pages(d: ReportData) -> list[Page]:
    """The run's configuration (run.json ``config``), its other metadata, and definitions."""
    pages: list[Page] = []
    first = Page("Appendix: configuration", "The training configuration and run metadata as stored in run.json.")
    pages.append(first)
    flow = TextFlow(pages, lambda: Page("Appendix (continued)"), page=first)
    meta = dict(d.run.meta)
    config = meta.pop("config", None) or {}
    flow.heading("Training configuration")
    if isinstance(config, dict) and config:
        _pairs(flow, [(k, v) for k, v in _flatten(config)])
    else:
        flow.para("run.json has no config (pass config= to the Recorder to keep the hyper-parameters here).",
                  size=SIZE["small"], color=COLORS["missing"])
    edges = meta.pop("entropy_hist_edges", None)
    recorder = meta.pop("recorder", None)
    if isinstance(recorder, dict) and recorder:
        flow.heading("Recorder settings")
        _pairs(flow, [(k, v) for k, v in _flatten(recorder)])
    flow.heading("Run metadata")
    items = [(k, v) for k, v in _flatten(meta)]
    if edges:
        finite = [e for e in edges if e is not None]
        items.append(("entropy_hist_edges", f"{len(edges) - 1} bins, {finite[0]:g} … {finite[-1]:g} nats"
                      + (", last bin open" if edges[-1] is None else "")))
    _pairs(flow, items)
    flow.heading("Definitions")
    for line in DEFINITIONS:
        flow.para(line, size=SIZE["small"], hang=0.15, keep=True)
    return pages


DEFINITIONS: tuple[str, ...] = (
    ("Entropy H: token entropy of the policy over the full vocabulary, in nats, at temperature 1 unless "
     "run.json says otherwise; entropy_mean is the mean over every valid response token of the step."),
    ("cov(log p, A): covariance between a token's log-probability and its advantage over the step's tokens "
     "(Cui et al. 2025, Eq. 10); positive covariance lowers entropy."),
    ("Entropy pressure: mean over tokens of −A·S*, S* = p·(H + log p), a first-order prediction of ΔH "
     "(Wang et al. 2026)."),
    ("Entropy law: R = −a·e^H + b fitted on (training entropy, validation metric) pairs; the ceiling b − a is "
     "the performance the law allows at H = 0 (Cui et al. 2025)."),
    "Forking tokens: tokens at or above their step's 80th entropy percentile (Wang et al. 2025, the 80/20 rule).",
    ("HWE span: a maximal run of positions whose window entropy (mean entropy of the next 4 tokens) is above "
     "the step's 95th percentile (ARES)."),
    "Zero-advantage group: a group whose rewards are all equal gives no gradient (COPO).",
)


__all__ = ["DEFINITIONS", "HEADLINES", "KEY_ROWS", "Section", "appendix_pages", "comparison_pages",
           "distribution_pages", "dynamics_pages", "event_lines", "examples_pages", "law_pages",
           "mechanism_pages", "plan", "render", "summary_pages"]
