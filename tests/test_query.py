"""``entrodiag query``: SQL over every run under a root agrees with ``load_run`` on each run.

The root holds the shipped sample run, a run written by two ranks (steps merged), a compacted
run whose old parts are still there (rows counted once), a run with a cut part file (skipped),
and a run with impossible values (read as null). Each table's rows for each run are compared
with ``load_run(run).<table>``; then the index's freshness, the CLI's outputs and errors, and a
root on a real S3-protocol server (moto, 127.0.0.1).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import warnings
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import batch_kwargs
from polars.testing import assert_frame_equal
from run_damage import copy_sample_run, truncate_part

from entrodiag import Recorder, load_run
from entrodiag.cli import main
from entrodiag.store import bulk
from entrodiag.store.compact import compact
from entrodiag.store.index import RunsIndex
from entrodiag.store.query import SANDBOX_THREADS, QueryError, query, query_with_index
from entrodiag.store.run import SKIP_WARNING
from schema_check import query_rows

TABLES = ("steps", "evals", "events", "samples", "tokens", "spans")


def _two_rank_run(path):
    recs = [Recorder(path, rank=r, world_size=2, flush_interval_s=60, heartbeat_s=60, token_sample=2,
                     model="tiny-2B", task="t") for r in (0, 1)]
    for step in range(4):
        for r, rec in enumerate(recs):
            rec.record_batch(step, **batch_kwargs(step, seed=r + 1))
            rec.log_eval(step, "val/accuracy", 0.1 * step + 0.05 * r, n=10 + 10 * r)
    for rec in reversed(recs):
        rec.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    copy_sample_run(base / "sample")
    _two_rank_run(base / "sweep" / "two_rank")
    # compacted, with the parts it replaced still present (a compaction caught before deleting them)
    compacted = copy_sample_run(base / "sweep" / "compacted")
    old = {p.relative_to(compacted): p.read_bytes() for p in compacted.glob("*/part-*.parquet")}
    compact(compacted)
    for rel, data in old.items():
        (compacted / rel).write_bytes(data)
    damaged = copy_sample_run(base / "damaged")
    truncate_part(sorted((damaged / "steps").glob("part-*.parquet"))[3])
    bad = copy_sample_run(base / "bad_values")
    part = sorted((bad / "steps").glob("part-*.parquet"))[0]
    t = pq.read_table(part).to_pylist()
    t[0]["entropy_mean"] = -1.0  # impossible: read as null
    pq.write_table(pq.read_table(part).from_pylist(t, schema=pq.read_schema(part)), part)
    return base


RUN_IDS = ("bad_values", "damaged", "sample", "sweep/compacted", "sweep/two_rank")


def _frame(result) -> pl.DataFrame:
    return pl.from_arrow(result)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_table_equals_load_run_per_run(root, tmp_path):
    idx = tmp_path / "index"
    runs = _frame(query(root, "select run_id, status, model, world_size, path from runs order by run_id",
                        index_dir=idx))
    assert tuple(runs["run_id"]) == RUN_IDS
    for row in runs.iter_rows(named=True):
        run = load_run(root / row["run_id"])
        assert (row["status"], row["model"], row["world_size"]) == (run.status, run.meta["model"],
                                                                     run.meta["world_size"])
    for table in TABLES:
        got_all = _frame(query(root, f"select * from {table}", index_dir=idx))
        for run_id in RUN_IDS:
            want = getattr(load_run(root / run_id), table)
            got = got_all.filter(pl.col("run_id") == run_id)
            if want.height == 0:
                assert got.height == 0, (table, run_id)
                continue
            keys = [c for c in ("step", "name", "rank", "sample_id", "pos", "start", "time") if c in want.columns]
            got = got.select(want.columns).sort(keys)
            assert_frame_equal(got, want.sort(keys), check_dtypes=False, check_exact=False, rel_tol=1e-12)
    # what makes those runs special really happened
    two = load_run(root / "sweep/two_rank")
    assert two.steps_by_rank.height == 2 * two.steps.height == 8
    assert load_run(root / "damaged").steps.height < load_run(root / "sample").steps.height
    n = _frame(query(root, "select run_id, count(*) n, count(entropy_mean) h from steps group by run_id "
                     "order by run_id", index_dir=idx))
    sample_steps = load_run(root / "sample").steps.height
    assert dict(zip(n["run_id"], n["n"])) == {"bad_values": sample_steps, "sample": sample_steps,
                                              "damaged": load_run(root / "damaged").steps.height,
                                              "sweep/compacted": sample_steps, "sweep/two_rank": 4}
    assert dict(zip(n["run_id"], n["h"]))["bad_values"] == sample_steps - 1


def test_two_ranks_merged_as_load_run_merges(root, tmp_path):
    """The merged eval value is the n-weighted mean of the ranks' values (hand-computed)."""
    ev = _frame(query(root, "select step, value, n from evals where run_id = 'sweep/two_rank' order by step",
                      index_dir=tmp_path))
    for step, value, n in ev.iter_rows():
        assert n == 30
        assert value == pytest.approx((10 * 0.1 * step + 20 * (0.1 * step + 0.05)) / 30)


