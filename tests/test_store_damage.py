"""Damaged runs: a part with a bad footer and a part with a corrupt page behind a good footer are
skipped by every reader path (analyze, report, watch, compare, inspect), named once, and the rest
is read; impossible values are read as missing and counted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from run_damage import copy_sample_run, corrupt_page, truncate_part

import entrodiag.store.reader as reader_mod
from entrodiag import load_run
from entrodiag.analysis import analyze_run, compare_runs
from entrodiag.cli import main


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
    out = json.loads(capsys.readouterr().out)
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
    out = json.loads(capsys.readouterr().out)
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
    real = reader_mod._decode
    monkeypatch.setattr(reader_mod, "_decode", lambda *a: calls.append(a) or real(*a))
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
    out = json.loads(capsys.readouterr().out)
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
