"""`entrodiag analyze` on a large run: 1,000 steps and 10 million token rows.

The run is generated through the public ``Recorder`` (``token_sample="all"``: every token of
every step becomes a token row), with per-token entropy and log-probs given directly (no model):
80 responses of 60-190 tokens = 10,000 token rows per step, a 32,000-id vocabulary with Zipf-like
token frequencies and token text, 10 groups of 8, evaluations every 10 steps on the entropy law,
entropy falling from ~1 to ~0.25 nats. The run is kept (``--run DIR``) and reused when it exists.

Timed: the whole command ``entrodiag analyze RUN`` (and ``--json``) in a fresh process, as a user
runs it (interpreter start, imports, reading, every analysis, rendering), median of ``--repeats``.
Baseline, measured the same way: a fresh ``python`` that imports polars and reads the four token
columns the analysis needs (``pl.scan_parquet(...).select(...).collect()``), i.e. the unavoidable
I/O; the ratio analyze / baseline is what to compare across machines. Also reported: the
in-process time of each part of ``analyze_run``.

    python benchmarks/bench_analyze.py                       # generate (once) and time
    python benchmarks/bench_analyze.py --run /tmp/big --repeats 5 --json benchmarks/results/analyze.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEPS, B, T, G, VOCAB = 1000, 80, 200, 8, 32000
ROWS_PER_STEP = 10_000  # response lengths vary (60-190 tokens) but sum to this in every step


class Tokenizer:
    """Token text for ids: 'w<id>' (decode of a single id, as a real tokenizer's)."""

    def decode(self, ids):
        return "".join(f"w{i} " for i in ids)


def generate(path: Path, steps: int = STEPS, seed: int = 0) -> float:
    import numpy as np
    import torch

    from entrodiag import Recorder

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    groups = torch.arange(B) // G
    t0 = time.perf_counter()
    with Recorder(path, token_sample="all", tokenizer=Tokenizer(), seed=seed, config={"total_steps": steps},
                  source="custom", model="synthetic", task="bench", intervention="none") as rec:
        for step in range(steps):
            u = step / (steps - 1)
            H = 0.25 + 0.75 * np.exp(-5 * u)
            # half the tokens nearly deterministic, the rest exponential around the step's level
            h = np.where(rng.random((B, T)) < 0.5, rng.uniform(0, 0.01, (B, T)), rng.exponential(2 * H, (B, T)))
            base = rng.integers(90, 161, B)
            lengths = np.floor(base * ROWS_PER_STEP / base.sum()).astype(int)
            lengths[: ROWS_PER_STEP - lengths.sum()] += 1
            mask = np.arange(T)[None, :] < lengths[:, None]
            ids = np.minimum(rng.zipf(1.3, (B, T)) - 1, VOCAB - 1)
            acc = 0.2 + 0.5 * (1 - np.exp(-5 * u))
            rewards = (rng.random(B) < acc).astype(np.float32)
            r = rewards.reshape(-1, G)
            adv = ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)).ravel()
            lp = np.minimum(-h * 0.7 + 0.05 * adv[:, None] + rng.normal(0, 0.05, (B, T)), 0.0)
            rec.record_batch(
                step, token_ids=torch.from_numpy(ids), response_mask=torch.from_numpy(mask),
                advantages=torch.from_numpy(adv.astype(np.float32)), entropy=torch.from_numpy(h.astype(np.float32)),
                logprobs=torch.from_numpy(lp.astype(np.float32)), rewards=torch.from_numpy(rewards),
                group_ids=groups, loss=float(rng.normal()),
            )
            if step % 10 == 0 or step == steps - 1:
                rec.log_eval(step, "val/accuracy_sampled", 0.95 - 0.3 * np.exp(H) + rng.normal(0, 0.01), n=500)
                rec.log_eval(step, "val/accuracy_greedy", 1.1 - 0.3 * np.exp(H) + rng.normal(0, 0.01), n=500)
            if step % 100 == 0:
                print(f"  generated step {step}", file=sys.stderr)
    return time.perf_counter() - t0


BASELINE = ("import polars as pl, sys; pl.scan_parquet(sys.argv[1] + '/tokens/part-*.parquet')"
            ".select('token_id', 'token', 'entropy', 'is_forking').collect()")


