"""The dashboard's Runs table and ``entrodiag query``'s ``runs`` table on a root of 1,000 runs.

The root: ``--runs`` copies of the shipped sample run (``data/sample-run``: 120 steps of the
built-in trainer, 25 evaluations, 221 part files), hard-linked (``os.link``) so that 1,000 runs
take little disk and no write time; each copy gets its own run.json (run_id, model size and
intervention vary). It is kept under ``--root`` and reused when it exists.

Timed (each in a fresh Python process, so no in-memory cache of an earlier trial helps; every
process imports the same modules first and only the work below is timed):

- baseline, *open every run*: what the Runs table costs without the index, the path the page
  took before it: for each run ``load_run`` and its row (``compare_runs`` numbers, as
  ``app_data.overview_row`` computes them);
- index, cold: the same table through the summary index with an empty index folder (the first
  time a root is shown: every run is opened once), with the index's thread pool (``LOCAL_THREADS``
  runs at once) and, for comparison in the same run, one run at a time (``serial``);
- the Runs page, cold (``AppTest``, a server that is up, an empty index): the first render, which
  shows every run's run.json fields and starts the background fill, and the time until the fill
  has every run's numbers (the table is full);
- index, warm: the table through the summary index built by an earlier process: the root is
  listed, nothing changed, no run is opened (the Runs page on every later render or restart);
- index, one run changed: the warm case after a new part file in one run (that run is reopened);
- the Runs page, warm: the whole page rendered by ``streamlit.testing.v1.AppTest`` as a new
  session of a server that is up (the app rendered once on the sample run first, so imports are
  done; then every streamlit cache cleared): sidebar discovery, the table, and the summary of the
  run selected by default, which ``analyze_run`` computes (a cost per selected run, not per run
  under the root);
- query ``runs`` table, warm: ``entrodiag.store.query.query(root, "select ... from runs")``;
- query over ``steps`` (120,000 rows: per run the step count and mean entropy): cold (the
  first query that names ``steps`` builds each run's merged steps table; threaded and serial) and
  warm (DuckDB reads the 1,000 index files).

Every folder of the root is dated a minute back after the cold build (a root of runs that
finished a while ago; the index rereads folders changed within ``RACY_S`` = 2 s of a listing).
Also timed: the Runs page's discovery (``app_data.discover``), which the sidebar runs on every
render whatever the table does. Medians over ``--repeats`` trials (the baseline over
``--baseline-repeats``, it takes minutes); ratios are baseline / index in the same run.

Targets: the Runs table of 1,000 runs in <= 3 s warm (issue 19); from a cold index the Runs
page in <= 15 s and the first query on ``steps`` in <= 15 s (issue 29).

    python benchmarks/bench_runs_index.py                         # 1,000 runs, 5 repeats
    python benchmarks/bench_runs_index.py --runs 200 --json benchmarks/results/runs_index.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample-run"
TARGET_S = 3.0
COLD_TARGET_S = 15.0
SIZES = ("0.5B", "1.5B", "7B", "32B")
INTERVENTIONS = ("none", "clip_cov", "kl_cov", "clip_higher")


def make_root(root: Path, n: int) -> None:
    """``n`` hard-linked copies of the sample run, each with its own run.json."""
    meta = json.loads((SAMPLE / "run.json").read_text())
    have = {p.parent.name for p in root.glob("*/run.json")} if root.exists() else set()
    for i in range(n):
        name = f"run-{i:04d}"
        if name in have:
            continue
        dest = root / name
        for part in SAMPLE.glob("*/part-*.parquet"):
            (dest / part.parent.name).mkdir(parents=True, exist_ok=True)
            os.link(part, dest / part.parent.name / part.name)
        m = {**meta, "run_id": name, "model": f"qwen2.5-{SIZES[i % len(SIZES)]}",
             "intervention": INTERVENTIONS[i % len(INTERVENTIONS)]}
        (dest / "run.json").write_text(json.dumps(m))


_PRELUDE = f"""
import sys, time, os, json
import warnings; warnings.simplefilter('ignore')
import polars as pl
from entrodiag import load_run
from entrodiag.store.index import RunsIndex
from entrodiag.store.query import query
from entrodiag.app import app_data
"""

_SERIAL = "import entrodiag.store.index as _ix; _ix.LOCAL_THREADS = 1\n"
#: The cold build as before issue 29's many-runs read: every run opened by ``load_run``.
_RUN_BY_RUN = "import entrodiag.store.bulk as _b; _b.read_many = lambda table, runs: ({}, list(runs))\n"

_WORK = {
    "baseline": """
