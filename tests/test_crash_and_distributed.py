"""Crash safety (SIGKILL mid-run) and two-rank recording under torch.distributed (gloo)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from entrodiag import load_run

ROOT = Path(__file__).resolve().parents[1]

WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from entrodiag import Recorder
    rec = Recorder(sys.argv[1], token_sample="all", flush_interval_s=0.05, flush_rows=2000,
                   heartbeat_s=0.2)
    B, T, V = 64, 32, 500
    step = 0
    while True:  # records until killed
        logits = torch.randn(B, T, V)
        ids = torch.randint(0, V, (B, T))
        rec.record_batch(step, token_ids=ids, response_mask=torch.ones(B, T, dtype=torch.bool),
                         logits=logits, advantages=torch.randn(B))
        if step == 5:
            print("ready", flush=True)
        step += 1
    """
)


def test_sigkill_mid_run_keeps_completed_parts_and_reports_interrupted(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(run_dir)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60  # parts are being written continuously now
        while len(list((run_dir / "steps").glob("part-*.parquet"))) < 5 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # what was completed on disk, read directly with pyarrow
    completed = sorted((run_dir / "steps").glob("part-*.parquet"))
    on_disk = sorted({s for p in completed for s in pq.read_table(p, columns=["step"])["step"].to_pylist()})
    assert len(on_disk) >= 5
    run = load_run(run_dir)
    assert run.status == "interrupted"
    assert run.steps["step"].to_list() == on_disk == list(range(len(on_disk)))  # no gaps, nothing lost
    assert not run.skipped_parts
    for table in ("steps", "tokens", "samples"):
        names = [p.name for p in (run_dir / table).iterdir()]
        assert all(n.startswith("part-") and n.endswith(".parquet") or n.startswith(".") for n in names)
    # every token row read belongs to a complete part: each (step, sample) has all T tokens
    counts = run.tokens.group_by("step", "sample_id").len()["len"].unique().to_list()
    assert counts == [32]


DIST_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch, torch.distributed as dist
    from entrodiag import Recorder
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    g = torch.Generator().manual_seed(100 + rank)
    rec = Recorder(sys.argv[1], token_sample="all")
    assert (rec.rank, rec.world_size) == (rank, 2)
    B = 4 if rank == 0 else 12              # different sizes and data on each rank
    T, V = 6, 40
    for step in range(3):
        logits = torch.randn(B, T, V, generator=g) * (1 + 2 * rank)
        mask = torch.arange(T)[None] < torch.randint(1, T + 1, (B, 1), generator=g)
        rec.record_batch(step, token_ids=torch.randint(0, V, (B, T), generator=g), response_mask=mask,
                         logits=logits, advantages=torch.randn(B, generator=g),
                         rewards=torch.randint(0, 2, (B,), generator=g).float(),
                         group_ids=torch.arange(B) // 2 + 100 * rank)
    rec.close()
    dist.barrier()
    dist.destroy_process_group()
    """
)


def test_two_ranks_write_their_own_parts_and_merge_weighted(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "dist_script.py"
    script.write_text(DIST_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(_free_port()), str(script), str(run_dir)]
    out = subprocess.run(torchrun, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    run = load_run(run_dir)
    assert run.status == "finished" and run.meta["world_size"] == 2
    by_rank = run.steps_by_rank
    assert sorted(by_rank["rank"].unique().to_list()) == [0, 1]
    assert by_rank.height == 6
    assert {p.name.split("-")[1] for p in (run_dir / "steps").glob("part-*")} == {"r00000", "r00001"}
    tokens = run.tokens
    for step in range(3):
        row = run.steps.filter(pl.col("step") == step).row(0, named=True)
        tok = tokens.filter(pl.col("step") == step)
        h = tok["entropy"].to_numpy().astype(np.float64)
        lp = tok["logprob"].to_numpy().astype(np.float64)
        a = tok["advantage"].to_numpy().astype(np.float64)
        assert row["n_tokens"] == len(h) == by_rank.filter(pl.col("step") == step)["n_tokens"].sum()
        assert row["n_responses"] == 16
        assert row["entropy_mean"] == pytest.approx(h.mean(), abs=1e-5)  # token-weighted
        assert row["entropy_std"] == pytest.approx(h.std(), abs=1e-5)  # pooled
        assert row["logprob_mean"] == pytest.approx(lp.mean(), abs=1e-5)
        assert row["cov_mean"] == pytest.approx(((lp - lp.mean()) * (a - a.mean())).mean(), abs=1e-5)
        samples = run.samples.filter(pl.col("step") == step)
        assert row["reward_mean"] == pytest.approx(samples["reward"].mean(), abs=1e-9)
        assert row["resp_len_mean"] == pytest.approx(samples["length"].mean(), abs=1e-9)
        hist = np.sum(by_rank.filter(pl.col("step") == step)["entropy_hist"].to_list(), axis=0)
        assert row["entropy_hist"] == hist.tolist() and sum(row["entropy_hist"]) == len(h)
        # the unweighted mean of the rank means would differ: the test can tell them apart
        rank_means = by_rank.filter(pl.col("step") == step)["entropy_mean"].mean()
        assert abs(rank_means - h.mean()) > 1e-3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_recorder_on_cuda_matches_cpu(tmp_path):
    from conftest import batch_kwargs

    from entrodiag import Recorder

    b = batch_kwargs(0)
    for name, dev in (("cpu", "cpu"), ("cuda", "cuda")):
        with Recorder(tmp_path / name, token_sample="all") as rec:
            rec.record_batch(0, **{k: v.to(dev) for k, v in b.items()})
    cpu, gpu = load_run(tmp_path / "cpu").steps, load_run(tmp_path / "cuda").steps
    for col in ("n_tokens", "entropy_mean", "cov_mean", "entropy_p80", "hwe_threshold"):
        assert gpu[col][0] == pytest.approx(cpu[col][0], abs=1e-5), col
