"""Cached loading for the dashboard, kept apart from the layout.

Every loader takes a run directory and is cached on the run's files: the names, modification times
and sizes of run.json and of every completed part file (``fingerprint``). A new part file, or a
rewritten run.json, makes a new key, so a live run is re-read when (and only when) it changed, and
moving between pages of an unchanged run costs nothing. Numbers come from ``entrodiag.analysis``;
this module only reads and queries the tables.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import streamlit as st

from entrodiag.analysis import (
    AnalysisError,
    LawFit,
    analyze_run,
    compare_runs,
    entropy_distribution,
    fit_entropy_law,
    forking_leaderboard,
    hwe_span_stats,
)
from entrodiag.analysis.control import control_series
from entrodiag.analysis.views import law_band
from entrodiag.store import Run, RunError, load_run
from entrodiag.store.location import LocationError, check_url, is_url, locate
from entrodiag.store.reader import run_path, stat_files
from entrodiag.store.schema import PART_GLOB, RUN_JSON, TABLES

#: Environment variable with the runs root (set by ``entrodiag dashboard``).
ROOT_ENV = "ENTRODIAG_RUNS_ROOT"
METRIC_ENV = "ENTRODIAG_METRIC"  # entrodiag.dashboard.METRIC_ENV
DEFAULT_ROOT = "runs"

#: Seconds a run's file listing is reused (within one page render).
FINGERPRINT_TTL_S = 0.5

Fingerprint = tuple[tuple[str, int, int], ...]
T = TypeVar("T")
_listed: dict[str, tuple[float, Fingerprint]] = {}


def runs_root() -> str:
    """The runs root the dashboard was started on (``ENTRODIAG_RUNS_ROOT``, default ``runs``)."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def checked_root(typed: str) -> tuple[str, str | None]:
    """The runs root to read for ``typed`` (the "Runs root" box), and why it is refused (else ``None``).

    The box reaches only what the dashboard was started on: the configured root (``runs_root``),
    a folder under it (absolute, or relative to it; no ``..``), or an object-store URL without a
    query string or credentials (the endpoint and keys come only from the server's environment,
    see ``entrodiag.store.location``). Nothing is read or sent before the check."""
    configured = runs_root()
    text = typed.strip()
    if not text or text == configured:
        return configured, None
    try:
        remote_root = is_url(configured)
        if is_url(text):
            check_url(text)
            loc = locate(text) if text.lower().startswith("file:") else None  # file:// is a local path
            if loc is None:
                return text, None
            path = loc.local_path
        else:
            path = Path(text).expanduser()
    except LocationError as e:
        return text, str(e)
    outside = (f"{text} is not under the runs root the dashboard was started on ({configured}); run "
               f"`entrodiag dashboard {text}` to read it")
    if remote_root or ".." in path.parts:
        return text, outside
    base = Path(os.path.abspath(Path(configured).expanduser()))
    full = Path(os.path.abspath(base / path))  # an absolute path stays itself
    if not any(full == b or b in full.parents for b in (base, base.resolve())):
        return text, outside
    return str(full), None


def fingerprint(run_dir: str) -> Fingerprint:
    """(name, mtime_ns, size) of run.json and of every completed part file of the run.

    A page asks for it once per loader; a listing less than ``FINGERPRINT_TTL_S`` old is reused,
    so a run of thousands of part files is listed once per page render, not once per loader.
    """
    now = time.monotonic()
    hit = _listed.get(run_dir)
    if hit is not None and now - hit[0] < FINGERPRINT_TTL_S:
        return hit[1]
    out: list[tuple[str, int, int]] = []
    try:
        base = run_path(run_dir)
        out += [f for f in stat_files(base) if f[0] == RUN_JSON]
        for table in TABLES:
            out += [(f"{table}/{name}", mtime, size) for name, mtime, size in stat_files(base / table)
                    if fnmatch.fnmatchcase(name, PART_GLOB)]  # temporary files (".part-....tmp") never match
    except (OSError, LocationError):  # an unreachable object store: open_run names the problem
        pass
    _listed[run_dir] = (now, tuple(out))
    return _listed[run_dir][1]


def by_files(cached: Callable[..., T]) -> Callable[..., T]:
    """Call ``cached(run_dir, fingerprint(run_dir), *args)``: the cache key includes the run's files."""

    @functools.wraps(cached)
    def call(run_dir: str, *args: Any, **kwargs: Any) -> T:
        return cached(run_dir, fingerprint(run_dir), *args, **kwargs)

    return call