rows = {}
for d in sorted(p for p in root.iterdir() if (p / 'run.json').is_file()):
    rows[d.name] = app_data._overview(load_run(d))
n = len(rows)
""",
    "index": """
rows = app_data.runs_overview(str(root))  # the index in $ENTRODIAG_CACHE, as the dashboard uses it
n = len(rows)
""",
    "query_runs": """
n = query(root, 'select run_id, status, model, intervention from runs', index_dir=index).num_rows
""",
    "query_steps": """
n = query(root, 'select run_id, count(*) as n, avg(entropy_mean) as h from steps group by run_id',
          index_dir=index).num_rows
""",
    "page_cold": """
t1 = time.perf_counter()
at.run()
assert not at.exception, at.exception
first = time.perf_counter() - t1
fill = app_data._fills.get(str(root))
while fill is not None and fill.running:
    time.sleep(0.1)
extra = {"first": first}
n = len(at.dataframe[0].value)
""",
    "discover": """
n = len(app_data.discover(str(root)).runs)
""",
    "page": """
at.run()
assert not at.exception, at.exception
n = len(at.dataframe[0].value)
""",
}


def _age(folder: Path, seconds: float = 60.0) -> None:
    """Date the run folders and their table folders ``seconds`` back."""
    t = time.time() - seconds
    for p in [folder, *folder.glob("*"), *folder.glob("*/*"), *folder.glob("*/*/*")]:
        if p.is_dir() or p.name == "run.json":
            os.utime(p, (t, t))


# The page: a server that is up (the app's imports done by one render of another root: a run of
# the sample), then a new session opening the Runs page on the root with every cache cleared.
_PAGE_SETUP = """
from streamlit.testing.v1 import AppTest
import streamlit as st
os.environ['ENTRODIAG_RUNS_ROOT'] = SAMPLE
at = AppTest.from_file(APP, default_timeout=600)
at.run()
os.environ['ENTRODIAG_RUNS_ROOT'] = str(root)
at = AppTest.from_file(APP, default_timeout=600)
st.cache_data.clear(); st.cache_resource.clear(); app_data._indexes.clear()
"""


def trial(kind: str, root: Path, index: Path, *, serial: bool = False,
          run_by_run: bool = False) -> tuple[float, int, dict]:
    """Seconds of one ``kind`` of work in a fresh process, the number of rows it produced, and any
    other times it took (``extra``, with the process's CPU seconds). ``serial``: the index reads one
    run at a time; ``run_by_run``: each run opened by ``load_run`` (no ``bulk.read_many``)."""
    code = _PRELUDE + (_SERIAL if serial else "") + (_RUN_BY_RUN if run_by_run else "") + \
        f"root = __import__('pathlib').Path({str(root)!r}); index = {str(index)!r}; extra = {{}}\n" + \
        f"APP = {str(REPO / 'entrodiag' / 'app' / 'streamlit_app.py')!r}; SAMPLE = {str(SAMPLE)!r}\n" + \
        (_PAGE_SETUP if kind in ("page", "page_cold") else "") + \
        "t0, c0 = time.perf_counter(), time.process_time()\n" + _WORK[kind] + \
        "extra['cpu'] = time.process_time() - c0\nprint(json.dumps([time.perf_counter() - t0, n, extra]))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    s, n, extra = json.loads(out.stdout.strip().splitlines()[-1])
    return s, n, extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "entrodiag-bench-runs")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-repeats", type=int, default=1)
    ap.add_argument("--cold-repeats", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--query-only", action="store_true",
                    help="only the first query on steps from a cold index: many runs read together "
                         "(threads, one at a time) and each run opened by load_run (threads), alternated")
    args = ap.parse_args()
    root = args.root / str(args.runs)
    t0 = time.perf_counter()
    make_root(root, args.runs)
    print(f"root: {root} ({args.runs} runs, made in {time.perf_counter() - t0:.1f} s)", flush=True)
    cache = Path(tempfile.mkdtemp(prefix="entrodiag-bench-cache-"))
    os.environ["ENTRODIAG_CACHE"] = str(cache)  # the dashboard's index (per-user cache) is this one
    from entrodiag.store.index import default_index_dir

    index = default_index_dir(str(root.absolute()))
    res: dict[str, list[float]] = {}

    def run(label: str, kind: str, *, fresh_index: bool = False, serial: bool = False,
            run_by_run: bool = False) -> None:
        if fresh_index:
            shutil.rmtree(index, ignore_errors=True)
        s, n, extra = trial(kind, root, index, serial=serial, run_by_run=run_by_run)
        assert n == args.runs, f"{label}: {n} rows for {args.runs} runs"
        res.setdefault(label, []).append(s)
        res.setdefault(f"{label}: CPU", []).append(extra["cpu"])
        print(f"  {label:<24} {s:8.2f} s  (CPU {extra['cpu']:.1f} s, load {os.getloadavg()[0]:.1f})", flush=True)
        if "first" in extra:
            res.setdefault(f"{label}: first render", []).append(extra["first"])
            print(f"  {label + ': first render':<24} {extra['first']:8.2f} s", flush=True)

    if args.query_only:
        _age(root)
        for _ in range(args.cold_repeats):
            run("query steps, cold, runs read together", "query_steps", fresh_index=True)
            run("query steps, cold, each run opened (before)", "query_steps", fresh_index=True, run_by_run=True)
            run("query steps, cold, read together, one batch at a time", "query_steps", fresh_index=True,
                serial=True)
        _report(res, args)
        return
    for _ in range(args.baseline_repeats):
        run("baseline (open every run)", "baseline")
    _age(root)  # as a root whose runs finished a while ago (see RACY_S in entrodiag/store/index.py)
    for _ in range(args.cold_repeats):  # threaded and serial alternate, each from an empty index
        run("index, cold", "index", fresh_index=True)
        run("index, cold, serial", "index", fresh_index=True, serial=True)
        run("query steps, cold", "query_steps", fresh_index=True)
        run("query steps, cold, serial", "query_steps", fresh_index=True, serial=True)
        run("query steps, cold, each run opened (before)", "query_steps", fresh_index=True, run_by_run=True)
        run("Runs page, cold (AppTest): table full", "page_cold", fresh_index=True)
    shutil.rmtree(index, ignore_errors=True)  # the index the warm trials read: steps and the table's rows
    trial("query_steps", root, index)
    trial("index", root, index)
    for _ in range(args.repeats):
        run("index, warm", "index")
        run("Runs page, warm (AppTest)", "page")
        run("query steps, warm", "query_steps")
        run("query runs table, warm", "query_runs")
        run("discover (sidebar)", "discover")
        part = root / "run-0000" / "steps" / "part-r00000-999999.parquet"
        shutil.copy(next((root / "run-0000" / "steps").glob("part-*.parquet")), part)
        _age(root / "run-0000")
        run("index, one run changed", "index")
        part.unlink()
        _age(root / "run-0000")
        run("index, one run changed", "index")  # changed back: reopened once more
    _report(res, args)
    shutil.rmtree(cache, ignore_errors=True)


def _report(res: dict[str, list[float]], args) -> None:
    """Medians, ratios against the baseline of the same run, the targets, and ``--json``."""
    med = {k: statistics.median(v) for k, v in res.items()}
    base_label = "baseline (open every run)" if "baseline (open every run)" in med else \
        "query steps, cold, each run opened (before)"
    base = med[base_label]
    print(f"\n{args.runs} runs, medians ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"load now {os.getloadavg()[0]:.1f}), ratios against {base_label!r}:")
    for k, v in med.items():  # CPU seconds against the baseline's CPU seconds
        b = med.get(f"{base_label}: CPU", base) if k.endswith(": CPU") else base
        print(f"  {k:<26} {v:8.2f} s   baseline/this {b / v:8.1f}x")
    targets = [("query steps, cold, runs read together", COLD_TARGET_S)] if args.query_only else [
        ("index, warm", TARGET_S), ("Runs page, cold (AppTest): table full: first render", COLD_TARGET_S),
        ("query steps, cold", COLD_TARGET_S)]
    for label, target in targets:
        print(f"target: {label} <= {target} s: {med[label]:.2f} s -> {'holds' if med[label] <= target else 'missed'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": args.runs, "trials": res, "medians": med}, indent=1))

if __name__ == "__main__":
    main()
