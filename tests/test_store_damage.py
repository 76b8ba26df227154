"""Damaged runs: a part with a bad footer and a part with a corrupt page behind a good footer are
skipped by every reader path (analyze, report, watch, compare, inspect), named once, and the rest
is read; impossible values are read as missing and counted."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from run_damage import copy_sample_run, corrupt_page, truncate_part

import entrodiag.store.reader as reader_mod
import entrodiag.store.scan as scan_mod
from entrodiag import load_run
from entrodiag.analysis import analyze_run, compare_runs
from entrodiag.cli import main
from schema_check import diagnosis, inspected, query_rows


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A copy of the sample run with one truncated steps part and one tokens part whose page is
    corrupt behind a good footer; polars itself fails on the copy (checked)."""
    run = copy_sample_run(tmp_path_factory.mktemp("damaged") / "run")
    steps_part = truncate_part(sorted((run / "steps").glob("part-*"))[3])
    tokens_part = sorted((run / "tokens").glob("part-*"))[20]
    assert corrupt_page(tokens_part, "entropy") == "entropy"
    every = sorted((run / "tokens").glob("part-*"))
    with pytest.raises(Exception):  # what every lazy reader hit before the guarded scan
        pl.scan_parquet(every).select("token_id", "entropy").collect()
    return run, steps_part, tokens_part