# ------------------------------------------------------------------------------------ discovery
@dataclass(frozen=True)
class RunEntry:
    """A run directory found under the root: ``name`` relative to the root (its own name when the
    root is the run); ``error`` when its run.json cannot be read (then it is listed, not opened)."""

    path: str
    name: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What the root holds: its runs, or why there are none (``problem``)."""

    root: str
    runs: tuple[RunEntry, ...]
    problem: str | None = None


def runs_index(root: str):
    """The summary index of ``root`` (``entrodiag.store.index.RunsIndex``), its listing reused for
    ``FINGERPRINT_TTL_S`` so that the sidebar and the Runs table list the root once per render. An
    index whose manifest could not be saved (a read-only cache folder) is kept and listed again,
    not made anew: what it has read lives only in it."""
    from entrodiag.store.index import RunsIndex

    now = time.monotonic()
    hit = _indexes.get(root)
    if hit is None or now - hit[0] >= FINGERPRINT_TTL_S:
        if hit is not None and not hit[1].saved:
            hit[1].refresh()
            hit = _indexes[root] = (now, hit[1])
        else:
            hit = _indexes[root] = (now, RunsIndex(root))
    return hit[1]


_indexes: dict[str, tuple[float, Any]] = {}


def discover(root: str) -> Discovery:
    """The runs under ``root`` (the root itself when it is a run), newest first by run.json time.
    (The sidebar checks what was typed with ``checked_root`` first.)

    From the root's summary index (``runs_index``): the root is listed once and only run.json
    files that changed are read, so the sidebar of a thousand runs does not open every run."""
    from entrodiag.store.index import MAX_DEPTH, RootError

    try:  # a local folder or a URL (s3://bucket/runs, gs://...)
        base = run_path(root) if is_url(root) else Path(root).expanduser()
        if not base.exists():
            return Discovery(root, (), f"{base} does not exist. Start a run with `entrodiag train --out "
                                       f"{base}/NAME` or point the dashboard at another folder.")
        if not base.is_dir():
            return Discovery(root, (), f"{base} is a file, not a folder of runs.")
    except (OSError, LocationError) as e:
        reason = " ".join(str(e).split())[:300]
        return Discovery(root, (), f"{root}: cannot read it ({reason}); check the URL, "
                                   "the endpoint (AWS_ENDPOINT_URL) and the credentials in the environment.")
    index = runs_index(root)
    try:
        metas, errors = index.metas(), index.errors()
        found = index.runs()
    except RootError as e:
        return Discovery(root, (), str(e))
    entries = []
    for r in sorted(found, key=lambda r: -r.meta_mtime):
        if r.run_id in errors:
            entries.append(RunEntry(r.url, r.run_id, "unreadable", errors[r.run_id]))
        else:
            entries.append(RunEntry(r.url, r.run_id, Run(path=run_path(r.url), meta=metas[r.run_id]).status))
    if not entries:
        return Discovery(root, (), f"{base} holds no entrodiag runs (no run.json in it or in the folders "
                                   f"below it, {MAX_DEPTH} levels deep). A run directory is written by "
                                   "`entrodiag train`, `entrodiag import` or `entrodiag.Recorder`.")
    return Discovery(root, tuple(entries))


# ------------------------------------------------------------------------------------ run loaders
@st.cache_resource(max_entries=16, show_spinner=False)
def _open_run(run_dir: str, fp: Fingerprint) -> Run:
    return load_run(run_dir)


def open_run(run_dir: str) -> Run:
    """The ``Run`` at ``run_dir``, shared across pages and sessions while its files are unchanged.

    Raises ``RunError`` when run.json is missing or unreadable.
    """
    return _open_run(run_dir, fingerprint(run_dir))


def skipped_parts(run_dir: str) -> list[dict[str, str]]:
    """The run's part files that cannot be decoded, as far as this process has read them (footers
    of every table; pages as the loaders decoded them): ``{"path", "reason"}`` each."""
    run = open_run(run_dir)
    for table in TABLES:
        run.parts(table)  # a part found damaged by an earlier read is known without reading it again
    return run.skipped()


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def summary(run_dir: str, fp: Fingerprint) -> dict:
    """``analyze_run`` of the run (every section; ``forecast`` when the analysis layer has it), with
    R = the ``entrodiag dashboard --metric`` when the run logs it."""
    run = open_run(run_dir)
    return analyze_run(run, metric=requested_metric(run))


def requested_metric(run) -> str | None:
    """The metric named with ``entrodiag dashboard --metric`` when ``run`` logs it, else ``None``."""
    name = os.environ.get(METRIC_ENV) or None
    ev = run.evals
    if name is None or (name not in run.steps.columns and name not in set(ev["name"].to_list() if "name" in ev.columns else [])):
        return None
    return name


@by_files
@st.cache_data(max_entries=64, show_spinner=False)
def overview_row(run_dir: str, fp: Fingerprint) -> dict:
    """One row of the runs table: ``compare_runs`` numbers plus source and model from run.json."""
    return _overview(open_run(run_dir))


def _overview(run: Run) -> dict:
    row = compare_runs([run], metric=requested_metric(run)).row(0, named=True)
    row.update(source=run.meta.get("source"), model=run.meta.get("model"))
    return row


def _overview_version() -> str:
    from entrodiag import __version__

    return f"overview/2 entrodiag={__version__} metric={os.environ.get(METRIC_ENV) or ''}"


def runs_overview(root: str) -> dict[str, dict]:
    """``overview_row`` of every run under ``root``, by the run's name under the root, from the root's
    summary index (``entrodiag.store.index``): only runs whose run.json, steps or evaluations changed
    since the index last saw them are opened, so a root of a thousand runs is not read run by run.
    The rows are cached on the entrodiag version and the requested metric too. Empty when the index
    cannot be used (an unreadable root, a cache folder that cannot be written): the caller then
    falls back to ``overview_row`` run by run."""
    try:
        return runs_index(root).rows("overview", _overview, tables=("steps", "evals"), version=_overview_version())
    except (OSError, RunError):
        return {}


#: More runs than this to analyse for the Runs table (a root shown for the first time, a sweep that
#: just finished): they are analysed in a background thread and the table fills in as they come.
FILL_IN_BACKGROUND = 24


@dataclass
class Fill:
    """The Runs table's rows being computed in the background for one root: ``rows`` so far (by
    run name), ``done`` of ``total`` runs; ``running`` until the thread has saved them in the index."""

    version: str
    total: int
    rows: dict[str, dict]
    done: int = 0
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


_fills: dict[str, Fill] = {}
_fills_lock = threading.Lock()


def runs_overview_lazy(root: str) -> tuple[dict[str, dict], Fill | None]:
    """``runs_overview`` without the wait: the rows the index holds now, and, when more than
    ``FILL_IN_BACKGROUND`` runs have none yet, the ``Fill`` that computes them in a background
    thread (one per root; every session shows its progress). With fewer, they are computed here."""
    version = _overview_version()
    try:
        index = runs_index(root)
        have = index.rows("overview", _overview, tables=("steps", "evals"), version=version, compute=False)
        errors = index.errors()
        wanted = [r.run_id for r in index.runs() if r.run_id not in errors]
    except (OSError, RunError):
        return {}, None
    with _fills_lock:
        fill = _fills.get(root)
        if fill is not None and fill.version == version:
            have = {**fill.rows, **have}
            if fill.running:
                return have, fill
            del _fills[root]  # used once more: its rows are in the index now
        missing = [r for r in wanted if r not in have]
        if not missing:
            return have, None
        if len(missing) > FILL_IN_BACKGROUND:
            fill = _fills[root] = Fill(version, len(missing), {})
            fill.thread = threading.Thread(target=_fill, args=(root, fill), name="entrodiag-runs-table", daemon=True)
            fill.thread.start()
            return have, fill
    return runs_overview(root), None


def _fill(root: str, fill: Fill) -> None:
    from entrodiag.store.index import RunsIndex

    def progress(_what: str, done: int, _total: int) -> None:
        fill.done = done

    index = RunsIndex(root, on_progress=progress)
    try:
        index.rows("overview", _overview, tables=("steps", "evals"), version=fill.version,
                   on_row=fill.rows.__setitem__)
    except (OSError, RunError):
        pass  # the page falls back to reading run by run
    finally:
        if index.saved:
            _indexes.pop(root, None)  # the next listing reads the manifest the fill saved
        else:  # a cache folder that cannot be written: the rows live in this index only, keep it
            _indexes[root] = (time.monotonic(), index)


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def steps(run_dir: str, fp: Fingerprint) -> pl.DataFrame:
    """The step rows (one per step, ranks merged), without the histogram lists."""
    return open_run(run_dir).steps.drop("entropy_hist", strict=False)


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def evals(run_dir: str, fp: Fingerprint) -> pl.DataFrame:
    """The evaluations, one row per (step, name)."""
    return open_run(run_dir).evals


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def events(run_dir: str, fp: Fingerprint) -> pl.DataFrame:
    """The run's events (flags raised live, alerts, switches, stops), by step."""
    return open_run(run_dir).events


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def distribution(run_dir: str, fp: Fingerprint, segments: int) -> dict:
    """``entropy_distribution`` with ``segments`` consecutive parts (the heatmap's columns)."""
    return entropy_distribution(open_run(run_dir), segments=segments)


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def control(run_dir: str, fp: Fingerprint) -> pl.DataFrame:
    """``control_series``: entropy and the control columns, one row per step (rank means)."""
    return control_series(open_run(run_dir))


