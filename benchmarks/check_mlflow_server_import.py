"""``entrodiag import`` from a real MLflow tracking server (``http://``), and how long it takes.

Too slow for the test suite (the server alone takes 10–20 s to start here), so run by hand: it
starts ``mlflow server`` on 127.0.0.1 (a free port, an SQLite backend in a temporary folder, one
worker), logs a run of known values through ``MlflowClient`` over HTTP, imports it with
``entrodiag import http://127.0.0.1:PORT --experiment grpo``, checks every step's entropy, score
and evaluation against what was logged, then checks that a server that does not answer gives a
one-line error, and stops the server. Exit status 0 when every check holds.

    python benchmarks/check_mlflow_server_import.py [--steps 200]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"mlflow server did not answer within {timeout:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from entrodiag import load_run
    from entrodiag.importers import ImportFailure, import_run

    steps = list(range(args.steps))
    entropy = [1.2 * math.exp(-s / 80) + 0.001 * (s % 7) for s in steps]
    score = [0.6 - 0.5 * math.exp(-s / 60) for s in steps]
    accuracy = {s: 0.3 + s / (4 * args.steps) for s in steps if s % 10 == 0}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
             "--default-artifact-root", f"{tmp}/artifacts", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait(url, server)
            started = time.perf_counter() - t0
            print(f"server up in {started:.1f} s", flush=True)
            t1 = time.perf_counter()
            client = MlflowClient(tracking_uri=url)
            exp = client.create_experiment("grpo")
            run = client.create_run(exp, run_name="server-run")
            metrics = [Metric("actor/entropy", e, 1_000 * s, s) for s, e in zip(steps, entropy)]
            metrics += [Metric("critic/score/mean", v, 1_000 * s, s) for s, v in zip(steps, score)]
            metrics += [Metric("val-core/gsm8k/acc/mean_at_1", a, 1_000 * s, s) for s, a in accuracy.items()]
            for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
                client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000],
                                 params=[Param("temperature", "0.8")] if i == 0 else [])
            client.set_terminated(run.info.run_id)
            logged = time.perf_counter() - t1
            print(f"logged in {logged:.1f} s", flush=True)
            t2 = time.perf_counter()
            rep = import_run(url, Path(tmp) / "imported", experiment="grpo")
            imported = time.perf_counter() - t2
            got = load_run(rep.run_dir)
            st = got.steps.sort("step")
            ev = got.evals.sort("step")
            if st["step"].to_list() != steps:
                failures.append("steps differ")
            if st["entropy_mean"].to_list() != entropy:
                failures.append("entropy differs")
            if st["score_mean"].to_list() != score:
                failures.append("score differs")
            if dict(zip(ev["step"].to_list(), ev["value"].to_list())) != accuracy:
                failures.append("evaluations differ")
            if got.meta["entropy_semantics"]["temperature"] != 0.8:
                failures.append("temperature not read from the params")
        finally:  # the server and its workers: one process group
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        t3 = time.perf_counter()
        try:  # the server is gone: one line, soon
            import_run(url, Path(tmp) / "gone", experiment="grpo")
            failures.append("a server that is gone was read")
        except ImportFailure as e:
            if "\n" in str(e):
                failures.append("the error is not one line")
            gone = time.perf_counter() - t3
    print(f"mlflow server up in {started:.1f} s; logged {len(metrics)} values in {logged:.1f} s; "
          f"imported {rep.steps} steps in {imported:.2f} s; a server that is gone refused in {gone:.1f} s")
    for f in failures:
        print(f"FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
