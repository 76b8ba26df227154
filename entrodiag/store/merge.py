"""Merging rows: repeated rows of one key coalesced, and the ranks' step rows merged into one per step.

The merge rule of each step column is ``schema.STEP_COLUMNS``.
"""

from __future__ import annotations

import polars as pl

from .schema import STEP_COLUMNS


def coalesce(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One row per ``keys``, in key order: each column's latest non-null value (rows logged twice)."""
    others = [c for c in df.columns if c not in keys]
    return (
        df.group_by(keys, maintain_order=True)
        .agg([pl.col(c).drop_nulls().last() for c in others])
        .sort(keys)
    )


def merge_ranks(by_rank: pl.DataFrame) -> pl.DataFrame:
    """Merge per-rank step rows into one row per step (see ``schema.STEP_COLUMNS``).

    Token means are weighted by ``n_tokens``, response means by ``n_responses``, group shares by
    ``n_groups``; stds are pooled; ``cov_mean`` is the covariance over the union of the ranks'
    tokens (from each rank's covariance and means); entropy quantiles are token-weighted means of
    the ranks' quantiles, exact for one rank and an approximation otherwise.
    """
    if by_rank.is_empty() or by_rank["rank"].n_unique() == 1:
        return by_rank.drop("rank", strict=False)
    cols = set(by_rank.columns)
    weights = {"tokens": "n_tokens", "responses": "n_responses", "groups": "n_groups"}
    aggs = []
    for name in by_rank.columns:
        kind, _, of = (STEP_COLUMNS[name][1] if name in STEP_COLUMNS else "mean").partition(":")
        if kind in ("key", "hist"):
            continue
        if kind == "sum":
            expr = pl.col(name).sum()
        elif kind == "max":
            expr = pl.col(name).max()
        elif kind in weights and weights[kind] in cols:
            expr = _wmean(pl.col(name), pl.col(name), weights[kind])
        elif kind.startswith("std_") and of in cols and weights[kind[4:]] in cols:
            w = weights[kind[4:]]
            second = _wmean(pl.col(name) ** 2 + pl.col(of) ** 2, pl.col(name), w)
            mean = _wmean(pl.col(of), pl.col(name), w)
            expr = (second - mean**2).clip(lower_bound=0).sqrt()
        elif kind == "cov" and {"logprob_mean", "advantage_mean", "n_tokens"} <= cols:
            cov, lp, adv = pl.col("cov_mean"), pl.col("logprob_mean"), pl.col("advantage_mean")
            expr = _wmean(cov + lp * adv, cov, "n_tokens") - _wmean(lp, cov, "n_tokens") * _wmean(
                adv, cov, "n_tokens"
            )
        else:
            expr = pl.col(name).mean()
        aggs.append(expr.alias(name))
    merged = by_rank.group_by("step").agg(aggs).sort("step")
    if "entropy_hist" in cols:
        merged = merged.join(_sum_hists(by_rank), on="step", how="left")
    return merged.select([c for c in by_rank.columns if c in merged.columns])


def _wmean(value: pl.Expr, present: pl.Expr, weight: str) -> pl.Expr:
    """Mean of ``value`` weighted by column ``weight`` over rows where ``present`` is not null."""
    w = pl.col(weight).cast(pl.Float64)
    ok = present.is_not_null() & w.is_not_null() & (w > 0)
    return (value * w).filter(ok).sum() / w.filter(ok).sum()


def _sum_hists(by_rank: pl.DataFrame) -> pl.DataFrame:
    rows = by_rank.select("step", "entropy_hist").drop_nulls()
    if rows.is_empty():
        return pl.DataFrame({"step": by_rank["step"].unique()}).with_columns(
            entropy_hist=pl.lit(None, dtype=by_rank.schema["entropy_hist"])
        )
    return (
        rows.with_columns(bin=pl.int_ranges(pl.col("entropy_hist").list.len()))
        .explode("entropy_hist", "bin")
        .group_by("step", "bin")
        .agg(pl.col("entropy_hist").sum())
        .sort("step", "bin")
        .group_by("step", maintain_order=True)
        .agg(pl.col("entropy_hist"))
    )
