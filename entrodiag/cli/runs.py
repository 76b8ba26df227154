"""The commands that read or maintain stored runs as they are: ``inspect``, ``compact``, ``query``.

Also ``RUN_HELP``, the help of every read command's RUN argument.
"""

from __future__ import annotations

import argparse
import json
import sys


#: The help of a command's RUN argument (every read command takes a local folder or a URL).
RUN_HELP = ("a run directory (or a folder holding exactly one run): a local path or a URL, "
            "s3://bucket/prefix/run or gs://... (endpoint and credentials from the environment: "
            "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)")


def add_inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_inspect(args: argparse.Namespace) -> int:
    """Show what a run directory holds: status, tables, the first and last step; check every part
    file (each page decoded once: damaged files are named and left out) and count impossible values
    (negative or infinite entropy, NaN, shares outside [0, 1], ...), which every reader reads as
    missing."""
    import warnings

    import polars as pl

    from ..store import load_run
    from ..store.reader import BAD_VALUES_WARNING, SKIP_WARNING
    from ..store.values import describe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(args.run)
        run.check(progress=True)
        steps = run.steps
        counts = {t: run.scan(t).select(pl.len()).collect().item() for t in ("tokens", "samples", "spans", "evals")}
        evals = run.evals
        bad = run.bad_values()
    summary = {
        "run": str(run.path),
        "run_id": run.run_id,
        "status": run.status,
        "source": run.meta.get("source"),
        "model": run.meta.get("model"),
        "intervention": run.meta.get("intervention"),
        "world_size": run.meta.get("world_size"),
        "steps": steps.height,
        "rows": counts,
        "first_step": _pick(steps.head(1)),
        "last_step": _pick(steps.tail(1)),
        "evals": {} if evals.is_empty() else {
            name: {"step": int(g["step"][-1]), "value": g["value"][-1]}
            for (name,), g in evals.group_by("name", maintain_order=True)
        },
        "writer_errors": run.meta.get("writer_errors"),
        "skipped_parts": run.skipped(),
        "bad_values": bad,
        "bad_values_total": sum(n for cols in bad.values() for why in cols.values() for n in why.values()),
        "warnings": [str(w.message) for w in caught
                     if not str(w.message).startswith((SKIP_WARNING, BAD_VALUES_WARNING))],
    }
    if args.json:
        from ..schemas import stamp

        print(json.dumps(stamp(summary), indent=2, default=str))
        return 0
    print(f"run        {summary['run']}  ({summary['status']})")
    for key in ("run_id", "source", "model", "intervention", "world_size"):
        if summary[key] is not None:
            print(f"{key:<10} {summary[key]}")
    print(f"steps      {summary['steps']}   rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for label in ("first_step", "last_step"):
        row = summary[label]
        if row:
            print(f"{label:<10} " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    for name, e in summary["evals"].items():
        print(f"eval       {name} = {_fmt(e['value'])} at step {e['step']}")
    for part in summary["skipped_parts"]:
        print(f"damaged    {part['path']}: skipped, its rows are left out ({part['reason']})")
    if bad:
        print(f"bad values {summary['bad_values_total']} impossible values, read as missing by every "
              f"command: {describe(bad)}")
    for w in summary["warnings"]:
        print(f"warning    {w}")
    if not summary["steps"]:
        print("no step rows yet: a Recorder writes them on flush (every flush_interval_s) and on close")
    return 0


def _pick(row) -> dict:
    keys = ("step", "n_tokens", "entropy_mean", "reward_mean", "cov_mean", "resp_len_mean")
    return {k: row[k][0] for k in keys if k in row.columns} if row.height else {}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def add_compact_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a local run directory (or a folder holding exactly one run); runs on an "
                   "object store are refused")
    p.add_argument("--force", action="store_true",
                   help="compact a live run too (status running, fresh heartbeat); its writer's new parts "
                   "are left alone")
    p.add_argument("--max-mb", type=float, default=256.0, metavar="MB",
                   help="input megabytes merged into one file at most (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_compact(args: argparse.Namespace) -> int:
    """Merge a long run's part files, per table and rank, into a few files (reads get faster).

    Atomic and safe while other commands read the run: each merged file is in place before the
    parts it replaces are deleted, and readers ignore replaced parts from that moment. Damaged
    parts are left as they are. A live run is refused unless --force; a path that is not a run
    exits 2."""
    from ..store.compact import CompactError, compact

    try:
        res = compact(args.run, force=args.force, max_bytes=int(args.max_mb * 2**20), progress=not args.no_progress)
    except CompactError as e:
        print(f"entrodiag compact: {e}", file=sys.stderr)
        return 2
    print(f"compacted {res.run_dir}: {res.parts_before} part files -> {res.parts_after} "
          f"({len(res.written)} written, {res.removed} merged and removed)")
    if res.leftovers:
        print(f"removed {res.leftovers} leftover part(s) an interrupted compaction had already replaced")
    for part in res.damaged:
        print(f"left as it is (cannot be decoded): {part}")
    return 0


def add_query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="a folder of runs, or a URL (s3://bucket/runs, gs://..., file://...), searched "
                   "3 levels deep; a single run works too")
    p.add_argument("sql", help="the query, in DuckDB's SQL dialect")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as JSON: {schema_version, "
                     "columns, rows: [one object per row]} (schema entrodiag/schemas/query.schema.json)")
    out.add_argument("--csv", action="store_true", help="print the rows as CSV (lists as JSON text; text starting "
                     "with = + - @ gets a leading ' so a spreadsheet shows it as text, not a formula)")
    p.add_argument("--index", default=None, metavar="DIR",
                   help="where the root's summary index lives (default: $ENTRODIAG_CACHE/index/<hash of ROOT>, "
                   "~/.cache/entrodiag/index/... without ENTRODIAG_CACHE)")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """tables (each with run_id, the run's path under ROOT):
  runs     one row per run: run_id, path, status, error, and run.json's fields
           (model, task, intervention, source, created, ...; config as JSON: config->>'$.lr')
  steps    one row per step, ranks merged (entropy_mean, reward_mean, cov_mean, ...)
  evals    one row per step and name: step, name, value, n
  events   flags raised live, alerts, switches, stops
  samples  one row per kept response; tokens: its token rows; spans: high-entropy spans
Numbers are those of load_run(run). Only the tables a query names are read, and only the runs
that changed since the last query are opened (the summary index, see --index).

examples:
  entrodiag query runs "select run_id, status, model, intervention from runs"
  entrodiag query runs "select run_id, max(step) as last, min(entropy_mean) from steps group by run_id"
  entrodiag query s3://bucket/runs --csv "select * from evals where name = 'val/accuracy'"
  # runs that lost half their entropy before step 100
  entrodiag query runs "with s as (select run_id, step, entropy_mean h,
      first_value(entropy_mean) over (partition by run_id order by step) h0 from steps)
    select run_id, min(step) as step from s where h <= h0 / 2 and step < 100 group by run_id"
"""


def cmd_query(args: argparse.Namespace) -> int:
    """Query every run under a root with SQL (DuckDB): runs, steps, evals, events, samples, tokens.

    Runs DuckDB over the tables of all runs under ROOT (a folder or an s3://, gs://, file:// URL)
    at once, each table with a run_id column, and prints the result as a table, --json or --csv.
    Bad SQL or a root without runs exits 2 with a one-line message."""
    from ..store.query import QueryError, connect_and_run

    try:
        text, notes = connect_and_run(args.root, args.sql, index_dir=args.index,
                                      fmt="json" if args.json else "csv" if args.csv else "table")
    except QueryError as e:
        print(f"entrodiag query: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print(text)
    return 0
