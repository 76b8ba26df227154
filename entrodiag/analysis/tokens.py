"""Token-level analyses: the forking-token leaderboard, high-window-entropy spans, and the entropy
distribution over training.

Token rows are read in one streamed pass (``read_token_rows``; ``entrodiag.store.stream``): the
per-token group-by, the row count and the impossible-value counts run together in polars'
streaming engine, so a run with 10^8 token rows is aggregated in bounded memory and never
materialised in Python. Token text, the costliest column to decode, is read only for the ids a
leaderboard shows (``token_texts``: the first parts that hold them). Span rows are small and
read with lazy scans.

- Forking tokens (Wang et al. 2025, "Beyond the 80/20 Rule", arXiv 2506.01939): tokens at or above
  their step's 80th entropy percentile (``is_forking`` in the token rows).
- HWE spans (ARES, arXiv 2510.08457): maximal runs of positions whose window entropy (w = 4) is
  above the step's threshold (the spans table).
- The distribution comes from the per-step histograms, which cover every valid token of every
  step (token rows are only a sample of responses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..store import values
from ..store.stream import bad_value_screen, read_bad_values, screened_rows, stream_pass
from .jsonable import clean
from .runs import RunLike, as_run
from .series import edge_size, step_series

_LEADERBOARD_SCHEMA = {
    "token": pl.String, "token_id": pl.Int64, "count": pl.UInt32, "forking": pl.UInt32,
    "forking_rate": pl.Float64, "forking_share": pl.Float64, "mean_entropy": pl.Float64,
}
_PER_TOKEN_SCHEMA = {"token_id": pl.Int64, "count": pl.UInt32, "forking": pl.UInt32, "mean_entropy": pl.Float64}
_LEADERBOARD_COLUMNS = ("step", "token_id", "entropy", "is_forking")


_SORTS = ("forking", "forking_rate", "mean_entropy")


def shown_token(text: str) -> str:
    """A token made only of spaces as one ``␣`` per space, else ``text``: a space is a common
    forking token, and a blank table cell reads as a missing one."""
    return "␣" * len(text) if text and not text.strip(" ") else text


@dataclass(frozen=True)
class TokenRows:
    """What one streamed pass over a run's token rows finds (``read_token_rows``).

    ``per_token``: one row per token id seen with a valid entropy: ``token_id``, ``count``
    (occurrences), ``forking`` (occurrences among their step's forking tokens), ``mean_entropy``
    (nats); the token text is read for the ids shown only (``token_texts``). ``rows``: the token
    rows read (those with a step). ``bad_values``: impossible values per column and reason (the
    shape of ``Run.bad_values()["tokens"]``), ``None`` unless asked for.
    """

    per_token: pl.DataFrame
    rows: int
    bad_values: dict[str, dict[str, int]] | None = None


def _valid(rows: pl.LazyFrame, columns: tuple[str, ...]) -> pl.LazyFrame:
    """``columns`` of the raw token ``rows`` that have a step, a token id and a valid entropy
    (impossible values masked first, as every reader does)."""
    schema = rows.collect_schema()
    used = rows.select(columns)
    return values.mask(used, pl.Schema({c: schema[c] for c in columns})).filter(
        pl.col("entropy").is_not_null() & pl.col("token_id").is_not_null())


def read_token_rows(run: RunLike, *, bad_values: bool = False) -> TokenRows:
    """Read a run's token rows once: the per-token aggregates of the leaderboard, the row count
    and (``bad_values``) the impossible-value counts of every checked column, in one streamed
    pass (``entrodiag.store.stream.stream_pass``; memory bounded, whatever the number of rows)."""
    run = as_run(run)

    def build(rows: pl.LazyFrame) -> list[pl.LazyFrame]:
        per_token = _valid(rows, _LEADERBOARD_COLUMNS).group_by("token_id").agg(
            count=pl.len().cast(pl.UInt32),
            forking=pl.col("is_forking").sum().cast(pl.UInt32),
            mean_entropy=pl.col("entropy").mean().cast(pl.Float64),
        )
        if bad_values:  # the screen counts the rows too
            return [per_token, bad_value_screen(rows, rows.collect_schema())]
        return [per_token, rows.select(n=pl.col("step").is_not_null().sum())]

    found = stream_pass(run, "tokens", build) if run.parts("tokens") else None
    if found is None:
        return TokenRows(pl.DataFrame(schema=_PER_TOKEN_SCHEMA), 0, {} if bad_values else None)
    per_token = found[0].select(list(_PER_TOKEN_SCHEMA)).cast(_PER_TOKEN_SCHEMA)
    if bad_values:
        return TokenRows(per_token, screened_rows(found[1]), read_bad_values(run, "tokens", found[1]))
    return TokenRows(per_token, int(found[1].item()))


def token_texts(run: RunLike, ids: list[int]) -> dict[int, str | None]:
    """The text of each token id in ``ids``: that of its first valid token row (null without a
    tokenizer; an id decodes to one text). Parts are read in order, 1, then 4, 16, ... at a time,
    until every id is found: the ids a leaderboard shows are frequent, so this reads a few parts,
    not the 10^8 token texts of a long run."""
    run = as_run(run)
    want, found, start, n = set(ids), {}, 0, 1
    total = len(run.parts("tokens"))
    while want and start < total:
        def build(rows: pl.LazyFrame, want: set = want) -> list[pl.LazyFrame]:
            return [_valid(rows, ("step", "token_id", "token", "entropy"))
                    .filter(pl.col("token_id").is_in(list(want)))
                    .group_by("token_id").agg(pl.col("token").first())]

        got = stream_pass(run, "tokens", build, which=slice(start, start + n))
        start, n = start + n, 4 * n
        for token_id, text in (got[0].iter_rows() if got else ()):
            if token_id in want:
                found[token_id] = text
                want.discard(token_id)
    return found


def forking_leaderboard(
    run: RunLike, *, top: int = 20, min_count: int = 5, by: str = "forking", token_rows: TokenRows | None = None
) -> pl.DataFrame:
    """The tokens most often among their step's forking tokens (top 20% entropy; Wang et al. 2025).

    One row per token id seen at least ``min_count`` times and forking at least once in the token
    rows, the ``top`` rows by
    ``forking`` count: ``token`` (text, or ``#id`` without a tokenizer), ``token_id``, ``count``
    (occurrences), ``forking`` (occurrences in the top 20%), ``forking_rate`` (forking / count),
    ``forking_share`` (its share of all forking occurrences), ``mean_entropy`` (nats).
    ``by="forking_rate"`` ranks by how reliably a token forks instead (the 80/20 paper's "wait",
    "however", "thus"), ``by="mean_entropy"`` by its entropy. Empty (with these columns) when the
    run has no token rows. ``token_rows``: the run's ``read_token_rows``, when already read.
    """
    return leaderboard_and_rows(run, top=top, min_count=min_count, by=by, token_rows=token_rows)[0]


def leaderboard_and_rows(
    run: RunLike, *, top: int = 20, min_count: int = 5, by: str = "forking",
    token_rows: TokenRows | None = None,
) -> tuple[pl.DataFrame, TokenRows]:
    """``forking_leaderboard`` and the token rows it counts (``token_rows``, or read here). The texts
    (``token_texts``) decode a column the streamed pass does not read: when they find a part damaged,
    the pass runs again without it (with ``bad_values`` when ``token_rows`` had them), so that the
    counts, the row count and the impossible values leave out every part the run lists as skipped."""
    if by not in _SORTS:
        raise ValueError(f"by must be one of {', '.join(_SORTS)}, got {by!r}")
    run = as_run(run)
    rows = token_rows or read_token_rows(run)
    while True:  # ends: each turn one more part is skipped, of finitely many
        skipped = len(run.skipped_parts)
        board = _ranked(run, rows.per_token, top, min_count, by)
        if len(run.skipped_parts) == skipped:
            return board, rows
        rows = read_token_rows(run, bad_values=rows.bad_values is not None)


def _ranked(run: RunLike, per_token: pl.DataFrame, top: int, min_count: int, by: str) -> pl.DataFrame:
    """The leaderboard of ``per_token`` (``read_token_rows``), its texts read for the ids it shows."""
    if per_token.is_empty():
        return pl.DataFrame(schema=_LEADERBOARD_SCHEMA)
    total_forking = max(int(per_token["forking"].sum()), 1)
    order = [by] + [c for c in ("forking", "mean_entropy") if c != by]
    board = (
        per_token.filter((pl.col("count") >= min_count) & (pl.col("forking") > 0))
        .with_columns(forking_rate=pl.col("forking") / pl.col("count"))
        .sort([*order, "token_id"], descending=[True] * len(order) + [False])
        .head(top)
    )
    texts = token_texts(run, board["token_id"].to_list())
    return (
        board.with_columns(token=pl.Series([texts.get(i) for i in board["token_id"]], dtype=pl.String))
        .select(
            pl.coalesce(pl.col("token"), pl.format("#{}", pl.col("token_id"))).alias("token"),
            pl.col("token_id").cast(pl.Int64),
            pl.col("count").cast(pl.UInt32),
            pl.col("forking"),
            pl.col("forking_rate"),
            (pl.col("forking") / total_forking).alias("forking_share"),
            pl.col("mean_entropy"),
        )
    )


def hwe_span_stats(run: RunLike, *, examples: int = 5, edge_frac: float = 0.2) -> dict:
    """High-window-entropy span statistics (ARES) and the spans with the highest window entropy.

    Returns a JSON-ready dict: ``n_spans``, ``mean_length`` (tokens), ``mean_window_entropy``,
    ``mean_max_entropy``, ``spans_per_response`` over the whole run and over its first and last
    ``edge_frac`` of steps (span rows exist for the sampled responses only, so counts are per
    sampled response), ``hwe_token_frac`` at the start and end (from the step rows, over all
    tokens), and ``examples``: the ``examples`` spans with the highest mean window entropy (step,
    sample, start, end, entropies, text). ``n_spans`` is 0 when the run has no span rows.
    """
    run = as_run(run)
    out: dict = {"n_spans": 0}
    _, frac = step_series(run, "hwe_token_frac")
    if len(frac):
        k = edge_size(len(frac), 0.03, 10)
        out["hwe_token_frac_start"] = float(frac[:k].mean())
        out["hwe_token_frac_end"] = float(frac[-k:].mean())
    if not run.parts("spans"):
        return clean(out)
    spans = run.scan("spans")
    stats = spans.select(
        n_spans=pl.len(),
        mean_length=(pl.col("end") - pl.col("start")).cast(pl.Float64).mean(),
        mean_window_entropy=pl.col("mean_window_entropy").mean(),
        mean_max_entropy=pl.col("max_entropy").mean(),
        first_step=pl.col("step").min(),
        last_step=pl.col("step").max(),
    )
    per_step = spans.group_by("step").agg(n=pl.len())
    top = spans.sort("mean_window_entropy", descending=True, nulls_last=True).head(examples).select(
        "step", "sample_id", "start", "end", "mean_window_entropy", "max_entropy", "text"
    )
    queries = [stats, per_step, top]
    if run.parts("samples"):
        queries.append(run.scan("samples").group_by("step").agg(n=pl.len()))
    results = pl.collect_all(queries)
    out.update(results[0].row(0, named=True))
    out["examples"] = results[2].to_dicts()
    if len(results) == 4 and not results[3].is_empty():
        counts = results[3].join(results[1].rename({"n": "spans"}), on="step", how="left").fill_null(0)
        counts = counts.sort("step")
        k = max(1, round(edge_frac * counts.height))
        rate = lambda df: float(df["spans"].sum() / max(int(df["n"].sum()), 1))  # noqa: E731
        out["spans_per_response"] = rate(counts)
        out["spans_per_response_start"] = rate(counts.head(k))
        out["spans_per_response_end"] = rate(counts.tail(k))
    return clean(out)


def _coarse_bins(edges: list[float]) -> list[tuple[str, int, int]]:
    """Bin index ranges for < 0.01, 0.01–0.672 and ≥ 0.672 nats (nearest edges below)."""
    def cut(x: float) -> int:
        return max(1, min(len(edges) - 1, int(np.searchsorted(edges, x, side="right")) - 1))

    a, b = cut(0.01), cut(0.672)
    return [("< 0.01", 0, a), ("0.01–0.672", a, max(a, b)), ("≥ 0.672", max(a, b), len(edges) - 1)]


def entropy_distribution(run: RunLike, *, segments: int = 5) -> dict:
    """The token-entropy distribution over training, from the per-step histograms.

    Splits the recorded steps into ``segments`` consecutive parts and returns, for each, its step
    range, the share of tokens per histogram bin (``shares``; bins from run.json's
    ``entropy_hist_edges``), the coarse shares below 0.01 nats, between 0.01 and 0.672, and above
    0.672 (Wang et al. 2025: in Qwen3-8B over half of the tokens are below 0.01 and 20% above
    0.672), and the mean of the step quantiles ``entropy_p50``/``p90``/``p99``. Empty
    ``segments`` when the run has no histograms.
    """
    run = as_run(run)
    edges = run.meta.get("entropy_hist_edges")
    steps = run.steps
    out: dict = {"edges": edges, "segments": []}
    if not edges or steps.is_empty() or "entropy_hist" not in steps.columns:
        return clean(out)
    df = steps.select(
        "step", "entropy_hist",
        *[c for c in ("entropy_p50", "entropy_p90", "entropy_p99") if c in steps.columns],
    ).filter(pl.col("entropy_hist").is_not_null() & (pl.col("entropy_hist").list.len() == len(edges) - 1))
    if df.is_empty():
        return clean(out)
    hist = np.asarray(df["entropy_hist"].to_list(), dtype=np.float64)
    num_edges = [math.inf if e is None else float(e) for e in edges]
    coarse = _coarse_bins(num_edges)
    for chunk in np.array_split(np.arange(df.height), min(segments, df.height)):
        h = hist[chunk].sum(0)
        total = h.sum()
        seg = df[chunk]
        item = {
            "first_step": int(seg["step"][0]), "last_step": int(seg["step"][-1]),
            "n_tokens": int(total),
            "shares": (h / total).tolist() if total else None,
            "coarse": {name: float(h[i:j].sum() / total) if total else None for name, i, j in coarse},
        }
        for c in ("entropy_p50", "entropy_p90", "entropy_p99"):
            if c in seg.columns:
                item[c] = seg[c].mean()
        out["segments"].append(item)
    return clean(out)


__all__ = [
    "TokenRows", "entropy_distribution", "forking_leaderboard", "hwe_span_stats", "leaderboard_and_rows",
    "read_token_rows", "shown_token", "token_texts",
]