def time_cmd(cmd: list[str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def time_cli(run: Path, extra: list[str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "entrodiag.cli", "analyze", str(run), *extra],
                             capture_output=True, text=True)
        out.append(time.perf_counter() - t)
        if res.returncode not in (0, 1):
            raise SystemExit(f"entrodiag analyze failed ({res.returncode}):\n{res.stderr}")
    return out


def parts(run_dir: Path) -> dict[str, float]:
    """In-process seconds of each part of the analysis (fresh Run, so nothing is cached)."""
    import polars as pl

    from entrodiag import load_run
    from entrodiag.analysis import (
        detect_collapse,
        early_prediction,
        entropy_distribution,
        fit_entropy_law,
        forking_leaderboard,
        hwe_span_stats,
        mechanism_check,
    )

    out = {}
    t = time.perf_counter()
    run = load_run(run_dir)
    _ = run.steps, run.evals
    out["load steps+evals"] = time.perf_counter() - t
    for name, fn in (
        ("row counts", lambda: {t: run.scan(t).select(pl.len()).collect().item() for t in ("tokens", "spans")}),
        ("law fit (1000 bootstrap)", lambda: fit_entropy_law(run)),
        ("early prediction", lambda: early_prediction(run)),
        ("detect_collapse", lambda: detect_collapse(run)),
        ("mechanism_check", lambda: mechanism_check(run)),
        ("forking leaderboard (10M rows)", lambda: forking_leaderboard(run)),
        ("hwe spans", lambda: hwe_span_stats(run)),
        ("entropy distribution", lambda: entropy_distribution(run)),
    ):
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="/tmp/entrodiag-bench-analyze", help="run directory (generated if absent)")
    p.add_argument("--repeats", type=int, default=5, help="timed CLI runs per variant (median reported)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args()
    run = Path(args.run)
    gen_s = None
    if not (run / "run.json").exists():
        print(f"generating {run} ({STEPS} steps x {ROWS_PER_STEP} token rows) ...", file=sys.stderr)
        gen_s = generate(run)
    import polars as pl

    from entrodiag import load_run

    r = load_run(run)
    rows = {t: r.scan(t).select(pl.len()).collect().item() for t in ("steps", "tokens", "samples", "spans", "evals")}
    size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
    print(f"run: {rows}, {size / 2**20:.0f} MiB on disk" + (f", generated in {gen_s:.0f} s" if gen_s else ""))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"polars {pl.__version__}",
        "rows": rows, "disk_mib": size / 2**20, "generate_s": gen_s,
    }
    result["loadavg_before"] = os.getloadavg()
    time_cli(run, [], 1)  # warm the page cache and the bytecode cache
    for label, extra in (("analyze", []), ("analyze --json", ["--json"])):
        ts = time_cli(run, extra, args.repeats)
        result[label] = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "all_s": ts}
        print(f"entrodiag {label:<15} median {statistics.median(ts):.2f} s  (min {min(ts):.2f}, max {max(ts):.2f}, "
              f"n={len(ts)})")
    base = time_cmd([sys.executable, "-c", BASELINE, str(run)], args.repeats)
    result["baseline_read_s"] = statistics.median(base)
    result["ratio"] = result["analyze"]["median_s"] / result["baseline_read_s"]
    print(f"baseline (python + polars reads the 4 token columns) median {result['baseline_read_s']:.2f} s; "
          f"analyze / baseline = {result['ratio']:.2f}")
    imports = time_cmd([sys.executable, "-c", "import entrodiag.analysis.summary, rich.console, rich.table"],
                       args.repeats)
    result["python_and_imports_s"] = statistics.median(imports)
    print(f"  {'python start + imports (fresh)':<32} {result['python_and_imports_s']:.3f} s (median)")
    result["parts_s"] = parts(run)
    for name, s in result["parts_s"].items():
        print(f"  {name:<32} {s:.3f} s")
    result["loadavg_after"] = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {result['loadavg_before']}, after {result['loadavg_after']}")
    target = result["analyze"]["median_s"] <= 10.0
    print(f"target (median <= 10 s on 2 cores): {'holds' if target else 'MISSED'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
