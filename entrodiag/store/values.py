"""Which recorded values are impossible, and how the reader treats them.

A value that cannot be right (a negative or infinite entropy, a NaN, a share outside [0, 1], a
negative count, a positive log-probability) is read as missing (null): every analysis already
leaves missing values out, so a bad value is never used as if it were valid. The reader counts
them (``Run.bad_values``); ``entrodiag inspect`` reports the counts, and reading the step and
evaluation rows warns once naming them. A step row without a step number is dropped (and
counted under ``step``). Rows are otherwise kept: one bad column does not hide the others.

Rules (``rules``), per column:

- entropies in nats (``NATS``): finite and >= 0 (down to ``TOLERANCE`` below 0 is rounding and kept);
- log-probabilities (``LOGPROBS``): finite and <= 0 (up to ``TOLERANCE`` above);
- shares (``SHARES``): finite and within [0, 1];
- counts and lengths (``COUNTS``): >= 0;
- every other floating-point column: finite.
"""

from __future__ import annotations

import polars as pl

#: Rounding slack, in nats, for entropies just below 0 and log-probabilities just above 0.
TOLERANCE = 1e-5

NATS = {
    "entropy_mean", "entropy_seq_mean", "entropy_std", "entropy_p50", "entropy_p80", "entropy_p90",
    "entropy_p99", "hwe_threshold", "entropy_after", "semantic_entropy", "entropy", "window_entropy",
    "mean_window_entropy", "max_entropy",
}
LOGPROBS = {"logprob_mean", "logprob"}
SHARES = {
    "high_entropy_frac", "cov_pos_frac", "zero_adv_group_frac", "hwe_token_frac", "clip_low_frac",
    "clip_high_frac", "selected_frac",
}
COUNTS = {"n_tokens", "n_responses", "n_groups", "nonfinite_tokens", "resp_len_mean", "length", "n"}
#: Columns never checked: keys and times.
KEYS = {"step", "rank", "sample_id", "group_id", "prompt_id", "pos", "token_id", "start", "end", "time",
        "first_step", "last_step", "wall_time"}

# why a value is bad -> how to say it
NON_FINITE, NEGATIVE, POSITIVE, OUT_OF_RANGE = "non-finite", "negative", "positive", "outside [0, 1]"


def rules(schema: pl.Schema) -> dict[str, dict[str, pl.Expr]]:
    """For each checked column of ``schema``: ``{reason: expression true where the value is bad}``."""
    out: dict[str, dict[str, pl.Expr]] = {}
    for name, dtype in schema.items():
        if name in KEYS:
            continue
        c = pl.col(name)
        if dtype.is_float():
            why = {NON_FINITE: c.is_nan() | c.is_infinite()}
            finite = c.is_finite()
            if name in NATS:
                why[NEGATIVE] = finite & (c < -TOLERANCE)
            elif name in LOGPROBS:
                why[POSITIVE] = finite & (c > TOLERANCE)
            elif name in SHARES:
                why[OUT_OF_RANGE] = finite & ((c < 0) | (c > 1))
            elif name in COUNTS:
                why[NEGATIVE] = finite & (c < 0)
            out[name] = why
        elif dtype.is_integer() and name in COUNTS:
            out[name] = {NEGATIVE: c < 0}
    return out


def mask(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """``lf`` with every bad value made null and rows without a step dropped."""
    exprs = []
    for name, why in rules(schema).items():
        bad = pl.any_horizontal(list(why.values())).fill_null(False)
        exprs.append(pl.when(bad).then(None).otherwise(pl.col(name)).alias(name))
    if exprs:
        lf = lf.with_columns(exprs)
    return lf.filter(pl.col("step").is_not_null()) if "step" in schema else lf


#: separates the column and the reason in the names of ``count_exprs``' results
SEP = "\x00"


def count_exprs(schema: pl.Schema) -> list[pl.Expr]:
    """The aggregations that count, over raw rows of ``schema``, each rule's bad values (named
    ``column SEP reason``) and the rows without a step (``step SEP missing``)."""
    exprs = [why.sum().alias(f"{name}{SEP}{reason}")
             for name, reasons in rules(schema).items() for reason, why in reasons.items()]
    if "step" in schema:
        exprs.append(pl.col("step").is_null().sum().alias(f"step{SEP}missing"))
    return exprs


def nonzero(row: dict) -> dict[str, dict[str, int]]:
    """``{column: {reason: count}}``, the non-zero counts of a row named as ``count_exprs`` names."""
    out: dict[str, dict[str, int]] = {}
    for key, n in row.items():
        if n:
            name, reason = key.split(SEP)
            out.setdefault(name, {})[reason] = int(n)
    return out


def count(lf: pl.LazyFrame, schema: pl.Schema) -> dict[str, dict[str, int]]:
    """``{column: {reason: number of bad values}}`` of the raw rows ``lf`` (only the non-zero ones);
    rows without a step count under ``step: missing``."""
    exprs = count_exprs(schema)
    return nonzero(lf.select(exprs).collect().row(0, named=True)) if exprs else {}


def describe(counts: dict[str, dict[str, dict[str, int]]]) -> str:
    """One line: ``steps.entropy_mean 2 negative, 1 non-finite; tokens.entropy 5 non-finite``."""
    return "; ".join(
        f"{table}.{name} " + ", ".join(f"{n} {reason}" for reason, n in reasons.items())
        for table, cols in counts.items() for name, reasons in cols.items()
    )
