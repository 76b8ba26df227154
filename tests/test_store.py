"""The run store: reader errors, corrupt parts, interrupted runs, rank merging, writer failures."""

import json
import time

import polars as pl
import pytest
from conftest import batch_kwargs

from entrodiag import Recorder, RunError, load_run
from entrodiag.store import RunWriter, merge_ranks
from entrodiag.store.reader import find_run_dir


def small_run(path, steps=4, **kw):
    with Recorder(path, token_sample="all", **kw) as rec:
        for step in range(steps):
            b = batch_kwargs(step)
            rec.record_batch(step, **b)
            rec.flush()  # one part file per step and table
    return path


def test_not_a_run_gives_one_line_errors(tmp_path):
    with pytest.raises(RunError, match="no such file") as e:
        load_run(tmp_path / "missing")
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not an entrodiag run: it has no run.json") as e:
        load_run(tmp_path / "empty")
    assert "\n" not in str(e.value)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        load_run(tmp_path / "f.txt")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable"):
        load_run(bad)
    (bad / "run.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(RunError, match="not an entrodiag run.json"):
        load_run(bad)


def test_folder_holding_exactly_one_run(tmp_path):
    small_run(tmp_path / "root" / "only")
    assert find_run_dir(tmp_path / "root") == tmp_path / "root" / "only"
    assert load_run(tmp_path / "root").steps.height == 4
    small_run(tmp_path / "root" / "second")
    with pytest.raises(RunError, match="holds 2 runs"):
        load_run(tmp_path / "root")


def test_corrupt_and_truncated_parts_are_skipped_with_a_warning_naming_them(tmp_path):
    run_dir = small_run(tmp_path / "r")
    parts = sorted((run_dir / "steps").glob("part-*.parquet"))
    assert len(parts) == 4
    data = parts[1].read_bytes()
    parts[1].write_bytes(data[: len(data) // 2])  # truncated
    parts[2].write_bytes(b"garbage" * 100)  # not parquet
    (run_dir / "steps" / ".part-r00000-999999.parquet.tmp").write_bytes(data[:10])  # a writer's temp
    with pytest.warns(UserWarning) as rec:
        run = load_run(run_dir)
        steps = run.steps
    messages = " ".join(str(w.message) for w in rec)
    assert parts[1].name in messages and parts[2].name in messages and ".tmp" not in messages
    assert steps.height == 2 and steps["step"].to_list() == [0, 3]
    assert sorted(p.name for p in run.skipped_parts) == sorted([parts[1].name, parts[2].name])


def test_corrupt_pages_behind_a_good_footer_are_skipped(tmp_path):
    run_dir = small_run(tmp_path / "r")
    part = sorted((run_dir / "tokens").glob("part-*.parquet"))[0]
    data = bytearray(part.read_bytes())
    for i in range(8, len(data) // 2):  # scribble over the data pages, keep the footer
        data[i] = 0xFF
    part.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=part.name):
        tokens = load_run(run_dir).tokens
    assert set(tokens["step"].unique().to_list()) == {1, 2, 3}  # step 0 lost with its part


def test_interrupted_when_heartbeat_is_stale_or_writer_pid_dead(tmp_path):
    run_dir = small_run(tmp_path / "r")
    meta = json.loads((run_dir / "run.json").read_text())
    assert load_run(run_dir).status == "finished"
    meta.update(status="running", heartbeat=time.time())
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert load_run(run_dir).status == "running"  # this process (the writer's pid) is alive
    meta.update(heartbeat=time.time() - 3600)
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert load_run(run_dir).status == "interrupted"
    meta.update(heartbeat=time.time(), pid=2**22 + 12345)  # fresh heartbeat, but no such process
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert load_run(run_dir).status == "interrupted"


def test_merge_ranks_weights_by_tokens_responses_and_pools_std():
    by_rank = pl.DataFrame({
        "step": [0, 0], "rank": [0, 1], "n_tokens": [10, 30], "n_responses": [2, 6], "n_groups": [1, 3],
        "entropy_mean": [1.0, 2.0], "entropy_std": [0.0, 1.0], "reward_mean": [1.0, 0.0],
        "reward_std": [0.0, 0.0], "logprob_mean": [-1.0, -2.0], "advantage_mean": [0.5, -0.5],
        "cov_mean": [0.1, 0.2], "zero_adv_group_frac": [1.0, 0.0], "wall_time": [5.0, 7.0],
        "entropy_hist": [[1, 9], [30, 0]], "loss": [1.0, 3.0],
    })
    row = merge_ranks(by_rank).row(0, named=True)
    assert row["n_tokens"] == 40 and row["n_responses"] == 8
    assert row["entropy_mean"] == pytest.approx((10 * 1 + 30 * 2) / 40)
    # pooled population std: values {1 x10} and {mean 2, std 1 x30}
    second = (10 * 1.0 + 30 * (1.0 + 4.0)) / 40
    assert row["entropy_std"] == pytest.approx((second - 1.75**2) ** 0.5)
    assert row["reward_mean"] == pytest.approx(2 / 8)
    assert row["reward_std"] == pytest.approx((2 / 8 * 6 / 8) ** 0.5)
    assert row["zero_adv_group_frac"] == pytest.approx(1 / 4)
    # covariance of the union: E[lp*a] - E[lp]E[a]
    e_la = (10 * (0.1 + -1.0 * 0.5) + 30 * (0.2 + -2.0 * -0.5)) / 40
    e_l, e_a = (10 * -1 + 30 * -2) / 40, (10 * 0.5 + 30 * -0.5) / 40
    assert row["cov_mean"] == pytest.approx(e_la - e_l * e_a)
    assert row["entropy_hist"] == [31, 9] and row["wall_time"] == 7.0 and row["loss"] == 2.0
    assert "rank" not in row


def test_writer_failure_is_counted_and_retried(tmp_path, monkeypatch, caplog):
    import entrodiag.store.writer as writer_mod

    calls = {"n": 0}
    real = writer_mod.pq.write_table

    def flaky(table, where, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real(table, where, **kw)

    monkeypatch.setattr(writer_mod.pq, "write_table", flaky)
    w = RunWriter(tmp_path / "r", meta={"source": "custom"})
    w.append("evals", {"step": [0], "rank": [0], "name": ["acc"], "value": [0.5], "n": [1]})
    w.flush()
    assert w.errors == 1 and "No space left" in caplog.text
    w.close()
    assert load_run(tmp_path / "r").evals["value"].to_list() == [0.5]  # retried, nothing lost
    assert not list((tmp_path / "r" / "evals").glob(".*tmp"))


def test_rows_written_on_time_flush_while_running(tmp_path):
    rec = Recorder(tmp_path / "r", flush_interval_s=0.2, heartbeat_s=0.2)
    b = batch_kwargs(0)
    rec.record_batch(0, **b)
    deadline = time.time() + 5
    while time.time() < deadline and not list((tmp_path / "r" / "steps").glob("part-*")):
        time.sleep(0.05)
    run = load_run(tmp_path / "r")
    assert run.status == "running" and run.steps.height == 1
    rec.close()
    assert load_run(tmp_path / "r").status == "finished"


def test_tables_have_every_core_column(tmp_path):
    small_run(tmp_path / "r")
    run = load_run(tmp_path / "r")
    assert set(run.samples.columns) == {"step", "rank", "sample_id", "group_id", "prompt_id", "prompt",
                                        "response", "reward", "advantage", "length", "entropy_mean"}
    assert set(run.spans.columns) == {"step", "rank", "sample_id", "start", "end", "mean_window_entropy",
                                      "max_entropy", "text"}
    assert run.tokens.schema["entropy"] == pl.Float32 and run.tokens.schema["is_hwe"] == pl.Boolean
    assert run.samples["prompt"].null_count() == run.samples.height  # not given: null, not missing


def test_polars_schema_matches_polars_own_conversion_of_every_core_table():
    import pyarrow as pa

    from entrodiag.store.reader import polars_schema
    from entrodiag.store.schema import CORE_TYPES

    for table, fields in CORE_TYPES.items():
        schema = pa.schema({**fields, "extra_metric": pa.float64(), "ids": pa.large_list(pa.int32())})
        assert polars_schema(schema) == pl.from_arrow(schema.empty_table()).schema, table


def test_reading_a_run_does_not_import_pandas(tmp_path):
    import subprocess
    import sys

    rec = Recorder(tmp_path / "run")
    rec.record_batch(0, **batch_kwargs(0))
    rec.close()
    code = ("import sys; from entrodiag import load_run; r = load_run(sys.argv[1]); r.steps; r.tokens; r.evals; "
            "r.scan('spans').collect(); assert 'pandas' not in sys.modules, 'pandas was imported'")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_events_from_the_writer_and_from_a_watcher_process_and_until(tmp_path):
    from entrodiag.store import event_row, write_events
    from entrodiag.store.schema import OUTSIDE_RANK

    with Recorder(tmp_path / "r") as rec:
        for step in range(4):
            rec.record_batch(step, **batch_kwargs(step))
        rec.log_event(2, "switch", "kl_cov", message="none -> kl_cov", detail={"from": "none"})
        with pytest.raises(ValueError, match="unknown event kind"):
            rec.log_event(2, "oops", "x")
    part = write_events(tmp_path / "r", [event_row(3, "flag", "early_collapse", severity="critical",
                                                    first_step=0, last_step=3, detail={"ratio": 0.05})])
    assert part.name.startswith(f"part-r{OUTSIDE_RANK:05d}-")
    run = load_run(tmp_path / "r")
    ev = run.events
    assert ev["step"].to_list() == [2, 3] and ev["kind"].to_list() == ["switch", "flag"]
    assert json.loads(ev["detail"][1]) == {"ratio": 0.05} and ev["severity"].to_list() == [None, "critical"]
    early = run.until(2)
    assert early.events.height == 1 and early.steps["step"].to_list() == [0, 1, 2]
    assert early.tokens["step"].max() <= 2 and run.tokens["step"].max() == 3


def test_two_writers_starting_on_one_folder_at_once_one_wins(tmp_path):
    """Creating run.json is atomic with the check that there is none: of writers started at the
    same moment on one folder, exactly one opens the run and the others get RunExistsError (before,
    several passed the check and overwrote each other's run.json)."""
    import threading

    from entrodiag.store.writer import RunExistsError

    n = 6
    barrier, won, lost, other = threading.Barrier(n), [], [], []

    def start(i: int) -> None:
        barrier.wait()
        try:
            won.append(RunWriter(tmp_path / "r", meta={"source": f"writer-{i}"}, heartbeat_s=60))
        except RunExistsError as e:
            lost.append(str(e))
        except Exception as e:  # noqa: BLE001 - anything else is a failure of the test
            other.append(repr(e))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for w in won:
        w.close()
    assert not other and len(won) == 1 and len(lost) == n - 1, (other, len(won), lost)
    assert all("already holds a run" in m for m in lost)
    assert load_run(tmp_path / "r").meta["source"] == won[0]._meta["source"]  # the winner's run.json
    assert not [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".run.json")]  # no temp left


def test_a_settled_table_folder_is_listed_once_per_run_and_again_when_it_changes(tmp_path, monkeypatch):
    """An analysis asks for the same table many times: a table folder whose modification time is
    unchanged (and older than ``SETTLED_S``) is listed once; a new part file is seen at once."""
    import os
    import shutil

    import entrodiag.store.run as run_module
    from run_damage import copy_sample_run

    path = copy_sample_run(tmp_path / "run")
    old = time.time() - 60
    os.utime(path / "steps", (old, old))
    calls = []
    real = run_module.list_parts
    monkeypatch.setattr(run_module, "list_parts", lambda folder: calls.append(folder) or real(folder))
    run = load_run(path)
    first = run.parts("steps")
    assert run.parts("steps") == first and run.scan("steps").collect().height == run.steps_by_rank.height
    assert len(calls) == 1
    new = path / "steps" / "part-r00000-999999.parquet"
    shutil.copy(first[0], new)  # the folder's time is now: listed again, and again until it settles
    assert new in run.parts("steps") and new in run.parts("steps") and len(calls) == 3
    os.utime(path / "steps", (old + 1, old + 1))
    assert run.parts("steps") == load_run(path).parts("steps") and len(calls) == 5
    run.parts("steps")
    assert len(calls) == 5


def test_table_schema_per_distinct_schema_equals_part_by_part():
    """Parts are grouped by schema before the table's schema is decided: the same schema, the same
    drifting parts (in the order a part-by-part pass names them) and the same votes by rows."""
    import pyarrow as pa

    from entrodiag.store.schema import table_schema

    a = pa.schema([("step", pa.int64()), ("entropy_mean", pa.float64()), ("x", pa.string())])
    b = pa.schema([("step", pa.string()), ("entropy_mean", pa.float64()), ("x", pa.float32())])
    c = pa.schema([("step", pa.int32()), ("entropy_mean", pa.float32()), ("x", pa.float64())])
    schema, bad = table_schema("steps", [a, b, c, a, b], [1, 9, 9, 1, 9])
    # x: float parts hold 27 rows, string parts 2 (step's drift in b does not take b's vote away)
    assert schema == pa.schema([("step", pa.int64()), ("entropy_mean", pa.float64()), ("x", pa.float64())])
    assert list(bad) == [1, 4, 0, 3] and "'step' is string" in bad[1] and "'x' is string" in bad[0]


def test_footer_fetches_are_bounded_in_the_whole_process(monkeypatch, tmp_path):
    """Runs read in threads (the index reads 16 object-store runs at once) each prefetch their
    footers: the fetches in flight stay within ``FOOTER_THREADS`` for the process, not per run."""
    import threading

    from entrodiag.store import parts
    from entrodiag.store.location import locate

    lock, live, peak = threading.Lock(), [0], [0]

    def fetch(path, key):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.02)
        with lock:
            live[0] -= 1

    monkeypatch.setattr(parts, "fetch_part", fetch)
    monkeypatch.setattr(parts, "listed_key", lambda p: (str(p), 1, 1))
    runs = [[locate((tmp_path / f"r{r}" / f"part-{i}.parquet").as_uri()) for i in range(parts.FOOTER_THREADS)]
            for r in range(6)]
    readers = [threading.Thread(target=parts.prefetch_footers, args=(run,)) for run in runs]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert 1 < peak[0] <= parts.FOOTER_THREADS