def _rows(run: Path, table: str, but: Path | None = None) -> int:
    """Rows of the table's readable parts, read one by one with pyarrow (an independent count)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in sorted((run / table).glob("part-*")) if p != but)


def test_every_read_skips_the_damaged_parts_and_names_them_once(damaged):
    run_dir, steps_part, tokens_part = damaged
    with pytest.warns(UserWarning) as caught:
        run = load_run(run_dir)
        board = run.scan("tokens").group_by("token_id").agg(pl.col("entropy").mean()).collect()
        again = run.scan("tokens").select(pl.col("entropy").sum()).collect()
    named = [str(w.message) for w in caught if reader_mod.SKIP_WARNING in str(w.message)]
    assert sum(tokens_part.name in m for m in named) == 1 and "does not decode" in " ".join(named)
    assert board.height > 0 and again.height == 1
    assert run.skipped_parts == [tokens_part]
    assert run.steps.height == _rows(run_dir, "steps", but=steps_part)
    assert set(run.skipped_parts) == {steps_part, tokens_part}
    assert run.scan("tokens").select(pl.len()).collect().item() == _rows(run_dir, "tokens", but=tokens_part)
    # a later Run of this process knows the damaged part without decoding it again
    assert tokens_part not in load_run(run_dir).parts("tokens")


def test_analyze_text_and_json_exit_0_and_name_the_files(damaged, capsys):
    run_dir, steps_part, tokens_part = damaged
    assert main(["analyze", str(run_dir), "--json"]) == 0
    out = diagnosis(capsys.readouterr().out)
    paths = {p["path"] for p in out["run"]["skipped_parts"]}
    assert paths == {f"steps/{steps_part.name}", f"tokens/{tokens_part.name}"}
    assert out["run"]["rows"]["tokens"] == _rows(run_dir, "tokens", but=tokens_part)
    assert out["forking_tokens"]["status"] == "ok"
    assert main(["analyze", str(run_dir)]) == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert steps_part.name in text and tokens_part.name in text


def test_report_exits_0_and_its_summary_page_names_the_files(damaged, tmp_path, monkeypatch):
    import entrodiag.report.build as build

    run_dir, steps_part, tokens_part = damaged
    drawn = []  # the pages the command draws (one rendering)
    real = build.render
    monkeypatch.setattr(build, "render", lambda d: drawn.extend(real(d)) or drawn)
    pdf = tmp_path / "r.pdf"
    assert main(["report", str(run_dir), "-o", str(pdf)]) == 0
    assert pdf.stat().st_size > 10_000
    first = " ".join(t.get_text() for t in drawn[0].fig.texts)
    assert "Damaged files skipped (2)" in first
    assert steps_part.name in first and tokens_part.name in first


def test_inspect_checks_every_page(damaged, capsys):
    run_dir, steps_part, tokens_part = damaged
    assert main(["inspect", str(run_dir), "--json"]) == 0
    out = inspected(capsys.readouterr().out)
    assert {p["path"] for p in out["skipped_parts"]} == {f"steps/{steps_part.name}", f"tokens/{tokens_part.name}"}
    assert out["rows"]["tokens"] == _rows(run_dir, "tokens", but=tokens_part)
    assert main(["inspect", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"damaged    tokens/{tokens_part.name}" in text and f"damaged    steps/{steps_part.name}" in text


def test_watch_and_compare_go_on(damaged, capsys):
    run_dir, _, tokens_part = damaged
    assert main(["watch", str(run_dir), "--no-events"]) == 0
    table = compare_runs([run_dir, copy_sample_run(run_dir.parent / "clean")])
    assert table.height == 2


def test_a_healthy_run_decodes_no_part_twice(tmp_path, monkeypatch):
    """The guard costs nothing on a healthy run: no part is decoded on its own."""
    calls = []
    real = scan_mod.decode_part
    monkeypatch.setattr(scan_mod, "decode_part", lambda *a: calls.append(a) or real(*a))
    analyze_run(copy_sample_run(tmp_path / "run"))
    assert calls == []


def test_a_query_error_that_is_not_damage_is_raised(tmp_path):
    run = load_run(copy_sample_run(tmp_path / "run"))
    with pytest.raises(pl.exceptions.InvalidOperationError):
        run.scan("tokens").select(pl.col("token").cast(pl.Int64, strict=True)).collect()
    assert run.skipped_parts == []


# ------------------------------------------------------------------------------ bad values
def test_impossible_values_are_read_as_missing_and_counted(tmp_path, capsys):
    run_dir = copy_sample_run(tmp_path / "run")
    part = sorted((run_dir / "steps").glob("part-*"))[0]
    df = pl.read_parquet(part)
    h = df["entropy_mean"].to_list()
    h[0], h[1] = -0.5, math.inf
    frac = df["high_entropy_frac"].to_list()
    frac[2] = 1.5
    df.with_columns(entropy_mean=pl.Series(h), high_entropy_frac=pl.Series(frac),
                    reward_mean=pl.Series([math.nan] + df["reward_mean"].to_list()[1:])
                    ).write_parquet(part, compression="zstd")
    tpart = sorted((run_dir / "tokens").glob("part-*"))[0]
    t = pl.read_parquet(tpart)
    e = t["entropy"].to_list()
    e[0], e[1], e[2] = -1.0, math.nan, -math.inf
    t.with_columns(entropy=pl.Series(e, dtype=pl.Float32)).write_parquet(tpart, compression="zstd")
    expected = {"steps": {"entropy_mean": {"non-finite": 1, "negative": 1}, "reward_mean": {"non-finite": 1},
                          "high_entropy_frac": {"outside [0, 1]": 1}},
                "tokens": {"entropy": {"non-finite": 2, "negative": 1}}}

    with pytest.warns(UserWarning, match="impossible values read as missing"):
        run = load_run(run_dir)
        steps = run.steps
    first = df["step"].to_list()
    got = steps.filter(pl.col("step").is_in(first[:3])).sort("step")
    assert got["entropy_mean"][:2].to_list() == [None, None]  # never used as if valid
    assert got["high_entropy_frac"][2] is None and got["reward_mean"][0] is None
    assert run.scan("tokens").select(pl.col("entropy").is_null().sum()).collect().item() == 3
    assert run.bad_values() == expected

    assert main(["inspect", str(run_dir), "--json"]) == 0
    out = inspected(capsys.readouterr().out)
    assert out["bad_values"] == expected and out["bad_values_total"] == 7
    assert main(["inspect", str(run_dir)]) == 0
    assert "bad values 7 impossible values" in capsys.readouterr().out
    summary = analyze_run(run_dir)
    assert summary["run"]["bad_values"] == expected
    dyn = {r["name"]: r for r in summary["dynamics"]["rows"]}
    assert math.isfinite(dyn["entropy_mean"]["start"]) and dyn["entropy_mean"]["start"] > 0


def test_cli_runs_as_a_subprocess_on_a_damaged_run(damaged):
    """The literal done-when: exit 0, output produced, files named (no traceback on stderr)."""
    run_dir, steps_part, tokens_part = damaged
    r = subprocess.run([sys.executable, "-m", "entrodiag.cli", "analyze", str(run_dir)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and tokens_part.name in r.stdout.replace("\n", "")


# --------------------------------------------------------------- schema drift and filesystem faults
def _rewrite(part: Path, **cols) -> int:
    """Rewrite ``part`` with ``cols`` (name -> expression); returns its row count."""
    df = pl.read_parquet(part).with_columns(**cols)
    df.write_parquet(part, compression="zstd")
    return df.height


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> dict:
    """A copy of the sample run with parts whose columns changed type (text where numbers belong,
    int64 where float64 is expected, float64 where float32 is), a dangling symbolic link and one
    that points to itself; returns what was done and the rows each table should keep."""
    run = copy_sample_run(tmp_path_factory.mktemp("drift") / "run")
    steps = sorted((run / "steps").glob("part-*"))
    tokens = sorted((run / "tokens").glob("part-*"))
    lost_steps = _rewrite(steps[2], entropy_mean=pl.col("entropy_mean").cast(pl.String))
    lost_steps += _rewrite(steps[5], step=pl.col("step").cast(pl.String))
    _rewrite(steps[8], entropy_mean=(pl.col("entropy_mean") * 10).round().cast(pl.Int64))  # widens: read
    lost_steps += _rewrite(steps[11], step=pl.col("step").cast(pl.UInt64))  # found by the scan's guard
    lost_tokens = _rewrite(tokens[3], entropy=pl.col("entropy").cast(pl.String))
    _rewrite(tokens[4], entropy=pl.col("entropy").cast(pl.Float64))  # widens: read
    total = {t: _rows(run, t) for t in ("steps", "tokens", "evals")}
    dangling = run / "evals" / "part-r00000-999998.parquet"
    dangling.symlink_to(run / "evals" / "gone.parquet")
    loop = run / "evals" / "part-r00000-999999.parquet"
    loop.symlink_to(loop)
    import pyarrow.parquet as pq

    widened = pq.read_table(steps[8]).to_pydict()  # the int64 values, read independently
    skipped = {f"steps/{steps[2].name}": "schema drift", f"steps/{steps[5].name}": "schema drift",
               f"steps/{steps[11].name}": "cannot be read as the table's types",
               f"tokens/{tokens[3].name}": "schema drift", f"evals/{dangling.name}": "does not exist",
               f"evals/{loop.name}": "points to itself"}
    return {"run": run, "skipped": skipped, "widened": dict(zip(widened["step"], widened["entropy_mean"])),
            "rows": {"steps": total["steps"] - lost_steps, "tokens": total["tokens"] - lost_tokens,
                     "evals": total["evals"]}}


def _assert_named(skipped: list[dict], want: dict) -> None:
    got = {p["path"]: p["reason"] for p in skipped}
    assert set(got) == set(want), got
    for path, why in want.items():
        assert why in got[path], (path, got[path])


def test_schema_drift_and_broken_links_are_skipped_and_named(drifted):
    with pytest.warns(UserWarning, match="schema drift"):
        run = load_run(drifted["run"])
        steps, tokens, evals = run.steps, run.tokens, run.evals
    _assert_named(run.skipped(), drifted["skipped"])
    assert steps.height == drifted["rows"]["steps"] and steps["entropy_mean"].dtype == pl.Float64
    assert tokens.height == drifted["rows"]["tokens"]
    assert run.scan("evals", raw=True).select(pl.len()).collect().item() == drifted["rows"]["evals"]
    assert evals.height > 0
    got = dict(zip(steps["step"].to_list(), steps["entropy_mean"].to_list()))
    for step, value in drifted["widened"].items():  # int64 where float64 is expected: read as floats
        assert got[step] == float(value)


def test_every_command_goes_on_past_drift(drifted, tmp_path, capsys):
    run_dir = drifted["run"]
    assert main(["inspect", str(run_dir), "--json"]) == 0
    out = inspected(capsys.readouterr().out)
    _assert_named(out["skipped_parts"], drifted["skipped"])
    assert out["rows"]["tokens"] == drifted["rows"]["tokens"]
    assert main(["analyze", str(run_dir), "--json"]) == 0
    out = diagnosis(capsys.readouterr().out)
    assert out["run"]["steps"] == drifted["rows"]["steps"]
    _assert_named(out["run"]["skipped_parts"], drifted["skipped"])
    assert main(["watch", str(run_dir), "--no-events"]) == 0
    capsys.readouterr()
    assert main(["query", str(run_dir.parent), "select count(*) as n from steps", "--json",
                 "--index", str(tmp_path / "idx")]) == 0
    captured = capsys.readouterr()
    assert query_rows(captured.out) == [{"n": drifted["rows"]["steps"]}]
    assert "damaged part file(s) skipped" in captured.err


def test_report_goes_on_past_drift(drifted, tmp_path):
    pdf = tmp_path / "r.pdf"
    assert main(["report", str(drifted["run"]), "-o", str(pdf)]) == 0
    assert pdf.stat().st_size > 10_000


@pytest.fixture
def unlistable(tmp_path, monkeypatch):
    """A run whose samples folder cannot be listed: as root permission bits do not stop a read, so
    listing that folder raises PermissionError as it would for another user after chmod 000."""
    run = copy_sample_run(tmp_path / "runs" / "run")
    folder = run / "samples"
    real = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return run


def test_a_table_folder_that_cannot_be_listed_is_left_out_and_named(unlistable, tmp_path, capsys):
    with pytest.warns(UserWarning, match="cannot be listed"):
        run = load_run(unlistable)
        assert run.samples.height == 0
    assert run.steps.height == _rows(unlistable, "steps")
    assert run.skipped() == [{"path": "samples", "reason": run.skipped()[0]["reason"]}]
    assert "Permission denied" in run.skipped()[0]["reason"]
    assert main(["inspect", str(unlistable), "--json"]) == 0
    out = inspected(capsys.readouterr().out)
    assert [p["path"] for p in out["skipped_parts"]] == ["samples"]
    assert out["rows"]["tokens"] == _rows(unlistable, "tokens")
    assert main(["analyze", str(unlistable)]) == 0
    assert "samples" in capsys.readouterr().out
    assert main(["watch", str(unlistable), "--no-events"]) == 0
    capsys.readouterr()
    assert main(["query", str(unlistable.parent), "select count(*) as n from samples", "--json",
                 "--index", str(tmp_path / "idx")]) == 0
    assert query_rows(capsys.readouterr().out) == [{"n": 0}]


# ----------------------------------------------------------------------------- run.json fields
def test_a_run_json_field_of_the_wrong_type_is_named_once_on_load(tmp_path, capsys):
    run_dir = copy_sample_run(tmp_path / "runs" / "bad")
    meta = json.loads((run_dir / "run.json").read_text())
    meta["heartbeat_interval_s"] = "ten"
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(reader_mod.RunError, match=r"bad/run\.json: field 'heartbeat_interval_s' is \"ten\""):
        load_run(run_dir)
    assert main(["inspect", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "heartbeat_interval_s" in err and "run.json" in err and "Traceback" not in err
    good = copy_sample_run(tmp_path / "runs" / "good")
    assert main(["query", str(good.parent), "select run_id, status, error from runs order by run_id", "--json",
                 "--index", str(tmp_path / "idx")]) == 0
    rows = query_rows(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["unreadable", "finished"]
    assert "heartbeat_interval_s" in rows[0]["error"] and rows[1]["error"] is None
    for bad in ({"world_size": 0}, {"config": []}, {"heartbeat": None}, {"entropy_hist_edges": ["a"]}):
        (run_dir / "run.json").write_text(json.dumps({**meta, "heartbeat_interval_s": 10.0, **bad}))
        with pytest.raises(reader_mod.RunError, match=f"field '{next(iter(bad))}'"):
            load_run(run_dir)


def test_dashboard_pages_survive_a_bad_run_json_and_drift(drifted, tmp_path, monkeypatch):
    """A run whose run.json has a field of the wrong type is listed as unreadable with the field
    named; a drifted run and a healthy one beside it render on every page."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "root"
    good = copy_sample_run(root / "good")
    bad = copy_sample_run(root / "bad")
    meta = json.loads((bad / "run.json").read_text())
    (bad / "run.json").write_text(json.dumps({**meta, "heartbeat_interval_s": "ten"}))
    shutil.copytree(drifted["run"], root / "drift", symlinks=True)
    monkeypatch.setenv("ENTRODIAG_RUNS_ROOT", str(root))
    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "entrodiag" / "app" / "streamlit_app.py"),
                           default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    rows = {r["run"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["bad"]["status"] == "unreadable" and "heartbeat_interval_s" in rows["bad"]["error"]
    assert rows["good"]["steps"] == _rows(good, "steps") and rows["drift"]["steps"] == drifted["rows"]["steps"]
    for selected in ([str(root / "drift")], [str(root / "good"), str(root / "drift")]):
        at.sidebar.multiselect[0].set_value(selected).run()
        for name in ("page_runs.py", "page_dynamics.py", "page_law.py", "page_collapse.py", "page_tokens.py",
                     "page_compare.py"):
            at.switch_page(name)
            at.run()
            assert not at.exception, (name, [e.message for e in at.exception])
