"""A run's whole analysis as one JSON-ready dict, its rich rendering, and ``entrodiag analyze``.

Every section of ``analyze_run`` is ``{"status": "ok", ...}`` or ``{"status": "empty", "reason":
...}``: a run with no evaluations, no token rows or a single step still gives a summary, and says
what is missing and why a section is empty.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import IO, Any

import polars as pl

from ._common import AnalysisError, RunLike, as_run, clean, edge_size, edge_values, late_start, step_series
from .collapse import SEVERITIES, CollapseThresholds, run_detectors, severity_rank
from .control import control_summary
from .forecast import forecast_entropy
from .law import choose_metric_or_explain, early_prediction, eval_names, fit_entropy_law
from .mechanism import mechanism_check
from ..store.reader import BAD_VALUES_WARNING, SKIP_WARNING
from ..store.values import describe as describe_bad_values
from ..metric_names import metric_notes
from .sources import entropy_notes, framework, log_hint, reward_series
from .tokens import entropy_distribution, forking_leaderboard, hwe_span_stats
from .verdicts import judge_law, withhold_early, withhold_law

#: Step columns shown in the dynamics table (when the run has them), with their labels.
DYNAMICS: dict[str, str] = {
    "entropy_mean": "entropy (token mean, nats)",
    "entropy_seq_mean": "entropy (seq mean, nats)",
    "reward_mean": "reward",
    "score_mean": "task score",
    "cov_mean": "cov(log p, A)",
    "entropy_pressure": "entropy pressure",
    "high_entropy_frac": "share > 0.672 nats",
    "hwe_token_frac": "HWE token share",
    "zero_adv_group_frac": "zero-advantage groups",
    "resp_len_mean": "response length",
    "clip_low_frac": "clipped low",
    "clip_high_frac": "clipped high",
    "kl": "KL",
}


def _empty(reason: str) -> dict:
    return {"status": "empty", "reason": reason}


def _dynamics(run, th: CollapseThresholds) -> dict:
    steps = run.steps
    if steps.is_empty():
        return _empty("no step rows: a Recorder writes them on flush and on close")
    rows = []
    k = None
    chosen = reward_series(run)
    labels = dict(DYNAMICS)
    if chosen is not None and chosen.kl:
        labels["reward_mean"] = "reward (holds a KL penalty)"
    for col, label in labels.items():
        s, v = step_series(run, col)
        if len(v) == 0:
            continue
        k = edge_size(len(v), th.edge_frac, th.edge_max)
        start, end = edge_values(v, k)
        rows.append({"name": col, "label": label, "start": start, "end": end, "change": end - start,
                     "ratio": end / start if start else None, "window": k,
                     **({"performance": True} if chosen is not None and col == chosen.column else {})})
    ev = run.evals
    for name in eval_names(run):
        e = ev.filter(pl.col("name") == name).drop_nulls("value").sort("step")
        v = e["value"].to_numpy()
        rows.append({"name": name, "label": f"eval {name}", "start": float(v[0]), "end": float(v[-1]),
                     "change": float(v[-1] - v[0]), "ratio": float(v[-1] / v[0]) if v[0] else None,
                     "window": 1, "best": float(v.max())})
    out = {"status": "ok", "rows": rows, "edge_steps": k}
    if steps.height == 1:
        out["note"] = "one step: start and end are the same step"
    elif k:
        out["note"] = f"start/end = median of the first/last {k} step(s); evals: first/last value"
    return out


def analyze_run(
    run: RunLike, *, metric: str | None = None, thresholds: dict[str, float] | None = None,
    top_tokens: int = 10, span_examples: int = 3,
) -> dict:
    """The full analysis of a run as a JSON-ready dict (NaN → null).

    Sections: ``run`` (identity, row counts), ``dynamics`` (start → end of the key step series
    and the evaluations), ``law`` (``fit_entropy_law``: a, b, ceiling, CIs, R², RMSE),
    ``early_prediction`` (f = 0.15, 0.3, 0.5), ``forecast`` (``forecast_entropy``: the step at
    which entropy reaches half its start, and the law's accuracy there), ``flags`` (``detect_collapse`` plus the detectors
    that could not judge and why), ``mechanism`` (``mechanism_check``), ``forking_tokens``,
    ``hwe_spans``, ``entropy_distribution``, ``control`` (``control_summary``: the entropy
    controller's target, band, time in band, overshoot, settling), and ``missing``: one line per
    missing input. ``run`` also holds ``skipped_parts`` (damaged part files left out, with the
    reason), ``bad_values`` (impossible values read as missing, per table, column and reason;
    ``Run.bad_values``) and ``late_start`` (``_common.late_start``: a log whose first step lies far
    after step 1, also said in ``missing``). ``reward`` says which step column is the reward
    (``sources.reward_series``: the task score where the logged reward holds a KL penalty) and
    ``metric_notes`` what the framework's logged names mean. ``law["verdict"]`` is
    ``verdicts.judge_law``'s; unless it fits, the law's ceiling, gain share, headroom, R̂ at the last
    step, the early prediction and the forecast's ``accuracy_at_floor`` are ``null``.

    Example:
        >>> s = analyze_run("runs/demo")                          # doctest: +SKIP
        >>> s["law"]["ceiling"], [f["kind"] for f in s["flags"]["items"]]  # doctest: +SKIP
    """
    th = CollapseThresholds.with_overrides(**(thresholds or {}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = as_run(run)
        steps = run.steps
        has_tokens = bool(run.parts("tokens"))
        names = eval_names(run)
        out: dict[str, Any] = {
            "run": {
                "path": str(run.path), "run_id": run.run_id, "status": run.status,
                **{k: run.meta.get(k) for k in ("source", "model", "task", "intervention", "world_size")},
                "steps": steps.height,
                "first_step": int(steps["step"].min()) if steps.height else None,
                "last_step": int(steps["step"].max()) if steps.height else None,
                "rows": {}, "eval_metrics": names,
            }
        }
        missing = []
        late = late_start(steps["step"].to_numpy()) if steps.height else None
        out["run"]["late_start"] = late
        if late is not None:
            missing.append(late["text"])
        if steps.is_empty():
            missing.append("no step rows: nothing was recorded yet (Recorder.record_batch writes them)")
        elif steps.height == 1:
            missing.append("a single step: trends, the law and the detectors need more steps")
        if not names:
            missing.append("no evaluations: the law and the early prediction need a held-out R; "
                           + (log_hint(run, "evals") or "log Recorder.log_eval(step, 'val/accuracy', value) "
                              "every few steps"))
        if not has_tokens:
            missing.append("no token rows: the forking-token leaderboard needs them ("
                           + (log_hint(run, "tokens") or "Recorder's token_sample > 0 keeps a few responses "
                              "per step") + ")")
        out["dynamics"] = _dynamics(run, th)
        statement, entropy_warnings = entropy_notes(run)
        out["entropy_semantics"] = {"statement": statement, "warnings": entropy_warnings,
                                    **(run.meta.get("entropy_semantics") or {})}
        imported = run.meta.get("imported") or {}
        logged = [*(imported.get("columns") or {}), *(imported.get("unrecognised") or [])]
        out["metric_notes"] = metric_notes(framework(run), logged)
        chosen = reward_series(run)
        out["reward"] = ({"status": "ok", **chosen.to_dict()} if chosen is not None
                         else _empty("no reward or task score in the step rows"))

        try:
            choice = choose_metric_or_explain(run, metric)
            out["metric"] = {"status": "ok", **choice.to_dict(), "text": choice.describe()}
        except AnalysisError as e:
            if metric is not None:  # a metric the caller named must exist and be a performance
                raise
            choice = None
            out["metric"] = _empty(str(e))
        flags, skipped = run_detectors(run, th)
        verdict = None
        try:
            if choice is None:
                raise AnalysisError(out["metric"]["reason"])
            fit = fit_entropy_law(run, metric=choice, smooth=th.smooth)
            verdict = judge_law(fit, [f.kind for f in flags], th.ceiling_min_r2)
            out["law"] = withhold_law({"status": "ok", **fit.to_dict(), "candidates": names}, verdict)
            rows = [r.to_dict() for r in early_prediction(fit)]
            out["early_prediction"] = withhold_early({"status": "ok", "rows": rows}, verdict)
        except AnalysisError as e:
            out["law"] = _empty(str(e))
            out["early_prediction"] = _empty("needs the law fit (see the law section)")

        try:
            fc = forecast_entropy(run, smooth=th.smooth)
            out["forecast"] = {"status": "ok", **fc.to_dict(), "text": fc.describe()}
            if fc.accuracy_at_floor is not None and (verdict is None or not verdict.fits):
                out["forecast"]["accuracy_at_floor"] = None  # the law does not describe the run
                out["forecast"]["text"] = fc.describe(law=False)
        except AnalysisError as e:
            out["forecast"] = _empty(str(e))

        out["flags"] = {"status": "ok", "items": [f.to_dict() for f in flags], "skipped": skipped,
                        "worst": flags[0].severity if flags else None}

        m = mechanism_check(run)
        out["mechanism"] = {"status": "ok" if m.verdict != "insufficient data" else "empty", **m.to_dict()}
        if m.verdict == "insufficient data":
            out["mechanism"]["reason"] = m.explanation

        if has_tokens:
            board = forking_leaderboard(run, top=top_tokens)
            out["forking_tokens"] = {"status": "ok", "rows": board.to_dicts()} if board.height else _empty(
                "no token seen 5 or more times in the token rows was ever among its step's forking tokens")
        else:
            out["forking_tokens"] = _empty("no token rows (Recorder token_sample=0, or nothing recorded yet)")
        spans = hwe_span_stats(run, examples=span_examples)
        out["hwe_spans"] = {"status": "ok", **spans} if spans.get("n_spans") else {
            **_empty("no span rows: spans are kept for the sampled responses (token_sample > 0)"), **spans}
        dist = entropy_distribution(run)
        out["entropy_distribution"] = {"status": "ok", **dist} if dist["segments"] else _empty(
            "no entropy histograms in the step rows")
        if framework(run) is not None:  # an imported run: say what to log in its framework
            for section, what, lead in (("mechanism", "cov_mean", "no covariance in the step rows"),
                                        ("forking_tokens", "tokens", "no token rows"),
                                        ("hwe_spans", "tokens", "no span rows"),
                                        ("entropy_distribution", "histograms", "no entropy histograms")):
                if out[section].get("status") == "empty":
                    out[section]["reason"] = f"{lead}: {log_hint(run, what)}"
        try:
            cs = control_summary(run)
            out["control"] = {"status": "ok", **cs.to_dict(), "text": cs.describe()}
        except AnalysisError as e:
            out["control"] = _empty(str(e))
        out["missing"] = missing
        # counted last: a part found damaged by one of the queries above is left out of them too
        out["run"]["rows"] = {t: (run.scan(t).select(pl.len()).collect().item() if run.parts(t) else 0)
                              for t in ("tokens", "samples", "spans", "evals")}
        out["run"]["skipped_parts"] = run.skipped()
        out["run"]["bad_values"] = run.bad_values()
    out["warnings"] = [str(w.message) for w in caught]
    return clean(out)


# ------------------------------------------------------------------------------------ rendering
def _f(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


_SEV_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def render_summary(summary: dict, file: IO[str] | None = None, width: int | None = None) -> None:
    """Print ``analyze_run``'s dict as rich tables (to ``file``, default stdout)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table

    con = Console(file=file, width=width, highlight=False, soft_wrap=False)
    r = summary["run"]
    con.rule(f"[bold]entrodiag analyze[/] {escape(r['run_id'])}")
    con.print(
        f"{escape(r['path'])}  status [bold]{escape(str(r['status']))}[/]  "
        f"source {escape(str(r.get('source')))}  "
        f"intervention {escape(str(r.get('intervention') or 'none'))}  steps {r['steps']}"
        + (f" ({r['first_step']}–{r['last_step']})" if r["steps"] else "")
        + "  rows: " + ", ".join(f"{k} {v}" for k, v in r["rows"].items())
    )
    m = summary.get("metric") or {}
    if m.get("status") == "ok":
        style = "bold yellow" if m.get("training") else "bold"
        con.print(f"[{style}]R[/] = {escape(m['name'])} ([{style}]{escape(m['label'])}[/]): {escape(m['reason'])}")
    elif m:
        con.print(f"[yellow]R[/]: {escape(str(m.get('reason')))}")
    rw = summary.get("reward") or {}
    if rw.get("status") == "ok" and rw.get("reason"):
        con.print(f"[bold yellow]reward series[/] = {escape(rw['column'])} ({escape(rw['label'])}): "
                  f"{escape(rw['reason'])}")
    sem = summary.get("entropy_semantics") or {}
    if sem.get("statement"):
        con.print(f"[dim]{escape(sem['statement'])}[/]")
    for line in sem.get("warnings", []):
        con.print(f"[yellow]approximation[/] {escape(line)}")
    by_meaning: dict[str, list[str]] = {}
    for name, meaning in (summary.get("metric_notes") or {}).items():
        by_meaning.setdefault(meaning, []).append(name)
    for meaning, logged in by_meaning.items():
        shown = ", ".join(logged[:4]) + (f" and {len(logged) - 4} more" if len(logged) > 4 else "")
        con.print(f"[dim]metric {escape(shown)}: {escape(meaning)}[/]")
    for line in summary.get("missing", []):
        con.print(f"[yellow]missing[/] {escape(line)}")
    for part in r.get("skipped_parts") or []:
        con.print(f"[bold red]skipped[/] {escape(part['path'])}: damaged, its rows are left out "
                  f"({escape(part['reason'])})")
    if r.get("bad_values"):
        con.print(f"[yellow]bad values[/] read as missing (impossible values; entrodiag inspect counts them): "
                  f"{escape(describe_bad_values(r['bad_values']))}")
    for w in summary.get("warnings", []):
        if not w.startswith((SKIP_WARNING, BAD_VALUES_WARNING)):  # said above
            con.print(f"[yellow]warning[/] {escape(w)}")

    def empty(title: str, section: dict) -> bool:
        if section.get("status") == "ok":
            return False
        con.print(f"\n[bold]{title}[/]: [dim]{escape(str(section.get('reason')))}[/]")
        return True

    d = summary["dynamics"]
    if not empty("Dynamics", d):
        t = Table(title="Dynamics", title_justify="left", caption=d.get("note"), caption_justify="left")
        for c in ("series", "start", "end", "change", "end/start"):
            t.add_column(c, justify="left" if c == "series" else "right")
        for row in d["rows"]:
            t.add_row(row["label"], _f(row["start"]), _f(row["end"]), _f(row["change"], "+.4g"),
                      _f(row["ratio"], ".3g"))
        con.print(t)

    law = summary["law"]
    if not empty("Entropy law R = −a·e^H + b", law):
        label = (law.get("metric_choice") or {}).get("label", "")
        t = Table(title=f"Entropy law R = −a·e^H + b  (R = {law['metric']}{', the ' + label if label else ''}, "
                  f"H = {law['entropy']}, "
                  f"trailing mean of {law['smooth']} steps; Cui et al. 2025)", title_justify="left")
        for c in ("", "estimate", f"{law['level']:.0%} CI"):
            t.add_column(c, justify="left" if not c else "right")
        v = law.get("verdict") or {}
        held = None if v.get("numbers_shown", True) else f"withheld ({v.get('status')})"

        def num(key: str, spec: str = ".4g") -> str:
            return held if held and law.get(key) is None else _f(law.get(key), spec)

        for k, label in (("a", "a"), ("b", "b"), ("ceiling", "ceiling b − a")):
            ci = law["ci"].get(k)
            t.add_row(label, num(k), f"[{_f(ci[0])}, {_f(ci[1])}]" if ci else "—")
        t.add_row("R² / RMSE / n", f"{_f(law['r2'], '.3f')} / {_f(law['rmse'])} / {law['n']}", "")
        t.add_row("R̂ at the last step", num("r_last"), "")
        t.add_row("fraction of the ceiling reached", num("ceiling_frac", ".1%"), "")
        t.add_row("share of the attainable gain realised", num("gain_frac", ".1%"), "")
        con.print(t)
        if v:
            style = "green" if v["status"] == "fits" else "bold yellow"
            con.print(f"law: [{style}]{escape(v['text'])}[/]")

    ep = summary["early_prediction"]
    if not empty("Early prediction", ep):
        fitted = [row for row in ep["rows"] if not row.get("reason")]
        if fitted:
            what = (law.get("metric_choice") or {}).get("label") or "R"
            level = fitted[0].get("level") or 0.9
            t = Table(title=f"Early prediction: fit the first f of the evaluations, predict the final {what} "
                      f"(given its entropy) with a {level:.0%} interval", title_justify="left")
            for c in ("f", "fit/test", "RMSE rest", "law final", f"estimate ± {level:.0%}", "actual", "error"):
                t.add_column(c, justify="right", no_wrap=True)
            for row in fitted:
                half = None if row.get("hi") is None else (row["hi"] - row["lo"]) / 2
                miss = "" if row.get("covered") in (None, True) else " [bold red]miss[/]"
                t.add_row(f"{row['frac']:.2f}", f"{row['n_fit']}/{row['n_test']}", _f(row["rmse"]),
                          _f(row["predicted_final"], ".3f"), f"{_f(row.get('estimate'), '.3f')} ± {_f(half, '.3f')}",
                          _f(row["actual_final"], ".3f"), _f(row.get("estimate_error"), "+.3f") + miss)
            con.print(t)
        else:
            con.print("\n[bold]Early prediction[/]: fit the first f of the evaluations, predict the rest")
        for row in ep.get("rows", []):
            if row.get("reason"):
                con.print(f"[dim]  f = {row['frac']:.2f}: {escape(row['reason'])}[/]")

    fc = summary.get("forecast", {"status": "empty", "reason": "not computed"})
    if not empty("Entropy forecast", fc):
        con.print(f"\n[bold]Entropy forecast[/] (log-linear decay, {fc['level']:.0%} interval): "
                  f"{escape(fc['text'])}")

    fl = summary["flags"]
    if fl["items"]:
        con.print(f"\n[bold]Flags[/] ({len(fl['items'])}, worst first)")
        for f in fl["items"]:
            con.print(f"[{_SEV_STYLE[f['severity']]}]{f['severity'].upper():<8}[/] [bold]{f['kind']}[/] "
                      f"(steps {f['first_step']}–{f['last_step']}): {escape(f['message'])}")
            con.print(Padding(f"[green]→ {escape(f['advice'])}[/]", (0, 0, 0, 9)))
    else:
        con.print("\n[bold]Flags[/]: [green]none raised[/]")
    by_reason: dict[str, list[str]] = {}
    for kind, why in fl["skipped"].items():
        by_reason.setdefault(why, []).append(kind)
    for why, kinds in by_reason.items():
        con.print(f"[dim]not judged: {', '.join(kinds)}: {escape(why)}[/]")

    m = summary["mechanism"]
    if not empty("Mechanism check (ΔH vs −cov)", m):
        t = Table(title=f"Mechanism check: ΔH ≈ −η·Cov(log π, A)  (ΔH from {escape(m['delta_source'])})",
                  title_justify="left")
        for c in ("predictor", "Pearson r", "p", "Spearman ρ", "same sign", "steps"):
            t.add_column(c, justify="right")
        t.add_row("−cov_mean", _f(m["pearson"], ".3f"), _f(m["pearson_p"], ".2g"), _f(m["spearman"], ".3f"),
                  f"{_f(m['sign_agreement'], '.0%')} (chance {_f(m['sign_chance'], '.0%')})", str(m["n"]))
        t.add_row("entropy_pressure", _f(m["pressure_pearson"], ".3f"), "", "",
                  _f(m["pressure_sign_agreement"], ".0%"), "")
        con.print(t)
        con.print(f"verdict: [bold]{m['verdict']}[/]: {escape(m['explanation'])}")

    ft = summary["forking_tokens"]
    if not empty("Forking tokens", ft):
        t = Table(title="Forking-token leaderboard (top 20% entropy of their step; Wang et al. 2025)",
                  title_justify="left")
        for c in ("token", "id", "seen", "forking", "rate", "mean entropy"):
            t.add_column(c, justify="left" if c == "token" else "right")
        for row in ft["rows"]:
            t.add_row(escape(repr(row["token"])), str(row["token_id"]), str(row["count"]),
                      str(row["forking"]),
                      _f(row["forking_rate"], ".0%"), _f(row["mean_entropy"], ".3f"))
        con.print(t)

    hs = summary["hwe_spans"]
    if not empty("High-window-entropy spans", hs):
        con.print(
            f"\n[bold]High-window-entropy spans[/] (ARES, w = 4): {hs['n_spans']} spans, mean length "
            f"{_f(hs.get('mean_length'), '.2f')} tokens, mean window entropy "
            f"{_f(hs.get('mean_window_entropy'), '.3f')}"
            + (f"; per sampled response {_f(hs.get('spans_per_response_start'), '.2f')} (start) → "
               f"{_f(hs.get('spans_per_response_end'), '.2f')} (end)" if "spans_per_response" in hs else "")
            + (f"; HWE token share {_f(hs.get('hwe_token_frac_start'), '.1%')} → "
               f"{_f(hs.get('hwe_token_frac_end'), '.1%')}" if "hwe_token_frac_start" in hs else "")
        )
        for ex in hs.get("examples", []):
            text = "" if ex["text"] is None else escape(repr(ex["text"]))
            con.print(f"  step {ex['step']} sample {ex['sample_id']} tokens {ex['start']}–{ex['end']}: "
                      f"window entropy {_f(ex['mean_window_entropy'], '.3f')}  {text}")

    ctl = summary.get("control", {"status": "empty"})
    if ctl.get("status") == "ok":
        con.print(f"\n[bold]Entropy control[/]: {escape(ctl['text'])}")

    dist = summary["entropy_distribution"]
    if not empty("Entropy distribution", dist):
        t = Table(title="Token-entropy distribution over training (all tokens, from the histograms)",
                  title_justify="left")
        names = list(dist["segments"][0]["coarse"])
        for c in ("steps", *names, "p50", "p90", "p99"):
            t.add_column(c, justify="right")
        for seg in dist["segments"]:
            t.add_row(f"{seg['first_step']}–{seg['last_step']}",
                      *[_f(seg["coarse"][n], ".1%") for n in names],
                      _f(seg.get("entropy_p50"), ".3f"), _f(seg.get("entropy_p90"), ".3f"),
                      _f(seg.get("entropy_p99"), ".3f"))
        con.print(t)


def cli_analyze(path: str, *, as_json: bool = False, fail_on: str | None = None,
                thresholds: dict[str, float] | None = None, out: IO[str] | None = None,
                metric: str | None = None) -> int:
    """``entrodiag analyze``: print the analysis; 1 when ``fail_on`` (or worse) was flagged, else 0.

    ``thresholds`` override ``CollapseThresholds`` fields (an unknown name raises ``ValueError``).
    ``RunError`` (not a run) propagates; the CLI maps it to exit code 2.
    """
    if fail_on is not None:
        severity_rank(fail_on)
    summary = analyze_run(path, thresholds=thresholds, metric=metric)
    out = out or sys.stdout
    if as_json:
        out.write(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    else:
        render_summary(summary, file=out)
    if fail_on is None:
        return 0
    bad = [f for f in summary["flags"]["items"] if severity_rank(f["severity"]) >= severity_rank(fail_on)]
    if bad:
        kinds = ", ".join(f"{f['kind']} ({f['severity']})" for f in bad)
        print(f"entrodiag analyze: {len(bad)} flag(s) at or above {fail_on}: {kinds}", file=sys.stderr)
        return 1
    return 0


__all__ = ["DYNAMICS", "SEVERITIES", "analyze_run", "cli_analyze", "render_summary"]
