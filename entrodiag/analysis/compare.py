"""Side-by-side comparison of runs, e.g. the same task under different interventions (Cui et al.
2025 compare GRPO, clip-higher, Clip-Cov and KL-Cov by final accuracy and by the entropy they keep).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from .collapse import SEVERITIES, CollapseThresholds, run_detectors
from .law import fit_entropy_law
from .metric import choose_metric, eval_names
from .mechanism import mechanism_check
from .runs import AnalysisError, RunLike, as_run
from .series import edge_size, edge_values, step_series
from .verdicts import judge_law

_COLUMNS: dict[str, pl.DataType] = {
    "run": pl.String, "intervention": pl.String, "status": pl.String, "steps": pl.Int64,
    "entropy_start": pl.Float64, "entropy_end": pl.Float64, "entropy_ratio": pl.Float64,
    "reward_start": pl.Float64, "reward_end": pl.Float64, "metric": pl.String,
    "eval_final": pl.Float64, "eval_best": pl.Float64, "law_a": pl.Float64, "law_b": pl.Float64,
    "ceiling": pl.Float64, "law_r2": pl.Float64, "gain_frac": pl.Float64, "law_verdict": pl.String,
    "cov_pos_share": pl.Float64,
    "mechanism": pl.String, "n_critical": pl.Int64, "n_warning": pl.Int64, "n_info": pl.Int64,
    "flags": pl.String,
}


def _row(run: RunLike, metric: str | None, th: CollapseThresholds) -> dict:
    run = as_run(run)
    row: dict = {"run": run.run_id, "intervention": run.meta.get("intervention") or "none",
                 "status": run.status, "steps": run.steps.height}
    for col, key in (("entropy_mean", "entropy"), ("reward_mean", "reward")):
        _, v = step_series(run, col)
        if len(v):
            k = edge_size(len(v), th.edge_frac, th.edge_max)
            row[f"{key}_start"], row[f"{key}_end"] = edge_values(v, k)
    if row.get("entropy_start"):
        row["entropy_ratio"] = row["entropy_end"] / row["entropy_start"]
    _, cov = step_series(run, "cov_mean")
    if len(cov):
        row["cov_pos_share"] = float((cov > 0).mean())
    flags, _ = run_detectors(run, th)
    try:  # the run's own R when it lacks the requested metric (runs compared may log different ones)
        choice = choose_metric(run, metric if metric is not None and _has(run, metric) else None)
    except AnalysisError:
        choice = None
    if choice is not None:
        m = choice.name
        if choice.is_training:
            _, v = step_series(run, m)
            row.update(metric=f"{m} (training)", eval_final=float(v[-1]), eval_best=float(v.max()))
        else:
            v = run.evals.filter(pl.col("name") == m).drop_nulls("value").sort("step")["value"]
            row.update(metric=m, eval_final=v[-1], eval_best=v.max())
        try:
            fit = fit_entropy_law(run, metric=choice, smooth=th.smooth, n_boot=0)
            verdict = judge_law(fit, [f.kind for f in flags], th.ceiling_min_r2)
            row.update(law_a=fit.a, law_b=fit.b, law_r2=fit.r2, law_verdict=verdict.status)
            if verdict.fits:  # no ceiling or gain share where the law does not describe the run
                row.update(ceiling=fit.ceiling, gain_frac=fit.gain_frac)
        except AnalysisError:
            pass
    for sev in reversed(SEVERITIES):
        row[f"n_{sev}"] = sum(f.severity == sev for f in flags)
    row["flags"] = ", ".join(f.kind for f in flags)
    row["mechanism"] = mechanism_check(run).verdict
    return row


def _has(run, name: str) -> bool:
    return name in eval_names(run) or name in run.steps.columns


def compare_runs(runs: Sequence[RunLike], *, metric: str | None = None, **thresholds: float) -> pl.DataFrame:
    """One row per run with the key numbers, for runs that differ in their intervention.

    Columns: ``run``, ``intervention`` (run.json), ``status``, ``steps``; ``entropy_start/end`` and
    ``entropy_ratio`` (medians of the first/last steps, as the detectors take them),
    ``reward_start/end``; ``metric``, ``eval_final``, ``eval_best``; the law's ``law_a``, ``law_b``,
    ``law_r2``, ``law_verdict`` (``verdicts.judge_law``) and, only where it fits, ``ceiling`` and
    ``gain_frac`` (Cui et al. 2025); ``cov_pos_share``; the ``mechanism`` verdict; flag counts
    per severity and the flag kinds. Missing numbers are null. ``metric`` picks the evaluation
    (default as in ``fit_entropy_law``); ``thresholds`` go to the detectors.

    Example:
        >>> table = compare_runs(["runs/grpo", "runs/kl_cov"])          # doctest: +SKIP
        >>> table.select("intervention", "eval_final", "ceiling")     # doctest: +SKIP
    """
    th = CollapseThresholds.with_overrides(**thresholds)
    rows = [_row(r, metric, th) for r in runs]
    return pl.DataFrame([{c: r.get(c) for c in _COLUMNS} for r in rows], schema=_COLUMNS)


def worst_severity(row: Mapping[str, Any]) -> str | None:
    """The worst flag severity a ``compare_runs`` row counts (its ``n_critical``, ``n_warning``,
    ``n_info``): ``critical``, ``warning``, ``info``, or ``None`` without a flag."""
    return next((s for s in reversed(SEVERITIES) if row.get(f"n_{s}")), None)


__all__ = ["compare_runs", "worst_severity"]
