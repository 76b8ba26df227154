"""Reader of run directories: ``load_run(path) -> Run`` built on polars lazy scans.

Only completed part files (``part-r*-*.parquet``) are read, so a run can be read while it is
written. A part file that is corrupt or truncated is skipped with a warning naming it. Step rows
of several ranks merge into one row per step (rules in ``schema.STEP_COLUMNS``); rows logged
twice for the same (step, rank), e.g. by a resumed run or by ``log_scalars`` after
``record_batch``, coalesce column by column, the latest non-null value winning.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import CORE_TYPES, PART_GLOB, RUN_JSON, SCHEMA, STEP_COLUMNS, TABLES

_PART_RE = re.compile(r"part-r(\d+)-(\d+)\.parquet")

#: A running run whose heartbeat is older than this many heartbeat intervals is interrupted.
STALE_HEARTBEATS = 3.0


class RunError(ValueError):
    """A path that is not a readable entrodiag run; the message says what to do."""


def find_run_dir(path: str | os.PathLike) -> Path:
    """The run directory at ``path``, or the only run directly inside ``path``."""
    p = Path(path)
    if not p.exists():
        raise RunError(f"{p}: no such file or directory")
    if not p.is_dir():
        raise RunError(f"{p} is a file; a run is a directory holding run.json")
    if (p / RUN_JSON).is_file():
        return p
    inside = sorted(c for c in p.iterdir() if (c / RUN_JSON).is_file())
    if len(inside) == 1:
        return inside[0]
    if inside:
        names = ", ".join(c.name for c in inside[:5]) + (" ..." if len(inside) > 5 else "")
        raise RunError(f"{p} holds {len(inside)} runs ({names}); name one of them")
    raise RunError(
        f"{p} is not an entrodiag run: it has no run.json (a run directory is written by "
        "entrodiag.Recorder or `entrodiag train`)"
    )


def _read_meta(run_dir: Path) -> dict:
    try:
        meta = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{run_dir / RUN_JSON} is unreadable ({e}); is the disk full or the file cut?") from None
    if not isinstance(meta, dict) or not str(meta.get("schema", "")).startswith("entrodiag/"):
        raise RunError(f"{run_dir / RUN_JSON} is not an entrodiag run.json (no 'schema' field)")
    if meta["schema"] != SCHEMA:
        raise RunError(
            f"{run_dir} uses schema {meta['schema']}, this entrodiag reads {SCHEMA}; upgrade entrodiag"
        )
    return meta


def _writer_alive(meta: dict) -> bool:
    """False when the run's writer is known dead: stale heartbeat, or a dead pid on this host."""
    interval = float(meta.get("heartbeat_interval_s", 10.0))
    if time.time() - float(meta.get("heartbeat", 0.0)) > STALE_HEARTBEATS * interval + 1.0:
        return False
    if meta.get("host") == socket.gethostname() and meta.get("pid"):
        try:
            os.kill(int(meta["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OSError):
            pass
    return True


@dataclass
class Run:
    """A run directory, read lazily. Tables are polars DataFrames; ``scan(table)`` is lazy."""

    path: Path
    meta: dict
    skipped_parts: list[Path] = field(default_factory=list)
    #: Only rows with ``step <= max_step`` are read (``until``); ``None``: every row.
    max_step: int | None = None

    def until(self, step: int) -> Run:
        """The same run as it was after ``step``: every table without the rows of later steps
        (to replay what an analysis said at that point, e.g. when a flag was first raised)."""
        return Run(path=self.path, meta=self.meta, max_step=int(step))

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def status(self) -> str:
        """running | finished | failed | interrupted (a writer that died without closing)."""
        status = str(self.meta.get("status", "unknown"))
        if status == "running" and not _writer_alive(self.meta):
            return "interrupted"
        return status

    def parts(self, table: str) -> list[Path]:
        """Completed, readable part files of ``table`` (corrupt ones skipped with a warning)."""
        return self._parts(table)[0]

    def _parts(self, table: str) -> tuple[list[Path], pa.Schema | None]:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        good, schemas = [], []
        found = ((_PART_RE.fullmatch(p.name), p) for p in (self.path / table).glob(PART_GLOB))
        for _, part in sorted((tuple(map(int, m.groups())), p) for m, p in found if m):
            try:
                meta = pq.read_metadata(part)
            except Exception as e:  # truncated, empty or not Parquet at all
                self._skip(part, e)
                continue
            if meta.num_rows:
                good.append(part)
                schemas.append(meta.schema.to_arrow_schema())
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        return good, schema

    def _skip(self, part: Path, err: Exception) -> None:
        if part not in self.skipped_parts:
            self.skipped_parts.append(part)
            warnings.warn(
                f"entrodiag: skipping unreadable part file {part} ({type(err).__name__}: {err})",
                stacklevel=3,
            )

    def scan(self, table: str) -> pl.LazyFrame:
        """All completed part files of ``table`` as one LazyFrame (raw rows, ranks unmerged)."""
        parts, schema = self._parts(table)
        if not parts:
            return pl.LazyFrame()
        lf = pl.scan_parquet(parts, schema=polars_schema(schema), missing_columns="insert")
        return lf if self.max_step is None else lf.filter(pl.col("step") <= self.max_step)

    def _collect(self, table: str) -> pl.DataFrame:
        try:
            df = self.scan(table).collect()
        except Exception:  # a part with a good footer but corrupt pages: find it, skip it
            frames = []
            for part in self.parts(table):
                try:
                    frames.append(pl.read_parquet(part))
                except Exception as e:
                    self._skip(part, e)
            df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
            if self.max_step is not None and "step" in df.columns:
                df = df.filter(pl.col("step") <= self.max_step)
        if df.width == 0:  # no rows yet: an empty table that still has the core columns
            df = pl.DataFrame(schema=polars_schema(pa.schema(CORE_TYPES[table])))
        return df

    @cached_property
    def steps_by_rank(self) -> pl.DataFrame:
        """One row per (step, rank); repeated rows coalesced, the latest non-null value winning."""
        df = self._collect("steps")
        if df.is_empty():
            return df
        return _coalesce(df, ["step", "rank"])

    @cached_property
    def steps(self) -> pl.DataFrame:
        """One row per step, ranks merged (token-weighted means, pooled stds, summed counts)."""
        return merge_ranks(self.steps_by_rank)

    @cached_property
    def tokens(self) -> pl.DataFrame:
        return self._collect("tokens")

    @cached_property
    def samples(self) -> pl.DataFrame:
        return self._collect("samples")

    @cached_property
    def spans(self) -> pl.DataFrame:
        return self._collect("spans")

    @cached_property
    def events(self) -> pl.DataFrame:
        """Flags raised live, alerts sent, intervention switches and stops, in order of step."""
        return self._collect("events").sort("step", "time")

    @cached_property
    def evals(self) -> pl.DataFrame:
        """One row per (step, name): ranks merged by ``n``-weighted mean (plain mean without n)."""
        df = self._collect("evals")
        if df.is_empty():
            return df.select("step", "name", "value", "n")
        df = _coalesce(df, ["step", "name", "rank"])
        w = pl.col("n").fill_null(1).cast(pl.Float64)
        return (
            df.group_by("step", "name")
            .agg(
                value=(pl.col("value") * w).sum() / w.filter(pl.col("value").is_not_null()).sum(),
                n=pl.col("n").sum(),
            )
            .sort("step", "name")
        )


def _coalesce(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
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


def load_run(path: str | os.PathLike) -> Run:
    """Open the run at ``path`` (or the only run inside ``path``).

    Raises ``RunError`` with a one-line message when ``path`` is not a run.

    Example:
        >>> run = load_run("runs/demo")            # doctest: +SKIP
        >>> run.status, run.steps["entropy_mean"][-1]  # doctest: +SKIP
    """
    run_dir = find_run_dir(path)
    return Run(path=run_dir, meta=_read_meta(run_dir))


_PL_TYPES = {
    pa.int8(): pl.Int8, pa.int16(): pl.Int16, pa.int32(): pl.Int32, pa.int64(): pl.Int64,
    pa.uint8(): pl.UInt8, pa.uint16(): pl.UInt16, pa.uint32(): pl.UInt32, pa.uint64(): pl.UInt64,
    pa.float32(): pl.Float32, pa.float64(): pl.Float64, pa.bool_(): pl.Boolean,
    pa.string(): pl.String, pa.large_string(): pl.String, pa.null(): pl.Null,
}


def _polars_dtype(t: pa.DataType) -> pl.DataType:
    if t in _PL_TYPES:
        return _PL_TYPES[t]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pl.List(_polars_dtype(t.value_type))
    return pl.from_arrow(pa.schema([("x", t)]).empty_table()).schema["x"]  # rare types: slow path


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars schema of an Arrow schema, mapped type by type: building an empty Arrow table
    instead would make pyarrow import pandas (~0.5 s on every command that reads a run)."""
    return pl.Schema({f.name: _polars_dtype(f.type) for f in schema})
