"""Spark (local mode) reads the run layout and agrees with ``load_run`` and ``entrodiag query``.

Two ways, both documented in README ("Queries across runs"): Spark reads the part files of the
runs directly (``spark.read.parquet`` on ``ROOT/*/steps/``; rows per (step, rank), as stored), or
the summary index's tables that ``entrodiag query`` builds (ranks merged, ``run_id`` column).
Skipped with the reason when pyspark or Java 17+ is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import polars as pl
import pytest
from conftest import batch_kwargs
from run_damage import copy_sample_run

from entrodiag import Recorder, load_run
from entrodiag.store.query import query

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


def _java_major() -> int | None:
    java = shutil.which("java") or (os.environ.get("JAVA_HOME") and os.path.join(os.environ["JAVA_HOME"], "bin", "java"))
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install pyspark)")
    major = _java_major()
    if major is None or major < 17:
        pytest.skip(f"Spark needs Java 17 or newer; found {'none' if major is None else major} "
                    "(apt-get install openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    try:
        session = (SparkSession.builder.master("local[1]").appName("entrodiag-test")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
                   .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                   .getOrCreate())
    except Exception as e:  # noqa: BLE001 - a JVM that does not start is a skip, with its reason
        pytest.skip(f"Spark {pyspark.__version__} did not start in local mode: {e}")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("spark-runs")
    copy_sample_run(base / "sample")
    recs = [Recorder(base / "two_rank", rank=r, world_size=2, flush_interval_s=60, heartbeat_s=60)
            for r in (0, 1)]
    for step in range(3):
        for r, rec in enumerate(recs):
            rec.record_batch(step, **batch_kwargs(step, seed=r + 1))
    for rec in reversed(recs):
        rec.close()
    return base


def _rows(df) -> pl.DataFrame:
    """A Spark DataFrame's rows as polars (without pandas)."""
    return pl.DataFrame([r.asDict() for r in df.collect()], infer_schema_length=None)


def test_spark_reads_the_part_files_as_stored(spark, root):
    from pyspark.sql import functions as F

    df = (spark.read.option("mergeSchema", "true").parquet(f"{root}/*/steps/")
          .withColumn("run_id", F.regexp_extract(F.input_file_name(), r"/([^/]+)/steps/[^/]+$", 1)))
    got = _rows(df.groupBy("run_id").agg(F.count("*").alias("rows"), F.countDistinct("step").alias("steps"),
                                         F.sum("n_tokens").alias("tokens")))
    got = {r["run_id"]: r for r in got.iter_rows(named=True)}
    for run_id in ("sample", "two_rank"):
        run = load_run(root / run_id)
        assert got[run_id]["rows"] == run.steps_by_rank.height  # one row per (step, rank): as stored
        assert got[run_id]["steps"] == run.steps.height
        assert got[run_id]["tokens"] == run.steps["n_tokens"].sum()
    # a single-rank run's rows are load_run's steps, value for value
    sample = load_run(root / "sample").steps
    rows = _rows(df.filter(F.col("run_id") == "sample").select("step", "entropy_mean", "reward_mean").orderBy("step"))
    assert rows["step"].to_list() == sample["step"].to_list()
    assert rows["entropy_mean"].to_list() == pytest.approx(sample["entropy_mean"].to_list(), rel=1e-12)


def test_spark_reads_the_query_index_and_agrees_with_query(spark, root, tmp_path):
    index = tmp_path / "index"
    want = pl.from_arrow(query(root, "select run_id, step, entropy_mean, cov_mean from steps order by run_id, step",
                               index_dir=index))
    df = spark.read.option("mergeSchema", "true").parquet(str(index / "tables" / "steps"))
    got = _rows(df.select("run_id", "step", "entropy_mean", "cov_mean").orderBy("run_id", "step"))
    assert got["run_id"].to_list() == want["run_id"].to_list()
    assert got["step"].to_list() == want["step"].to_list()
    for col in ("entropy_mean", "cov_mean"):
        assert got[col].to_list() == pytest.approx(want[col].to_list(), rel=1e-12, nan_ok=True)
    two = load_run(root / "two_rank").steps  # ranks merged, as load_run merges them
    mine = got.filter(pl.col("run_id") == "two_rank")
    assert mine.height == two.height == 3
    assert mine["cov_mean"].to_list() == pytest.approx(two["cov_mean"].to_list(), rel=1e-12)


def test_spark_reads_a_run_whose_name_is_a_pattern_when_escaped(spark, tmp_path):
    """README's escape for Spark: ``runs/lr[1e-6]`` read with its pattern characters escaped reads
    that run only, not ``runs/lr1`` (which the unescaped pattern matches)."""
    copy_sample_run(tmp_path / "lr[1e-6]")
    other = copy_sample_run(tmp_path / "lr1")
    shutil.rmtree(other / "steps")
    (other / "steps").mkdir()
    pl.DataFrame({"step": [7], "entropy_mean": [2.0]}).write_parquet(other / "steps" / "part-r00000-000000.parquet")
    path = re.sub(r"([\[\]{}*?\\])", r"\\\1", str(tmp_path / "lr[1e-6]")) + "/steps/"
    got = _rows(spark.read.option("mergeSchema", "true").parquet(path).select("step", "entropy_mean").orderBy("step"))
    want = load_run(tmp_path / "lr[1e-6]").steps
    assert got["step"].to_list() == want["step"].to_list()
    assert got["entropy_mean"].to_list() == pytest.approx(want["entropy_mean"].to_list(), rel=1e-12)
