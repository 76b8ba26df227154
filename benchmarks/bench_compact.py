"""``load_run`` + ``analyze_run`` on a run of 5,000 part files, before and after ``entrodiag compact``.

The run: 1,000 steps, each flushed on its own as a Recorder with a short flush interval does, so
every step leaves one part file in each of steps/, tokens/, samples/, spans/ and evals/ (5,000
parts, sequence numbers as the writer gives them): 8 responses x 50 tokens = 400 token rows per
step (400,000 in all), 8 sample rows, 2 span rows, 1 evaluation per step, entropy falling from
~1 to ~0.3 nats. The parts are written directly with the writer's ``to_arrow`` (the same schema),
without fsync, so generation takes seconds.

A copy of the run is compacted (timed). Then each measurement runs in a fresh process, which
imports entrodiag first and then times ``analyze_run(load_run(RUN))`` (every table read, the
reader's per-process caches empty), alternating the two runs; the table gives the median of
``--repeats`` per run and the ratio before / after.

    python benchmarks/bench_compact.py                  # ~2 minutes on 2 quiet cores
    python benchmarks/bench_compact.py --repeats 5 --json benchmarks/results/compact.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS, B, T = 1000, 8, 50

MEASURE = """
import json, sys, time
from entrodiag import load_run
from entrodiag.analysis import analyze_run
t0 = time.perf_counter()
s = analyze_run(load_run(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - t0, "steps": s["run"]["steps"],
                  "rows": s["run"]["rows"], "ceiling": s["law"].get("ceiling")}))
"""


def generate(path: Path, steps: int = STEPS, seed: int = 0) -> int:
    """Write the run (see the module doc); returns the number of part files."""
    import numpy as np
    import pyarrow.parquet as pq

    from entrodiag.store.schema import part_name
    from entrodiag.store.writer import to_arrow, write_json_atomic

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    for t in ("steps", "tokens", "samples", "spans", "evals", "events"):
        (path / t).mkdir()
    write_json_atomic(path / "run.json", {"schema": "entrodiag/1", "run_id": path.name, "status": "finished",
                                          "source": "custom", "heartbeat": time.time(), "world_size": 1})
    seq = 0
    n = B * T
    for step in range(steps):
        h = 0.3 + 0.7 * np.exp(-step / 250) + rng.normal(0, 0.01)
        ent = rng.gamma(2.0, h / 2.0, n)
        lp = -ent * rng.uniform(0.5, 1.5, n)
        adv = np.repeat(rng.normal(0, 1, B), T)
        acc = 0.9 - 0.8 * np.exp(h) / np.exp(1.0) + rng.normal(0, 0.01)
        rows = {
            "steps": {"step": [step], "rank": [0], "n_tokens": [n], "n_responses": [B], "n_groups": [1],
                      "entropy_mean": [float(ent.mean())], "entropy_std": [float(ent.std())],
                      "logprob_mean": [float(lp.mean())], "advantage_mean": [float(adv.mean())],
                      "cov_mean": [float(((lp - lp.mean()) * (adv - adv.mean())).mean())],
                      "reward_mean": [float(acc)], "high_entropy_frac": [float((ent > 0.672).mean())],
                      "resp_len_mean": [float(T)], "wall_time": [float(step)]},
            "tokens": {"step": np.full(n, step), "rank": np.zeros(n, int), "sample_id": np.repeat(np.arange(B), T),
                       "group_id": np.zeros(n, int), "pos": np.tile(np.arange(T), B),
                       "token_id": rng.zipf(1.5, n) % 32000, "entropy": ent, "logprob": lp, "advantage": adv,
                       "cov": (lp - lp.mean()) * adv, "window_entropy": ent,
                       "is_hwe": ent > np.quantile(ent, 0.95), "is_forking": ent >= np.quantile(ent, 0.8)},
            "samples": {"step": np.full(B, step), "rank": np.zeros(B, int), "sample_id": np.arange(B),
                        "group_id": np.zeros(B, int), "reward": rng.integers(0, 2, B).astype(float),
                        "length": np.full(B, T), "entropy_mean": ent.reshape(B, T).mean(1)},
            "spans": {"step": [step, step], "rank": [0, 0], "sample_id": [0, 1], "start": [3, 10], "end": [7, 12],
                      "mean_window_entropy": [1.0, 0.9], "max_entropy": [1.5, 1.2]},
            "evals": {"step": [step], "rank": [0], "name": ["val/accuracy"], "value": [float(acc)], "n": [500]},
        }
        for table, cols in rows.items():
            pq.write_table(to_arrow(table, cols), path / table / part_name(0, seq), compression="zstd")
            seq += 1
    return seq


def measure(run: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(run)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()

    from entrodiag.store.compact import compact

    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        t0 = time.perf_counter()
        n_parts = generate(before, args.steps)
        print(f"generated {n_parts} part files in {time.perf_counter() - t0:.1f} s")
        after = Path(tmp) / "after"
        shutil.copytree(before, after)
        t0 = time.perf_counter()
        res = compact(after)
        compact_s = time.perf_counter() - t0
        print(f"compacted {res.parts_before} -> {res.parts_after} part files in {compact_s:.1f} s")
        times: dict[str, list[float]] = {"before": [], "after": []}
        results = {}
        for i in range(args.repeats):
            for name, run in (("before", before), ("after", after)):
                r = measure(run)
                times[name].append(r["seconds"])
                results[name] = r
                print(f"  {name:<6} repeat {i + 1}: {r['seconds']:.2f} s")
        assert results["before"]["rows"] == results["after"]["rows"], results
        assert results["before"]["ceiling"] == results["after"]["ceiling"], results
    med = {k: statistics.median(v) for k, v in times.items()}
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "parts_before": res.parts_before, "parts_after": res.parts_after, "compact_s": compact_s,
        "median_before_s": med["before"], "median_after_s": med["after"],
        "ratio_before_over_after": med["before"] / med["after"], "times": times, "repeats": args.repeats,
        "rows": results["after"]["rows"],
    }
    print(f"\nload_run + analyze_run, median of {args.repeats}: {res.parts_before} parts {med['before']:.2f} s, "
          f"{res.parts_after} parts {med['after']:.2f} s; before/after = {summary['ratio_before_over_after']:.2f}x "
          f"(compaction took {compact_s:.1f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
