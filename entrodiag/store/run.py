"""``Run``, a run directory read lazily, and ``load_run``, which opens one.

Tables are read through ``Run.scan`` (the guarded scan of ``entrodiag.store.scan``) over the part
files ``Run.parts`` lists (``entrodiag.store.parts``); step rows are merged across ranks by
``entrodiag.store.merge``; impossible values are read as null and counted
(``entrodiag.store.values``). The rules all readers share are in ``entrodiag.store.reader``'s notes.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import polars as pl
import pyarrow as pa

from . import values
from .location import Location
from .merge import coalesce, merge_ranks
from .meta import read_meta, run_status
from .parts import (RERUNS, Verdict, broken_reason, decode_part, folder_stamp, list_parts, list_tree,
                    listed_key, prefetch_footers, read_footer)
from .rundir import RunPath, find_run_dir, os_reason
from .scan import GUARDED, GuardedScan, guarded_scan, polars_schema, scan_parts
from .schema import CORE_TYPES, TABLES, table_schema

#: How long a ``Run`` reuses its listing of an object-store table folder (new parts of a live run
#: show up this much later; parts that vanish, e.g. in a compaction, make the read list again).
STORE_LISTING_S = 2.0

#: The start of the warning that names a skipped part file.
SKIP_WARNING = "entrodiag: skipping unreadable part file"
#: The start of the warning that counts impossible values read as missing.
BAD_VALUES_WARNING = "entrodiag: impossible values read as missing"


@dataclass
class Run:
    """A run directory, read lazily. Tables are polars DataFrames; ``scan(table)`` is lazy.

    ``skipped_parts``: the part files left out because they cannot be decoded (each named once in
    a warning). A corrupt page is found when a query first decodes it, so the list grows as the
    run is read; ``check()`` finds every one at once.
    """

    path: RunPath
    meta: dict
    skipped_parts: list[RunPath] = field(default_factory=list)
    #: Only rows with ``step <= max_step`` are read (``until``); ``None``: every row.
    max_step: int | None = None
    #: Skipped parts and impossible values are recorded (``skip_messages``, ``bad_values``) but
    #: not warned about: for readers in worker threads, where a warning filter would be process-wide.
    quiet: bool = False
    _skip_reasons: dict[RunPath, str] = field(default_factory=dict, repr=False)
    _bad: dict[str, dict] = field(default_factory=dict, repr=False)
    #: per table, the last listing and the folder's stamp it was made at (``folder_stamp``)
    _listed: dict[str, tuple[int, tuple]] = field(default_factory=dict, repr=False)
    #: on an object store, the run's last recursive listing and when it was made (``_store_names``)
    _tree: tuple[float, dict[str, list[str]]] | None = field(default=None, repr=False)

    def until(self, step: int) -> Run:
        """The same run as it was after ``step``: every table without the rows of later steps
        (to replay what an analysis said at that point, e.g. when a flag was first raised)."""
        return Run(path=self.path, meta=self.meta, skipped_parts=self.skipped_parts, max_step=int(step),
                   quiet=self.quiet, _skip_reasons=self._skip_reasons, _listed=self._listed)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def status(self) -> str:
        """running | finished | failed | stopped | interrupted (a writer that died without
        closing): ``run_status`` of run.json, decided anew at each call."""
        return run_status(self.meta)

    def parts(self, table: str) -> list[RunPath]:
        """Completed, readable part files of ``table`` (unreadable ones skipped with a warning)."""
        return self._parts(table)[0]

    def _parts(self, table: str, *, fresh: bool = False) -> tuple[list[RunPath], pa.Schema | None]:
        """The table's readable parts and the schema they are read with. An analysis asks for the
        same tables some twenty times, so a listing is reused: for a local folder while its
        modification time is unchanged (and was settled), for an object store (two LIST requests a
        listing) for ``STORE_LISTING_S`` seconds. ``fresh``: list."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        folder = self.path / table
        stamp = folder_stamp(folder)
        hit = self._listed.get(table)
        if not fresh and hit is not None:
            if stamp is not None and hit[0] == stamp:
                return hit[1]
            if isinstance(folder, Location) and time.monotonic() - hit[0] < STORE_LISTING_S:
                return hit[1]
        for attempt in range(RERUNS):
            try:
                found = self._list(table, fresh or attempt > 0)
                break
            except FileNotFoundError:  # a part vanished between listing and reading its footer
                continue
        else:
            found = self._list(table, True)
        if stamp is not None or isinstance(folder, Location):
            self._listed[table] = (stamp if stamp is not None else time.monotonic(), found)
        return found

    def _store_names(self, fresh: bool) -> dict[str, list[str]]:
        """An object-store run's folders and their names: every table folder in one recursive
        listing (listed until two agree, as ``list_parts`` lists a folder), reused for
        ``STORE_LISTING_S``: two LIST requests for the six tables instead of twelve."""
        if self._tree is not None and not fresh and time.monotonic() - self._tree[0] < STORE_LISTING_S:
            return self._tree[1]
        previous = None
        for _ in range(20):
            tree = list_tree(self.path)
            if tree == previous:
                break
            previous = tree
        self._tree = (time.monotonic(), previous)
        return previous

    def _list(self, table: str, fresh: bool = False) -> tuple[list[RunPath], pa.Schema | None]:
        folder = self.path / table
        try:
            if isinstance(folder, Location):
                names = self._store_names(fresh).get(table)
                listed = [] if names is None else list_parts(folder, lambda _: names)
            else:
                listed = list_parts(folder)
        except OSError as e:  # a table folder that cannot be listed (permissions): the table is left out
            self._skip(folder, f"the folder cannot be listed, the whole table is left out: {os_reason(e)}")
            return [], None
        found: list[tuple[RunPath, Verdict]] = []
        prefetch_footers([part for _, part in listed])
        for _, part in listed:
            key = listed_key(part)
            if key is None:
                broken = broken_reason(part)
                if broken is None:
                    raise FileNotFoundError(part)  # gone since the listing (a compaction): list again
                self._skip(part, broken)
                continue
            verdict = read_footer(part, key)
            if verdict.error:
                self._skip(part, verdict.error)
            elif verdict.rows:
                found.append((part, verdict))
        if not found:
            return [], None
        schema, drift = table_schema(table, [v.schema for _, v in found], [v.rows for _, v in found])
        for i, why in drift.items():
            self._skip(found[i][0], why)
        return [part for i, (part, _) in enumerate(found) if i not in drift], schema

    def _skip(self, part: RunPath, reason: str) -> None:
        if part not in self.skipped_parts:
            self.skipped_parts.append(part)
            self._skip_reasons[part] = reason
            if not self.quiet:
                warnings.warn(self.skip_messages()[-1], stacklevel=4)

    def skip_messages(self) -> list[str]:
        """The warning that named each of ``skipped_parts``, in order (``SKIP_WARNING`` ...)."""
        return [f"{SKIP_WARNING} {part} ({self._skip_reasons.get(part, 'unreadable')})" for part in self.skipped_parts]

    def skipped(self) -> list[dict[str, str]]:
        """``skipped_parts`` as ``{"path": <path inside the run>, "reason": ...}`` (for summaries)."""
        out = []
        for part in self.skipped_parts:
            try:
                rel = str(part.relative_to(self.path))
            except ValueError:
                rel = str(part)
            out.append({"path": rel, "reason": self._skip_reasons.get(part, "unreadable")})
        return out

    def check(self, tables: tuple[str, ...] = TABLES, *, progress: bool = False) -> list[RunPath]:
        """Decode every page of every part of ``tables`` once (cached per file version) and return
        ``skipped_parts``: what a full read of the run leaves out. ``progress``: a progress bar
        on stderr when the check takes more than two seconds."""
        parts = [part for table in tables for part in self.parts(table)]
        if progress:
            from tqdm import tqdm

            parts = tqdm(parts, desc="checking part files", unit="part", delay=2.0, leave=False)
        for part in parts:
            key = listed_key(part)
            if key is not None and (v := decode_part(part, key)).error:
                self._skip(part, v.error)
        return list(self.skipped_parts)

    def scan(self, table: str, *, raw: bool = False) -> pl.LazyFrame:
        """All completed part files of ``table`` as one LazyFrame (raw rows, ranks unmerged).

        Impossible values are read as null and rows without a step dropped
        (``entrodiag.store.values``); ``raw=True`` reads them as stored.
        """
        parts, schema = self._parts(table)
        if not parts:
            return pl.LazyFrame()
        pschema = polars_schema(schema)
        if not GUARDED:  # pragma: no cover - older polars
            self.check((table,))
            lf = scan_parts(self.parts(table), pschema)
        else:
            scan = GuardedScan(parts, pschema, skipped=self.skipped_parts, skip=self._skip,
                               relist=lambda: self._parts(table, fresh=True)[0])
            lf = guarded_scan(scan, f"{self.path.name}/{table}")
        if not raw:
            lf = values.mask(lf, pschema)
        return lf if self.max_step is None else lf.filter(pl.col("step") <= self.max_step)

    def bad_values(self, tables: tuple[str, ...] = TABLES) -> dict[str, dict[str, dict[str, int]]]:
        """Impossible values per table and column, by reason (``entrodiag.store.values``): what
        the reader reads as null. Counted once per table and ``Run``: from the rows when the table
        was already read whole, else in one lazy pass over its checked columns."""
        out = {}
        for table in tables:
            if table not in self._bad:
                lf = self.scan(table, raw=True) if self.parts(table) else None
                self._bad[table] = values.count(lf, lf.collect_schema()) if lf is not None else {}
            if self._bad[table]:
                out[table] = self._bad[table]
        return out

    def _collect(self, table: str, *, warn: bool = False) -> pl.DataFrame:
        """The whole table, impossible values read as null (counted from the same rows, and
        named in a warning when ``warn``)."""
        raw = self.scan(table, raw=True).collect()
        if raw.width == 0:  # no rows yet: an empty table that still has the core columns
            return empty_rows(table)
        counts = values.count(raw.lazy(), raw.schema)
        if self.max_step is None:
            self._bad[table] = counts
            if counts and warn and not self.quiet:
                warnings.warn(f"{BAD_VALUES_WARNING} in {self.path}: {values.describe({table: counts})}",
                              stacklevel=3)
        return values.mask(raw.lazy(), raw.schema).collect() if counts else raw

    @cached_property
    def steps_by_rank(self) -> pl.DataFrame:
        """One row per (step, rank); repeated rows coalesced, the latest non-null value winning."""
        return steps_by_rank(self._collect("steps", warn=True))

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
        return finish_table("events", self._collect("events"))

    @cached_property
    def evals(self) -> pl.DataFrame:
        """One row per (step, name): ranks merged by ``n``-weighted mean (plain mean without n)."""
        return merge_evals(self._collect("evals", warn=True))