def _age(folder, seconds: float = 60.0) -> None:
    """Date every file and folder under ``folder`` ``seconds`` back (the index does not trust a
    folder changed within the last ``RACY_S`` seconds to stay unchanged, so it would reopen it)."""
    import os
    import time

    t = time.time() - seconds
    for p in [folder, *folder.rglob("*")]:
        os.utime(p, (t, t))

def _copied_and_counted(root, tmp_path, monkeypatch) -> tuple:
    """A settled copy of ``root`` and the list that each run the index opens is appended to."""
    base = tmp_path / "root"
    shutil.copytree(root, base)
    _age(base)
    opened: list[str] = []
    original = RunsIndex._open
    monkeypatch.setattr(RunsIndex, "_open", lambda self, run: opened.append(run.run_id) or original(self, run))
    return base, opened



def test_index_reopens_only_changed_runs(root, tmp_path):
    base = tmp_path / "root"
    shutil.copytree(root / "sweep", base)
    _age(base)
    idx = tmp_path / "index"
    opened = []
    original, read_many = RunsIndex._open, bulk.read_many

    def counting(self, run):
        opened.append(run.run_id)
        return original(self, run)

    def counting_many(table, runs):  # runs read together (several stale runs) count as opened
        done, left = read_many(table, runs)
        opened.extend(done)
        return done, left

    sql = "select run_id, count(*) n from steps group by run_id order by run_id"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RunsIndex, "_open", counting)
        mp.setattr(bulk, "read_many", counting_many)
        first = _frame(query(base, sql, index_dir=idx))
        assert sorted(opened) == ["compacted", "two_rank"]
        opened.clear()
        assert_frame_equal(_frame(query(base, sql, index_dir=idx)), first)
        assert opened == []  # nothing changed: nothing opened
        with Recorder(base / "two_rank", rank=0, world_size=2, resume=True, flush_interval_s=60) as rec:
            rec.record_batch(4, **batch_kwargs(4, seed=1))
        copy_sample_run(base / "new")
        after = _frame(query(base, sql, index_dir=idx))
        assert sorted(opened) == ["new", "two_rank"]
    assert dict(zip(after["run_id"], after["n"])) == {
        "compacted": first["n"][0], "new": load_run(base / "new").steps.height, "two_rank": 5}
    shutil.rmtree(base / "new")
    assert _frame(query(base, "select run_id from runs", index_dir=idx))["run_id"].to_list() == [
        "compacted", "two_rank"]


