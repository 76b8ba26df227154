"""Run folders whose names hold ``[``, ``]``, ``*`` or ``?`` are read literally: each reads exactly
its own parts, locally and on an object store (moto), through every reader (``load_run``,
inspect, analyze with ``--fail-on``, watch, report, compact, query, the dashboard), never as a
pattern that matches nothing (``run[1]`` read as ``run1``) or a sibling too (``exp*`` reading
``exp-other``). The expected numbers come from the sample run read under its own plain name."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from run_damage import SAMPLE_RUN, copy_sample_run

from entrodiag import load_run
from entrodiag.cli import main
from schema_check import diagnosis, inspected

ODD = ("run[1]", "exp*", "q?", "lr=1e-6")


def _other(path: Path) -> Path:
    """A different run beside ``exp*``: steps 1000+ and an entropy of 2.0 (what a pattern would add)."""
    copy_sample_run(path)
    for part in sorted((path / "steps").glob("part-*")):
        pl.read_parquet(part).with_columns(step=pl.col("step") + 1000, entropy_mean=pl.lit(2.0)).write_parquet(part)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("odd") / "runs"
    for name in ODD:
        copy_sample_run(base / name)
    _other(base / "exp-other")
    _other(base / "run1")  # what run[1] matches as a pattern
    _other(base / "qx")  # what q? matches
    return base


@pytest.fixture(scope="module")
def expected():
    return load_run(SAMPLE_RUN)


@pytest.mark.parametrize("name", ODD)
def test_load_run_reads_exactly_its_own_parts(root, expected, name):
    run = load_run(root / name)
    for table in ("steps", "evals", "tokens", "samples", "spans", "events"):
        assert_frame_equal(getattr(run, table), getattr(expected, table))
    assert run.skipped_parts == []  # (and no hive column from "lr=1e-6": the frames are equal)


def test_inspect_and_analyze_with_fail_on(root, expected, capsys):
    n_steps = expected.steps.height
    for name in ODD:
        assert main(["inspect", str(root / name), "--json"]) == 0
        out = inspected(capsys.readouterr().out)
        assert out["skipped_parts"] == [] and out["rows"]["tokens"] == expected.tokens.height
        assert main(["analyze", str(root / name), "--json"]) == 0
        out = diagnosis(capsys.readouterr().out)
        assert out["run"]["steps"] == n_steps and out["run"]["skipped_parts"] == []
    # the sample run raises info flags: --fail-on must see them through the odd name
    assert main(["analyze", str(SAMPLE_RUN), "--fail-on", "info"]) == 1
    assert main(["analyze", str(root / "run[1]"), "--fail-on", "info"]) == 1
    assert main(["watch", str(root / "exp*"), "--fail-on", "info", "--no-events"]) == 1
    capsys.readouterr()


def test_compact_a_run_with_an_odd_name(tmp_path, expected):
    from entrodiag.store.compact import compact

    run_dir = copy_sample_run(tmp_path / "a[1]*")
    copy_sample_run(tmp_path / "a1-other")
    result = compact(run_dir)
    assert result.removed > 0 and result.damaged == []
    assert_frame_equal(load_run(run_dir).steps, expected.steps)


def test_query_reads_each_run_literally_with_an_odd_index_folder(root, expected, tmp_path):
    from entrodiag.store.query import query

    got = pl.from_arrow(query(root, "select run_id, count(*) as n, min(step) as first, "
                                    "min_by(entropy_mean, step) as h0 from steps group by run_id order by run_id",
                              index_dir=tmp_path / "idx[1]*?"))
    by = {r["run_id"]: r for r in got.to_dicts()}
    h0 = expected.steps["entropy_mean"][0]
    for name in ODD:
        assert by[name]["n"] == expected.steps.height and by[name]["first"] == 0 and by[name]["h0"] == h0
    assert by["exp-other"]["first"] == 1000 and by["exp-other"]["h0"] == 2.0


def test_dashboard_runs_page_reads_odd_names(root, expected, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ENTRODIAG_RUNS_ROOT", str(root))
    monkeypatch.setenv("ENTRODIAG_CACHE", str(root.parent / "cache"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "entrodiag" / "app" / "streamlit_app.py"),
                           default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    from entrodiag.analysis import compare_runs

    want = compare_runs([expected]).row(0, named=True)
    table = at.dataframe[0].value
    rows = {r["run"]: r for r in table.to_dict("records")}
    for name in ODD:
        assert rows[name]["steps"] == want["steps"] == expected.steps.height
        assert rows[name]["entropy_start"] == pytest.approx(want["entropy_start"])
    assert rows["exp-other"]["entropy_start"] == pytest.approx(2.0)


# ---------------------------------------------------------------------------------- object store
def test_object_store_runs_with_odd_names(s3_env, root, expected, tmp_path):
    import pyarrow.fs as pafs

    from entrodiag.store.location import locate
    from entrodiag.store.query import query

    names = ("run[1]", "exp*", "q?", "exp-other")
    for name in names:  # run.json and the steps (what the checks below read): a quick upload
        dest = locate(f"s3://{s3_env}/runs/{name}")
        dest.child("run.json").write_bytes((root / name / "run.json").read_bytes())
        pafs.copy_files(str(root / name / "steps"), dest.child("steps").fs_path,
                        source_filesystem=pafs.LocalFileSystem(), destination_filesystem=dest.fs)
    for name in names[:3]:
        run = load_run(f"s3://{s3_env}/runs/{name}")
        assert_frame_equal(run.steps, expected.steps)
        assert run.skipped_parts == []
    got = pl.from_arrow(query(f"s3://{s3_env}/runs", "select run_id, count(*) as n, max(entropy_mean) as hmax "
                                                     "from steps group by run_id", index_dir=tmp_path / "idx"))
    by = {r["run_id"]: r for r in got.to_dicts()}
    assert {k: v["n"] for k, v in by.items()} == {n: expected.steps.height for n in names}
    assert by["exp*"]["hmax"] == expected.steps["entropy_mean"].max()


def test_a_url_with_a_query_string_or_credentials_is_refused():
    from entrodiag.store.location import LocationError, locate

    for url in ("s3://bucket?endpoint_override=evil.example", "s3://key:secret@bucket/runs"):
        with pytest.raises(LocationError, match="takes no (query string|credentials)"):
            locate(url)
    # after the bucket, every character is part of the name
    assert locate("file:///tmp/runs/a[1]?x#y%41").fs_path == "/tmp/runs/a[1]?x#y%41"