@dataclass(frozen=True)
class LawView:
    """The entropy law on one metric: the fit and its curve with band, or why there is none."""

    fit: LawFit | None
    curve: dict | None
    reason: str | None


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def law(run_dir: str, fp: Fingerprint, metric: str | None) -> LawView:
    """``fit_entropy_law`` on ``metric`` and ``law_band`` from H = 0 (the ceiling) to the largest
    fitted entropy."""
    try:
        fit = fit_entropy_law(open_run(run_dir), metric=metric)
    except AnalysisError as e:
        return LawView(None, None, str(e))
    return LawView(fit, law_band(fit, lo=0.0, hi=max(fit.H) * 1.05), None)


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def leaderboard(run_dir: str, fp: Fingerprint, by: str, top: int = 20) -> pl.DataFrame:
    """``forking_leaderboard`` ranked ``by`` forking count, rate or mean entropy."""
    return forking_leaderboard(open_run(run_dir), top=top, by=by)


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def span_stats(run_dir: str, fp: Fingerprint) -> dict:
    """``hwe_span_stats`` of the run (counts, lengths, the strongest spans)."""
    return hwe_span_stats(open_run(run_dir), examples=5)


@by_files
@st.cache_data(max_entries=32, show_spinner=False)
def responses(run_dir: str, fp: Fingerprint) -> pl.DataFrame:
    """One row per recorded response with token rows: step, rank, sample_id, tokens, hwe (HWE
    positions), and from the samples table (when there) reward, advantage, length, entropy_mean,
    prompt, response."""
    run = open_run(run_dir)
    if not run.parts("tokens"):
        return pl.DataFrame(schema={"step": pl.Int64, "rank": pl.Int32, "sample_id": pl.Int64,
                                    "tokens": pl.UInt32, "hwe": pl.UInt32})
    keys = ["step", "rank", "sample_id"]
    index = run.scan("tokens").group_by(keys).agg(
        tokens=pl.len(), hwe=pl.col("is_hwe").fill_null(False).sum().cast(pl.UInt32)).collect()
    if run.parts("samples"):
        cols = [c for c in ("reward", "advantage", "length", "entropy_mean", "prompt", "response")
                if c in run.scan("samples").collect_schema().names()]
        samples = run.scan("samples").select(*keys, *cols).unique(keys, keep="last").collect()
        index = index.join(samples, on=keys, how="left")
    return index.sort(keys)


@by_files
@st.cache_data(max_entries=64, show_spinner=False)
def response_tokens(run_dir: str, fp: Fingerprint, step: int, rank: int, sample_id: int) -> pl.DataFrame:
    """The token rows of one response, in order of position."""
    key = (pl.col("step") == step) & (pl.col("rank") == rank) & (pl.col("sample_id") == sample_id)
    return open_run(run_dir).scan("tokens").filter(key).sort("pos").collect()


@by_files
@st.cache_data(max_entries=64, show_spinner=False)
def response_spans(run_dir: str, fp: Fingerprint, step: int, rank: int, sample_id: int) -> pl.DataFrame:
    """The HWE spans of one response (start, end exclusive, window entropy)."""
    run = open_run(run_dir)
    if not run.parts("spans"):
        return pl.DataFrame(schema={"start": pl.Int32, "end": pl.Int32, "mean_window_entropy": pl.Float64})
    key = (pl.col("step") == step) & (pl.col("rank") == rank) & (pl.col("sample_id") == sample_id)
    return run.scan("spans").filter(key).sort("start").collect()
