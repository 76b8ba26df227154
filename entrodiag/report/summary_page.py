"""The report's first page: the verdict, the run's metadata, the key numbers, the flags with their
advice, the events recorded live and, in one line each, what is missing and what to log to get it;
and the lines other pages share (the law's numbers or why they are withheld, which metric is R).
"""

from __future__ import annotations

from ..analysis.ceilings import ceilings_line
from ..analysis.sources import HINTS, framework
from ..analysis.verdicts import withheld_text
from ..store.reader import BAD_VALUES_WARNING, SKIP_WARNING
from ..store.values import describe as describe_bad_values
from .contents import contents
from .data import ReportData
from .layout import Column, Page, TextFlow, line_height
from .style import COLORS, SEVERITY_COLORS, SIZE, event_style, fmt, fmt_ci, fmt_pct, visible

#: A one-line headline per flag kind, for the verdict.
HEADLINES: dict[str, str] = {
    "early_collapse": "entropy collapsed early",
    "entropy_floor": "entropy reached a floor and the reward plateaued",
    "entropy_explosion": "entropy exploded while the reward fell",
    "entropy_spike": "entropy spiked while the reward fell, and recovered",
    "positive_covariance": "the log-prob/advantage covariance stayed positive",
    "vanishing_signal": "the learning signal is vanishing",
    "high_entropy_extinction": "the high-entropy (forking) tokens died out",
    "entropy_volatility": "entropy is volatile",
    "length_collapse": "response length collapsed",
    "ceiling_exhausted": "the entropy law's ceiling is nearly reached",
    "template_collapse": "the answers stopped depending on their prompts (template collapse)",
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
    if d.section("flags").get("judged") == 0:  # every detector in the not-judged list: nothing was checked
        why = "; ".join(dict.fromkeys(d.section("flags").get("skipped", {}).values()))
        head = f"Collapse not judged yet: no detector could judge this run ({why})"
        return head + (": " + ", ".join(parts) if parts else "") + ".", COLORS["text"]
    head = "No collapse detected" + (f" (only {len(info)} informational flag(s))" if info else "")
    return head + (": " + ", ".join(parts) if parts else "") + ".", "#2e6b30"


def _meta_rows(d: ReportData) -> list[tuple[str, str]]:
    r = d.summary["run"]
    meta = d.run.meta
    steps = f"{r['steps']}" + (f" (steps {r['first_step']}–{r['last_step']})" if r["steps"] else "")
    rows = r.get("rows", {})
    counts = ", ".join(f"{k} {v:,}" for k, v in rows.items())
    events = d.run.events.height
    sem = d.section("entropy_semantics")
    return [
        ("run", r["run_id"]), ("path", r["path"]),
        ("status", r["status"]), ("source", r.get("source")),
        ("model", r.get("model")), ("task", r.get("task")),
        ("intervention", r.get("intervention") or "none"), ("steps", steps),
        ("world size", r.get("world_size")),
        # an imported run's entropy line (below) says its temperature; run.json's own is for recorded runs
        *([] if sem.get("statement") else [("entropy temperature", meta.get("entropy_temperature"))]),
        ("created", meta.get("created")), ("rows", counts + (f", events {events}" if events else "")),
        ("evaluations", ", ".join(r.get("eval_metrics") or []) or "none"),
        ("entrodiag", meta.get("entrodiag_version")),
        *([("entropy", _entropy_short(sem))] if sem.get("statement") else []),
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
    if fc.get("applies") is False:
        return (f"The entropy forecast (when it reaches half its start, {floor}) does not apply: "
                f"{fc.get('reason')}.")
    if fc.get("reached_step") is not None:
        return f"Entropy already fell below half its start ({floor}) at step {fc['reached_step']}{law}."
    if fc.get("predicted_step") is not None:
        lo, hi = fc.get("predicted_low"), fc.get("predicted_high")
        interval = f" (interval {lo}–{hi})" if lo is not None and hi is not None else ""
        if fc.get("ended"):
            left = f", {fc['steps_left']} steps after its end" if fc.get("steps_left") is not None else ""
            return (f"The run ended at step {fc.get('current_step')}; at its final trend the entropy "
                    f"would have reached half its start ({floor}) at step {fc['predicted_step']}{interval}{left}{law}.")
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
    n_left = len(rows) + 3
    n_right = 4 + len(LAW_ROWS) if law.get("status") == "ok" else 3
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
    compute_lines(d, left, SIZE["tiny"])  # under the shorter column: the page has no line to spare
    right = TextFlow(flow.pages, flow.make_page, page=flow.page, top=top, x0=mid)
    right.line("Entropy law R = −a·e^H + b", size=SIZE["small"], weight="bold")
    if law.get("status") == "ok":
        right.para(metric_line(d), size=SIZE["tiny"],
                   color=COLORS["missing"] if (law.get("metric_choice") or {}).get("training") else COLORS["muted"])
        law_table(d, right, size=SIZE["small"])
    else:
        right.para(f"Not fitted: {law.get('reason')}", size=SIZE["small"], color=COLORS["missing"])
    flow.y = min(left.y, right.y)


#: The law's rows on every page that shows them: (label, key, format); the keys in
#: ``verdicts.LAW_NUMBERS`` are predictions of the law, withheld unless it fits (the headroom is
#: the ceiling less the law's R at the last step, both shown).
LAW_ROWS: tuple[tuple[str, str, str], ...] = (
    ("a", "a", ".4g"),
    ("b", "b", ".4g"),
    ("ceiling b − a (R at H = 0)", "ceiling", ".4g"),
    ("R² / RMSE / points", "r2", ""),
    ("the law's R at the last step", "r_last", ".4g"),
    ("fraction of the ceiling reached", "ceiling_frac", "%"),
    ("share of the attainable gain realised", "gain_frac", "%"),
)


def law_table(d: ReportData, flow: TextFlow, size: float = SIZE["small"]) -> None:
    """The law's numbers as one table (the same rows and words on the summary and the law page),
    each prediction of the law replaced by ``withheld (<verdict>)`` where the law does not describe
    the run, then the verdict in one line. Fills the flow's width."""
    law = d.section("law")
    ci = law.get("ci", {})
    rows = []
    for label, key, spec in LAW_ROWS:
        if key == "r2":
            value = f"{fmt(law['r2'], '.3f')} / {fmt(law['rmse'], '.3g')} / {law['n']}"
        elif spec == "%":
            value = law_number(d, fmt_pct(law.get(key), 1))
        else:
            value = fmt(law.get(key), spec) if key in ("a", "b") else law_number(d, fmt(law.get(key), spec))
        rows.append([label, value, fmt_ci(ci.get(key)) if key in ("a", "b", "ceiling") else ""])
    width = flow.x1 - flow.x0  # 4.9 inches or more: no label, verdict or interval is cut
    estimate, interval = 1.5, 1.25
    flow.table([Column("", width - estimate - interval), Column("estimate", estimate, "right"),
                Column(f"{fmt_pct(law.get('level', 0.95))} interval", interval, "right")], rows, size=size)
    verdict = law.get("verdict") or {}
    if verdict:
        flow.para(f"Law: {verdict['text']}", size=size,
                  color="#2e6b30" if verdict["status"] == "fits" else COLORS["missing"])


def compute_lines(d: ReportData, flow: TextFlow, size: float = SIZE["small"]) -> None:
    """Both ceilings on one line (``analysis.ceilings``). The law page's caller adds why the compute
    sigmoid gives no number where it gives none (the summary page has no room for it)."""
    flow.para(f"Ceilings: {visible(ceilings_line(d.summary), limit=200)}", size=size)


def law_number(d: ReportData, text: str) -> str:
    """A number predicted by the law, or 'withheld (<verdict>)' where the law does not describe the
    run (the analysis has nulled it; ``verdicts.judge_law``)."""
    if d.law_fits:
        return text
    return withheld_text(d.section("law").get("verdict"))


def metric_short(d: ReportData) -> str:
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
    if not items and fl.get("judged") == 0:
        flow.para("Not judged yet: no detector could judge this run (why: below).")
    elif not items:
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
        flow.para(f"Not judged: {', '.join(kinds)}: {why}", size=SIZE["small"], color=COLORS["muted"],
                  hang=0.15, keep=True)


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
        flow.para(line, size=SIZE["small"], hang=0.15, color=color, keep=True)


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
    lines += [f"{title} page left out: {reason}" for title, reason in contents(d) if reason is not None]
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
        flow.para(f"• {line}", size=SIZE["small"], hang=0.12, color=COLORS["missing"], keep=True)