def steps_by_rank(rows: pl.DataFrame) -> pl.DataFrame:
    """``Run.steps_by_rank`` from the step rows as read: one row per (step, rank), repeated rows
    coalesced (the latest non-null value winning)."""
    return rows if rows.is_empty() else coalesce(rows, ["step", "rank"])


def merge_evals(rows: pl.DataFrame) -> pl.DataFrame:
    """``Run.evals`` from the evaluation rows as read: one row per (step, name), ranks merged by
    ``n``-weighted mean (plain mean without n)."""
    if rows.is_empty():
        return rows.select("step", "name", "value", "n")
    df = coalesce(rows, ["step", "name", "rank"])
    w = pl.col("n").fill_null(1).cast(pl.Float64)
    return (
        df.group_by("step", "name")
        .agg(
            value=(pl.col("value") * w).sum() / w.filter(pl.col("value").is_not_null()).sum(),
            n=pl.col("n").sum(),
        )
        .sort("step", "name")
    )


def empty_rows(table: str) -> pl.DataFrame:
    """The rows of a table without parts: empty, with the core columns."""
    return pl.DataFrame(schema=polars_schema(pa.schema(CORE_TYPES[table])))


def finish_table(table: str, rows: pl.DataFrame) -> pl.DataFrame:
    """``Run.<table>`` from the table's rows as read (impossible values already null): steps merged
    across ranks, evaluations merged, events in order, the others as they are. One place for both
    ``Run`` and the summary index's many-runs read (``entrodiag.store.bulk``)."""
    if table == "steps":
        return merge_ranks(steps_by_rank(rows))
    if table == "evals":
        return merge_evals(rows)
    if table == "events":
        return rows.sort("step", "time")
    return rows



def load_run(path: str | os.PathLike | Location) -> Run:
    """Open the run at ``path`` (or the only run inside ``path``): a local folder or a URL
    (``s3://bucket/prefix/run``, ``gs://...``, ``file://...``; see ``entrodiag.store.location``).

    Raises ``RunError`` with a one-line message when ``path`` is not a run (or the object store
    cannot be read).

    Example:
        >>> run = load_run("runs/demo")            # doctest: +SKIP
        >>> run.status, run.steps["entropy_mean"][-1]  # doctest: +SKIP
    """
    run_dir = find_run_dir(path)
    return Run(path=run_dir, meta=read_meta(run_dir))
