"""A run's whole analysis as one JSON-ready dict (``analyze_run``; printed by ``analysis.render``).

Every section of ``analyze_run`` is ``{"status": "ok", ...}`` or ``{"status": "empty", "reason":
...}``: a run with no evaluations, no token rows or a single step still gives a summary, and says
what is missing and why a section is empty.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import polars as pl

from .collapse import DETECTORS, SEVERITIES, CollapseThresholds, run_detectors
from .compute_law import fit_compute_law, judge_compute, withhold_compute
from .control import control_summary
from .forecast import forecast_entropy
from .jsonable import clean
from .law import choose_metric_or_explain, early_prediction, fit_entropy_law
from .mechanism import mechanism_check
from .metric import eval_names
from ..metric_names import metric_notes
from .runs import AnalysisError, RunLike, as_run
from .series import edge_size, edge_values, late_start, step_series
from .sources import entropy_notes, framework, log_hint, reward_series
from ..store.schema import TABLES
from .tokens import entropy_distribution, hwe_span_stats, leaderboard_and_rows, read_token_rows
from .verdicts import judge_law, withhold_early, withhold_law
from .render import prepare as prepare_render
from .render import render_summary  # re-export: its old home

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
    "mi_proxy": "MI proxy (nats)",
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
    # the window of entropy's row (else the first row's); a sparser series (mi_proxy) has its own
    wins = {r["name"]: r["window"] for r in rows if r["name"] in labels}
    k = wins.get("entropy_mean", next(iter(wins.values()), None))
    out = {"status": "ok", "rows": rows, "edge_steps": k}
    if steps.height == 1:
        out["note"] = "one step: start and end are the same step"
    elif k:
        other = ", ".join(f"{n}: {w}" for n, w in wins.items() if w != k)
        out["note"] = (f"start/end = median of the first/last {k} step(s)" + (f" ({other})" if other else "")
                       + "; evals: first/last value")
    return out


def analyze_run(
    run: RunLike, *, metric: str | None = None, thresholds: dict[str, float] | None = None,
    top_tokens: int = 10, span_examples: int = 3,
) -> dict:
    """The full analysis of a run as a JSON-ready dict (NaN → null).

    Sections: ``run`` (identity, row counts), ``dynamics`` (start → end of the key step series
    and the evaluations), ``law`` (``fit_entropy_law``: a, b, ceiling, CIs, R², RMSE),
    ``early_prediction`` (f = 0.15, 0.3, 0.5), ``compute`` (``fit_compute_law``: the sigmoid of R
    against cumulative compute, its asymptote A and half-way step; ``judge_compute``'s verdict
    withholds them unless it fits), ``forecast`` (``forecast_entropy``: the step at
    which entropy reaches half its start, and the law's accuracy there; or, where its premise
    fails, why it does not apply), ``flags`` (``detect_collapse`` plus the detectors that could
    not judge and why; ``judged`` counts those that could, 0: nothing judged yet), ``mechanism``
    (``mechanism_check``), ``forking_tokens``, ``hwe_spans``, ``entropy_distribution``, ``control`` (``control_summary``: the entropy
    controller's target, band, time in band, overshoot, settling), and ``missing``: one line per
    missing input. ``run`` also holds ``skipped_parts`` (damaged part files left out, with the
    reason), ``bad_values`` (impossible values read as missing, per table, column and reason;
    ``Run.bad_values``) and ``late_start`` (``series.late_start``: a log whose first step lies far
    after step 1, also said in ``missing``; the series an import lost values of to parsing, run.json
    ``imported.lost``, are said there too). ``reward`` says which step column is the reward
    (``sources.reward_series``: the task score where the logged reward holds a KL penalty) and
    ``metric_notes`` what the framework's logged names mean. ``law["verdict"]`` is
    ``verdicts.judge_law``'s; unless it fits, the law's ceiling, gain share, headroom, R̂ at the last
    step, the early prediction and the forecast's ``accuracy_at_floor`` are ``null``.

    Example:
        >>> s = analyze_run("runs/demo")                          # doctest: +SKIP
        >>> s["law"]["ceiling"], [f["kind"] for f in s["flags"]["items"]]  # doctest: +SKIP
    """
    th = CollapseThresholds.with_overrides(**(thresholds or {}))
    with warnings.catch_warnings(record=True) as caught, ExitStack() as stack:
        warnings.simplefilter("always")
        run = as_run(run)
        steps = run.steps
        has_tokens = bool(run.parts("tokens"))
        names = eval_names(run)
        try:  # before the token pass starts: a metric the caller named must exist and be a performance
            choice, no_choice = choose_metric_or_explain(run, metric), None
        except AnalysisError as e:
            if metric is not None:
                raise
            choice, no_choice = None, e
        # the token rows are read once (leaderboard, row count, impossible values) in a worker
        # thread, while the step-level analyses below run (polars reads without holding the GIL);
        # they read only the step and evaluation rows, read by now. The worker reads a quiet copy of
        # the run (the same skipped parts): the parts it skips are warned about once it is over, so
        # that the warnings come in the same order at every run
        pending, seen = None, len(run.skipped_parts)
        if has_tokens:
            pool = ThreadPoolExecutor(1, thread_name_prefix="entrodiag-token-pass")
            stack.callback(pool.shutdown, wait=False, cancel_futures=True)
            pending = pool.submit(read_token_rows, replace(run, quiet=True), bad_values=True)
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
        lost = (run.meta.get("imported") or {}).get("lost") or {}
        if lost:  # what the importer could not read (lines a logger cut short, text that is not a number)
            worst = sorted(lost.items(), key=lambda kv: (-kv[1]["lost"] / max(kv[1]["of"], 1), kv[0]))
            missing.append(f"values lost to parsing on import, {len(lost)} series (run.json imported.lost): "
                           + "; ".join(f"{k} lost {e['lost']} of {e['of']} ({e['why']})" for k, e in worst[:5])
                           + (f"; and {len(lost) - 5} more" if len(lost) > 5 else ""))
        if steps.is_empty():
            missing.append("no step rows: nothing was recorded yet (Recorder.record_batch writes them)")
        elif steps.height == 1:
            missing.append("a single step: trends, the law and the detectors need more steps")
        no_evals_at = len(missing) if not names else None  # its line is said once R is chosen (below)
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

        out["metric"] = ({"status": "ok", **choice.to_dict(), "text": choice.describe()} if choice is not None
                         else _empty(str(no_choice)))
        if no_evals_at is not None:  # what the law and the early prediction stand on without evaluations
            uses = (f"the law and the early prediction use the {choice.label} {choice.name} instead, "
                    "a series the policy trained on (a held-out R is better)"
                    if choice is not None and choice.is_training
                    else "the law and the early prediction need a held-out R")
            missing.insert(no_evals_at, f"no evaluations: {uses}; "
                           + (log_hint(run, "evals") or "log Recorder.log_eval(step, 'val/accuracy', value) "
                              "every few steps"))
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
        try:  # the second ceiling, on the compute axis (ScaleRL's sigmoid; compute_law)
            if choice is None:
                raise AnalysisError(out["metric"]["reason"])
            cfit = fit_compute_law(run, metric=choice, smooth=th.smooth)
            out["compute"] = withhold_compute({"status": "ok", **cfit.to_dict()}, judge_compute(cfit))
        except AnalysisError as e:
            out["compute"] = _empty(str(e))

        try:
            fc = forecast_entropy(run, smooth=th.smooth)
            out["forecast"] = {"status": "ok", **fc.to_dict(), "text": fc.describe()}
            if fc.accuracy_at_floor is not None and (verdict is None or not verdict.fits):
                out["forecast"]["accuracy_at_floor"] = None  # the law does not describe the run
                out["forecast"]["text"] = fc.describe(law=False)
        except AnalysisError as e:
            out["forecast"] = _empty(str(e))

        out["flags"] = {"status": "ok", "items": [f.to_dict() for f in flags], "skipped": skipped,
                        "worst": flags[0].severity if flags else None,
                        "judged": len(DETECTORS) - len(skipped)}  # 0: no detector could judge the run

        m = mechanism_check(run)
        out["mechanism"] = {"status": "ok" if m.verdict != "insufficient data" else "empty", **m.to_dict()}
        if m.verdict == "insufficient data":
            out["mechanism"]["reason"] = m.explanation

        # what needs neither the token rows nor what the worker finds, while it reads them; the other
        # tables counted after the queries above (a part they found damaged is left out of them too)
        spans, dist = hwe_span_stats(run, examples=span_examples), entropy_distribution(run)
        try:
            cs = control_summary(run)
            control = {"status": "ok", **cs.to_dict(), "text": cs.describe()}
        except AnalysisError as e:
            control = _empty(str(e))
        rows = {t: run.scan(t).select(pl.len()).collect().item() if run.parts(t) else 0
                for t in ("samples", "spans", "evals")}
        bad = run.bad_values(tuple(t for t in TABLES if t != "tokens"))
        if pending is not None and not pending.done():
            prepare_render()  # idle time: the rich text printed after costs less
        token_rows = pending.result() if pending is not None else None
        said = {str(w.message) for w in caught}
        for message in run.skip_messages()[seen:]:  # the parts the worker skipped
            if message not in said:
                warnings.warn(message, stacklevel=2)
        if token_rows is not None:  # and read again if the texts find a part damaged that it did not
            board, token_rows = leaderboard_and_rows(run, top=top_tokens, token_rows=token_rows)
            out["forking_tokens"] = {"status": "ok", "rows": board.to_dicts()} if board.height else _empty(
                "no token seen 5 or more times in the token rows was ever among its step's forking tokens")
        else:
            out["forking_tokens"] = _empty("no token rows (Recorder token_sample=0, or nothing recorded yet)")
        out["hwe_spans"] = {"status": "ok", **spans} if spans.get("n_spans") else {
            **_empty("no span rows: spans are kept for the sampled responses (token_sample > 0)"), **spans}
        out["entropy_distribution"] = {"status": "ok", **dist} if dist["segments"] else _empty(
            "no entropy histograms in the step rows")
        if framework(run) is not None:  # an imported run: say what to log in its framework
            for section, what, lead in (("mechanism", "cov_mean", "no covariance in the step rows"),
                                        ("forking_tokens", "tokens", "no token rows"),
                                        ("hwe_spans", "tokens", "no span rows"),
                                        ("entropy_distribution", "histograms", "no entropy histograms")):
                if out[section].get("status") == "empty":
                    out[section]["reason"] = f"{lead}: {log_hint(run, what)}"
        out["control"] = control
        out["missing"] = missing
        # the token rows counted last: a part the texts found damaged is left out of them too
        out["run"]["rows"] = {"tokens": token_rows.rows if token_rows is not None else 0, **rows}
        out["run"]["skipped_parts"] = run.skipped()
        if token_rows is not None and token_rows.bad_values:
            bad["tokens"] = token_rows.bad_values
        out["run"]["bad_values"] = {t: bad[t] for t in TABLES if t in bad}
    out["warnings"] = [str(w.message) for w in caught]
    return clean(out)


__all__ = ["DYNAMICS", "SEVERITIES", "analyze_run", "render_summary"]