def test_cli_json_csv_and_table(root, tmp_path, capsys):
    sql = "select run_id, step, entropy_mean, entropy_hist from steps where step < 2 order by run_id, step"
    want = _frame(query(root, sql, index_dir=tmp_path))
    assert main(["query", str(root), sql, "--json", "--index", str(tmp_path)]) == 0
    rows = query_rows(capsys.readouterr().out)
    assert [(r["run_id"], r["step"]) for r in rows] == list(zip(want["run_id"], want["step"]))
    assert [r["entropy_mean"] for r in rows] == [None if v is None else pytest.approx(v)
                                                 for v in want["entropy_mean"]]
    assert rows[0]["entropy_hist"] == want["entropy_hist"][0].to_list()
    assert main(["query", str(root), sql, "--csv", "--index", str(tmp_path)]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["run_id"] for r in parsed] == want["run_id"].to_list()
    assert [float(r["entropy_mean"]) if r["entropy_mean"] else None for r in parsed] == [
        None if v is None else pytest.approx(v) for v in want["entropy_mean"]]
    assert json.loads(parsed[0]["entropy_hist"]) == want["entropy_hist"][0].to_list()
    assert main(["query", str(root), "select run_id, status from runs order by run_id",
                 "--index", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert all(r in out.out for r in RUN_IDS) and "5 rows" in out.out
    assert "damaged part file" in out.err and "damaged" in out.err  # named once, as load_run names it


def test_bad_sql_and_empty_root_give_one_line_errors(root, tmp_path, capsys):
    assert main(["query", str(root), "select nope from steps", "--index", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err
    assert all(t in err for t in ("runs", "steps", "evals", "events", "samples", "tokens"))
    with pytest.raises(QueryError, match="syntax"):
        query(root, "selec 1", index_dir=tmp_path)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["query", str(tmp_path / "empty"), "select * from runs", "--index", str(tmp_path)]) == 2
    assert "holds no entrodiag runs" in capsys.readouterr().err
    assert main(["query", str(tmp_path / "missing"), "select 1"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["query", "http://example.com/runs", "select 1"]) == 2
    assert "unsupported URL scheme" in capsys.readouterr().err


def test_table_no_run_has_still_has_its_columns(tmp_path):
    _two_rank_run(tmp_path / "r")
    got = _frame(query(tmp_path, "select run_id, kind, name from events", index_dir=tmp_path / "i"))
    assert got.height == 0 and got.columns == ["run_id", "kind", "name"]


def test_s3_root_equals_local_runs(root, tmp_path, s3_env):
    """A root on a real S3-protocol server (moto on 127.0.0.1): the same rows as the local copy
    (a few runs with few objects: the server is slow on a loaded machine)."""
    from entrodiag.store.location import locate

    local = tmp_path / "local"
    shutil.copytree(root / "sweep" / "two_rank", local / "two_rank")
    compact(copy_sample_run(local / "sweep" / "compacted"))
    dest = locate(f"s3://{s3_env}/team/runs")
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        dest.child(*f.relative_to(local).parts).write_bytes(f.read_bytes())
    for table in ("runs", "steps", "evals", "samples"):
        sql = f"select * exclude (path) from {table}" if table == "runs" else f"select * from {table}"
        got = _frame(query(dest.url, sql, index_dir=tmp_path / "s3idx"))
        want = _frame(query(local, sql, index_dir=tmp_path / "localidx"))
        keys = [c for c in ("run_id", "step", "name", "sample_id") if c in want.columns]
        assert_frame_equal(got.sort(keys), want.sort(keys))
        if table == "steps":
            for run_id in ("two_rank", "sweep/compacted"):
                assert_frame_equal(got.filter(pl.col("run_id") == run_id).drop("run_id").select(
                    load_run(local / run_id).steps.columns).sort("step"), load_run(local / run_id).steps)
    runs = _frame(query(dest.url, "select run_id, path from runs order by run_id", index_dir=tmp_path / "s3idx"))
    assert runs.rows() == [("sweep/compacted", f"s3://{s3_env}/team/runs/sweep/compacted"),
                           ("two_rank", f"s3://{s3_env}/team/runs/two_rank")]


# ----------------------------------------------------------------------------- README's examples
def _readme_query(name: str) -> str:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- query: {re.escape(name)} -->.*?```\n(.*?)```", text, re.S).group(1)
    return re.search(r'entrodiag query \S+ "(.*)"', block, re.S).group(1)


@pytest.fixture(scope="module")
def law_runs(tmp_path_factory):
    """Three runs with known entropy curves and laws: the first halves its entropy at step ~25,
    the second at step ~95, the third never; model sizes 1.5B, 1.5B and 7B."""
    import numpy as np
    from analysis_runs import make_run

    base = tmp_path_factory.mktemp("law-runs")
    kw = dict(steps=110, eval_every=5, eval_noise=0.01, B=8, G=4, T=8, token_sample=0)
    make_run(base / "fast", entropy=lambda u: np.exp(-3 * u), law=(0.3, 0.9), model="Qwen2.5-1.5B", **kw)
    make_run(base / "mid", entropy=lambda u: np.exp(-0.8 * u), law=(0.2, 0.8), model="Qwen2.5-1.5B", seed=1, **kw)
    make_run(base / "slow", entropy=lambda u: 1.0 - 0.3 * u, law=(0.1, 0.7), model="Qwen2.5-7B", seed=2, **kw)
    return base


def test_readme_half_entropy_query(law_runs, tmp_path):
    got = _frame(query(law_runs, _readme_query("half-entropy"), index_dir=tmp_path))
    want = {}
    for run_id in ("fast", "mid", "slow"):  # naive: walk the steps in order
        s = load_run(law_runs / run_id).steps.sort("step")
        h0 = s["entropy_mean"][0]
        hit = [t for t, h in zip(s["step"], s["entropy_mean"]) if t < 100 and h <= h0 / 2]
        if hit:
            want[run_id] = hit[0]
    assert set(want) == {"fast", "mid"}  # the curves were chosen so
    assert dict(zip(got["run_id"], got["step"])) == want


def test_readme_law_query_equals_fit_entropy_law(law_runs, tmp_path):
    from entrodiag.analysis import fit_entropy_law

    got = _frame(query(law_runs, _readme_query("law-r2"), index_dir=tmp_path))
    assert got.height == 3
    for row in got.iter_rows(named=True):
        fit = fit_entropy_law(load_run(law_runs / row["run_id"]), metric="val/accuracy_sampled", n_boot=0)
        assert row["n"] == fit.n
        assert (row["r2"], row["a"], row["b"], row["ceiling"]) == pytest.approx(
            (fit.r2, fit.a, fit.b, fit.ceiling), rel=1e-9)


def test_readme_entropy_per_model_size_query(law_runs, tmp_path):
    got = _frame(query(law_runs, _readme_query("entropy-per-size"), index_dir=tmp_path))
    final = {r: load_run(law_runs / r).steps.sort("step")["entropy_mean"].tail(10).mean()
             for r in ("fast", "mid", "slow")}
    assert got["size_b"].to_list() == [1.5, 7.0]
    assert got["runs"].to_list() == [2, 1]
    assert got["final_entropy"].to_list() == pytest.approx([(final["fast"] + final["mid"]) / 2, final["slow"]])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dashboard_runs_table_from_the_index(root, tmp_path, monkeypatch):
    """The Runs page's rows come from the index: equal to opening each run (``overview_row``), and
    a second render opens no run; the sidebar's discovery lists the same runs and statuses."""
    pytest.importorskip("streamlit", reason="the dashboard needs streamlit (pip install 'entrodiag[dashboard]')")
    from entrodiag.app import app_data

    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    base, opened = _copied_and_counted(root, tmp_path, monkeypatch)
    app_data._indexes.clear()
    rows = app_data.runs_overview(str(base))
    assert sorted(opened) == sorted(RUN_IDS) and sorted(rows) == sorted(RUN_IDS)
    for run_id in RUN_IDS:
        want = app_data._overview(load_run(base / run_id))
        got = rows[run_id]
        assert sorted(got) == sorted(want)
        for k, v in want.items():
            assert got[k] == (pytest.approx(v, nan_ok=True) if isinstance(v, float) else v), (run_id, k)
    opened.clear()
    app_data._indexes.clear()
    assert app_data.runs_overview(str(base)) == rows and opened == []
    found = app_data.discover(str(base))
    assert sorted(e.name for e in found.runs) == sorted(RUN_IDS)
    assert {e.name: e.status for e in found.runs} == {r: load_run(base / r).status for r in RUN_IDS}
    assert {e.path for e in found.runs} == {str(base / r) for r in RUN_IDS}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_read_in_threads_give_the_serial_index(root, tmp_path):
    """Runs read a few at a time (the index's thread pool) give the same tables, skipped parts,
    errors and derived rows as one run after another; progress is reported up to the total."""

    def row(run):
        return {"steps": run.steps.height, "h": run.steps["entropy_mean"].mean(), "skipped": len(run.skipped_parts)}

    built = {}
    for threads in (1, 4):
        ticks, seen = [], {}
        index = RunsIndex(root, index_dir=tmp_path / str(threads), threads=threads,
                          on_progress=lambda what, done, total: ticks.append((what, done, total)))
        with warnings.catch_warnings(record=True) as caught:  # the runs are opened quiet: no filter needed
            warnings.simplefilter("always")
            files = index.table_files(["steps", "evals", "spans"])
            rows = index.rows("t", row, on_row=seen.__setitem__)
        assert not [w for w in caught if SKIP_WARNING in str(w.message)]
        assert seen == rows and sorted(rows) == sorted(RUN_IDS)
        assert ("indexing runs", len(RUN_IDS), len(RUN_IDS)) in ticks and ("indexing t", 5, 5) in ticks
        frames = {t: {df["run_id"][0]: df for df in map(pl.read_parquet, ps)} for t, ps in files.items()}
        built[threads] = (frames, index.skipped(), index.errors(), rows)
    (serial, skipped, errors, rows), (threaded, skipped4, errors4, rows4) = built[1], built[4]
    assert skipped == skipped4 and list(skipped) == ["damaged"] and errors == errors4
    assert rows4 == rows and rows["damaged"]["skipped"] == 1
    for table, by_run in serial.items():
        assert sorted(by_run) == sorted(threaded[table])
        for run_id, df in by_run.items():
            assert_frame_equal(threaded[table][run_id], df)
    want = load_run(root / "damaged").steps
    assert_frame_equal(serial["steps"]["damaged"].drop("run_id"), want)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_page_fills_in_from_a_background_thread(root, tmp_path, monkeypatch):
    """With more new runs than ``FILL_IN_BACKGROUND``, the first render of the Runs page shows every
    run with its run.json fields and a progress bar at once; the rows are read in the background,
    and the page, once the fill is done, shows the numbers of ``runs_overview`` (each run opened once)."""
    pytest.importorskip("streamlit", reason="the dashboard needs streamlit (pip install 'entrodiag[dashboard]')")
    from streamlit.testing.v1 import AppTest

    from entrodiag.app import app_data

    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "root"
    shutil.copytree(root, base)
    _age(base)
    monkeypatch.setenv("ENTRODIAG_RUNS_ROOT", str(base))
    monkeypatch.setattr(app_data, "FILL_IN_BACKGROUND", 2)
    app_data._indexes.clear()
    at = AppTest.from_file(str(Path(app_data.__file__).with_name("streamlit_app.py")), default_timeout=120)
    at.run()
    assert not at.exception
    first = at.dataframe[0].value
    assert sorted(first["run"]) == sorted(RUN_IDS) and "steps" not in first.columns
    assert first.set_index("run").loc["sweep/two_rank", "model"] == "tiny-2B"
    assert len(at.get("progress")) == 1
    fill = app_data._fills[str(base)]
    fill.thread.join(60)
    assert fill.done == fill.total == len(RUN_IDS) and sorted(fill.rows) == sorted(RUN_IDS)
    at.run()
    assert not at.exception and len(at.get("progress")) == 0
    full = at.dataframe[0].value.set_index("run")
    for run_id in RUN_IDS:
        want = app_data._overview(load_run(base / run_id))
        assert full.loc[run_id, "steps"] == want["steps"]
        assert full.loc[run_id, "entropy_now"] == pytest.approx(want["entropy_end"])
    assert str(base) not in app_data._fills



@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_page_with_a_read_only_cache_fills_once(root, tmp_path, monkeypatch):
    """A cache folder that cannot be written: the background fill's rows are kept (in its index),
    so later renders show them and start no new fill, opening no run again."""
    pytest.importorskip("streamlit", reason="the dashboard needs streamlit (pip install 'entrodiag[dashboard]')")
    from entrodiag.app import app_data

    def refuse(path, data):
        raise PermissionError(13, "read-only cache", str(path))

    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("entrodiag.store.index._write_atomic", refuse)
    monkeypatch.setattr(app_data, "FILL_IN_BACKGROUND", 2)
    base, opened = _copied_and_counted(root, tmp_path, monkeypatch)
    app_data._indexes.clear()
    _, fill = app_data.runs_overview_lazy(str(base))
    assert fill is not None
    fill.thread.join(60)
    assert sorted(opened) == sorted(RUN_IDS)
    monkeypatch.setattr(app_data, "FINGERPRINT_TTL_S", 0.0)  # each render lists the root again
    for _ in range(2):
        rows, again = app_data.runs_overview_lazy(str(base))
        assert again is None and sorted(rows) == sorted(RUN_IDS) and rows == fill.rows
    assert sorted(opened) == sorted(RUN_IDS)  # no run read twice


def test_sandbox_reads_a_column_text_in_one_run_and_a_number_in_another(tmp_path):
    """The sandboxed query (the agents' ``query`` tool) gives what ``entrodiag query`` gives
    (DuckDB's union_by_name) where a column is text in one run and numeric in another: text."""
    for name, value in (("a", 7), ("b", "seven")):
        run = copy_sample_run(tmp_path / "root" / name)
        part = sorted((run / "events").glob("*.parquet"))[-1]
        t = pq.read_table(part)
        late = run / "events" / "part-r00000-999999.parquet"
        pq.write_table(t.append_column("tag", pa.array([value] * t.num_rows)), late)
    sql = "select run_id, tag, count(*) as n from events where tag is not null group by all order by run_id"
    cli = query(tmp_path / "root", sql, index_dir=tmp_path / "cli")
    boxed = query(tmp_path / "root", sql, index_dir=tmp_path / "box", sandbox=True)
    assert cli.schema.field("tag").type == pa.string() and boxed.to_pylist() == cli.to_pylist()
    assert [r["tag"] for r in boxed.to_pylist()] == ["7", "seven"]
    sql = ("select current_setting('threads') as t, current_setting('memory_limit') as m, "
           "current_setting('temp_directory') as d from runs limit 1")
    bounds = query(tmp_path / "root", sql, index_dir=tmp_path / "box", sandbox=True)
    row = bounds.to_pylist()[0]
    assert row["t"] == SANDBOX_THREADS and row["m"].endswith("iB") and "entrodiag-sql-" in row["d"]
    cut, _ = query_with_index(tmp_path / "root", "select * from steps", index_dir=tmp_path / "box",
                              sandbox=True, max_rows=5)
    assert cut.num_rows == 5


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_read_together_equal_runs_opened_one_by_one(root, tmp_path, monkeypatch):
    """The index's many-runs read (``bulk.read_many``: one scan for the runs whose parts share a
    schema) gives exactly the tables, skipped parts and errors of opening each run with
    ``load_run``; a drifted run, a cut part and a corrupt page are left to the reader, which
    names them."""
    from run_damage import corrupt_page

    base = tmp_path / "root"
    shutil.copytree(root, base)
    drifted = base / "drifted"
    shutil.copytree(base / "sample", drifted)
    part = sorted((drifted / "steps").glob("part-*.parquet"))[1]
    t = pq.read_table(part)
    pq.write_table(t.set_column(t.schema.get_field_index("entropy_mean"), "entropy_mean",
                                t["entropy_mean"].cast(pa.string())), part)
    shutil.copytree(base / "sample", base / "corrupt")
    corrupt_page(sorted((base / "corrupt" / "evals").glob("part-*.parquet"))[2])
    (base / "unreadable").mkdir()
    (base / "unreadable" / "run.json").write_text("{not json")
    tables = ["steps", "evals", "tokens"]
    together: list[str] = []
    read_many = bulk.read_many

    def counted(table, runs):
        done, left = read_many(table, runs)
        together.extend(f"{table}:{k}" for k in done)
        return done, left

    built = {}
    for mode in ("one by one", "together"):
        with monkeypatch.context() as mp:
            mp.setattr(bulk, "read_many", counted if mode == "together" else lambda table, runs: ({}, list(runs)))
            index = RunsIndex(base, index_dir=tmp_path / mode, threads=1)
            files = index.table_files(tables)
        frames = {t: {df["run_id"][0]: df for df in map(pl.read_parquet, ps)} for t, ps in files.items()}
        built[mode] = (frames, index.skipped(), index.errors())
    (want, skipped, errors), (got, skipped2, errors2) = built["one by one"], built["together"]
    assert skipped2 == skipped and errors2 == errors and list(errors) == ["unreadable"]
    assert sorted(skipped) == ["corrupt", "damaged", "drifted"]
    for table in tables:
        assert sorted(got[table]) == sorted(want[table])
        for run_id, df in want[table].items():
            assert_frame_equal(got[table][run_id], df)  # exact: values, dtypes, column and row order
    assert {"steps:sample", "steps:sweep/two_rank", "steps:sweep/compacted", "tokens:drifted",
            "steps:corrupt"} <= set(together)
    # a failed scan leaves its whole batch (corrupt with bad_values: 2 runs a batch here) to the reader
    assert not {"steps:drifted", "steps:damaged", "evals:corrupt", "evals:bad_values"} & set(together)


def test_footer_shapes_tell_apart_what_pyarrow_reads_apart(tmp_path):
    """A footer matches a known shape only when pyarrow would read the same schema from it: the
    same Parquet schema with another ``ARROW:schema`` (string vs large_string) is a shape of its
    own; a footer that is not Parquet matches none; the row count is the footer's."""
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    pq.write_table(pa.table({"step": [1, 2, 3], "name": ["x", "y", "z"]}), a)
    pq.write_table(pa.table({"step": pa.array([4], pa.int64()), "name": pa.array(["w"], pa.large_string())}), b)
    c.write_bytes(a.read_bytes()[:-20] + b"\0" * 12 + b"PAR1")
    shape = bulk._new_shape(a, bulk._footer(a))
    assert shape.schema == pq.read_schema(a) and shape.rows(bulk._footer(a)) == pq.read_metadata(a).num_rows
    assert shape.rows(bulk._footer(b)) is None
    other = bulk._new_shape(b, bulk._footer(b))
    assert other.schema == pq.read_schema(b) and other.rows(bulk._footer(b)) == 1
    assert bulk._footer(c) is None or all(s.rows(bulk._footer(c)) is None for s in (shape, other))
