"""The Ray story of the verl/OpenRLHF attachments, with two local worker processes and a driver.

Under Ray each actor worker is a process of its own that lives until Ray kills it (no atexit).
Here two processes (ranks 0 and 1 of a gloo group, as verl's and OpenRLHF's workers are) record 3
steps each through the attachments' per-process recorder into one run directory, then stay
alive; the driver runs the README's ``ray-driver`` block; both must flush, close and exit, and the
run must read back finished with both ranks merged. A second case: workers that die without
closing, whose run the driver closes itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import readme_snippet
from entrodiag import load_run
from entrodiag.hooks.integrations.common import finish_run

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import json, os, sys, time, torch, torch.distributed as dist
    from entrodiag.hooks.integrations.common import StepRecorder
    dist.init_process_group("gloo")  # RANK, WORLD_SIZE, MASTER_ADDR/PORT from the environment
    rank = dist.get_rank()
    rec = StepRecorder(None, "verl", poll_s=0.1)  # what attach() holds
    g = torch.Generator().manual_seed(rank)
    B, T = (4, 5) if rank == 0 else (6, 3)
    sums = []
    for _ in range(3):
        entropy = torch.rand(B, T, generator=g) * (1 + rank)
        mask = torch.ones(B, T, dtype=torch.bool)
        rec.record(token_ids=torch.randint(0, 50, (B, T), generator=g), response_mask=mask, entropy=entropy,
                   logprobs=-entropy, advantages=torch.randn(B, generator=g), rewards=torch.ones(B))
        sums.append([entropy.sum().item(), B * T])
    print(json.dumps(sums), flush=True)
    if sys.argv[1] == "die":
        rec.rec.flush()  # what the writer's periodic flush (flush_interval_s) did before the kill
        os._exit(0)  # as Ray kills a worker: no atexit, no close
    deadline = time.time() + 120
    while not rec.closed and time.time() < deadline:  # a Ray worker idles until killed
        time.sleep(0.05)
    print("closed" if rec.closed else "never closed", flush=True)
    """
)


def _workers(tmp_path: Path, mode: str) -> tuple[list[subprocess.Popen], Path]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_dir = tmp_path / "run"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "ENTRODIAG_RUN_DIR": str(run_dir), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), mode], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs, run_dir


def _check_run(run_dir: Path, sums: list[list[list[float]]]) -> None:
    run = load_run(run_dir)
    assert run.status == "finished"
    assert sorted(run.steps_by_rank["rank"].unique().to_list()) == [0, 1]
    assert run.steps["step"].to_list() == [1, 2, 3]
    for i, row in enumerate(run.steps.iter_rows(named=True)):
        total = sum(s[i][0] for s in sums)
        n = sum(s[i][1] for s in sums)
        assert row["n_tokens"] == n == 38 and row["n_responses"] == 10
        assert row["entropy_mean"] == pytest.approx(total / n, abs=1e-5)  # token-weighted over both ranks


def test_two_worker_processes_and_a_driver_close(tmp_path, monkeypatch):
    procs, run_dir = _workers(tmp_path, "stay")
    try:
        sums = [json.loads(p.stdout.readline()) for p in procs]  # both recorded 3 steps, still running
        assert all(p.poll() is None for p in procs)
        t0 = time.time()
        monkeypatch.setenv("ENTRODIAG_RUN_DIR", str(run_dir))
        exec(compile(readme_snippet("ray-driver"), "README:ray-driver", "exec"), {"__name__": "driver"})
        closing = time.time() - t0
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert all(o[0].strip().endswith("closed") for o in outs)
    assert closing < 45  # acknowledged (about a second on an idle machine), not the 60 s timeout
    meta = json.loads((run_dir / "run.json").read_text())
    assert "closed_by" not in meta and meta["world_size"] == 2  # rank 0 closed it itself
    _check_run(run_dir, sums)


def test_driver_closes_a_run_whose_workers_died(tmp_path):
    procs, run_dir = _workers(tmp_path, "die")
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    sums = [json.loads(o[0].splitlines()[0]) for o in outs]
    assert load_run(run_dir).status == "interrupted"  # rank 0's writer is gone
    t0 = time.time()
    assert finish_run(run_dir, timeout=30) == "finished"
    assert time.time() - t0 < 25  # a dead rank 0 is not waited for
    assert json.loads((run_dir / "run.json").read_text())["closed_by"] == "driver"
    _check_run(run_dir, sums)
