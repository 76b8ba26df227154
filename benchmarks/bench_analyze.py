"""`entrodiag analyze` on a large run: 1,000 steps and 10 million token rows, or any size (``--rows``).

The run is written directly as Parquet part files in the run-directory layout (through the store's
``to_arrow``, so every column has its schema type, zstd as the writer; a Recorder takes minutes at
10^8 rows): every token of every response is a token row, responses of 60-190 tokens (125 on
average), a 32,000-id vocabulary with Zipf-like frequencies and token text, groups of 8, entropy
falling from ~1 to ~0.25 nats; per step a step row (histogram, quantiles, covariance, ...), the
sample rows and the HWE spans; evaluations (``val/accuracy_sampled``, ``val/accuracy_greedy``)
every 10 steps on the entropy law. One part file per table every 10 steps. The run is kept
(``--run DIR``) and reused when it exists.

Timed: the whole command ``entrodiag analyze RUN`` (and ``--json``) in a fresh process, as a user
runs it (interpreter start, imports, reading, every analysis, rendering), with its peak RSS;
median of ``--repeats``, the variants alternated. Baselines, measured the same way: a fresh
``python`` that imports polars and reads the token columns analyze reads (``NEEDED``: the
leaderboard's and those whose impossible values it counts), batch by batch and (up to 2·10^7 rows)
whole into memory; and the old baseline, the leaderboard's four columns whole. Also reported: the
in-process time of each part of ``analyze_run``.

    python benchmarks/bench_analyze.py                                  # 10^7 rows: generate (once), time
    nice -n 10 python benchmarks/bench_analyze.py --rows 100000000 --repeats 3   # 10^8 rows (~3 GB)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS, ROWS, G, VOCAB = 1000, 10_000_000, 8, 32000
MEAN_LEN = 125  # tokens per response on average (60-190)
STEPS_PER_PART = 10  # token part files as a Recorder flushing every 10 steps leaves them


def _write(run: Path, table: str, seq: int, columns: dict) -> None:
    """One part file of ``table`` with the store's column types (``to_arrow``), zstd as the writer."""
    import pyarrow.parquet as pq

    from entrodiag.store.rows import to_arrow
    from entrodiag.store.schema import part_name

    (run / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(table, columns), run / table / part_name(0, seq), compression="zstd")


def _step(rng, step: int, steps: int, rows: int, vocab, edges):
    """Token, sample, span and step rows of one step (every token of every response kept)."""
    import numpy as np

    b = max(G, rows // MEAN_LEN // G * G)
    base = rng.integers(60, 191, b)
    lengths = np.floor(base * rows / base.sum()).astype(np.int64)
    lengths[: rows - lengths.sum()] += 1
    u = step / max(steps - 1, 1)
    level = 0.25 + 0.75 * np.exp(-5 * u)
    h = np.where(rng.random(rows) < 0.5, rng.uniform(0, 0.01, rows), rng.exponential(2 * level, rows))
    h = h.astype(np.float32)
    ids = np.minimum(rng.zipf(1.3, rows) - 1, VOCAB - 1)
    resp = np.repeat(np.arange(b), lengths)
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    pos = np.arange(rows) - first[resp]
    acc = 0.2 + 0.5 * (1 - np.exp(-5 * u))
    reward = (rng.random(b) < acc).astype(np.float64)
    r = reward.reshape(-1, G)
    adv_r = ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)).ravel()
    adv = adv_r[resp].astype(np.float32)
    lp = np.minimum(-h * 0.7 + 0.05 * adv + rng.normal(0, 0.05, rows), 0.0).astype(np.float32)
    cov = ((lp - lp.mean()) * (adv - adv.mean())).astype(np.float32)
    s_star = (np.exp(lp) * (h + lp)).astype(np.float32)
    win = np.convolve(h, np.ones(4) / 4, mode="full")[3:].astype(np.float32)  # forward window of 4
    thr = float(np.quantile(win, 0.95))
    hwe = win > thr
    fork = h >= np.quantile(h, 0.8)
    sid = step * b + resp
    text = vocab[ids]
    tokens = {"step": np.full(rows, step), "rank": np.zeros(rows, np.int32), "sample_id": sid,
              "group_id": sid // G, "pos": pos.astype(np.int32), "token_id": ids, "token": text, "entropy": h,
              "logprob": lp, "advantage": adv, "cov": cov, "s_star": s_star, "window_entropy": win,
              "is_hwe": hwe, "is_forking": fork}
    ent_resp = np.bincount(resp, h, b) / lengths
    samples = {"step": np.full(b, step), "rank": np.zeros(b, np.int32), "sample_id": step * b + np.arange(b),
               "group_id": (step * b + np.arange(b)) // G, "prompt_id": rng.integers(0, 5000, b),
               "prompt": [f"prompt {i}" for i in range(b)], "response": [f"response of {n} tokens" for n in lengths],
               "reward": reward, "advantage": adv_r, "length": lengths, "entropy_mean": ent_resp}
    last = np.r_[pos[1:] == 0, True]  # the last token of its response
    starts = np.flatnonzero(hwe & (np.r_[True, ~hwe[:-1]] | (pos == 0)))  # HWE spans: maximal runs
    ends = np.flatnonzero(hwe & (np.r_[~hwe[1:], True] | last)) + 1
    cum = np.r_[0.0, np.cumsum(win, dtype=np.float64)]
    peak = np.maximum.reduceat(np.r_[h, 0], np.c_[starts, ends].ravel())[::2] if len(starts) else h[:0]
    spans = {"step": np.full(len(starts), step), "rank": np.zeros(len(starts), np.int32),
             "sample_id": sid[starts], "start": pos[starts].astype(np.int32),
             "end": (pos[starts] + ends - starts).astype(np.int32),
             "mean_window_entropy": (cum[ends] - cum[starts]) / (ends - starts),
             "max_entropy": peak.astype(np.float64), "text": text[starts]}
    hist = np.histogram(np.minimum(h, edges[-2]), bins=edges[:-1].tolist() + [np.inf])[0]
    q = np.quantile(h, [0.5, 0.8, 0.9, 0.99])
    zero = float((r.std(1) == 0).mean())
    steps_row = {
        "step": [step], "rank": [0], "n_tokens": [rows], "n_responses": [b], "n_groups": [b // G],
        "entropy_mean": [float(h.mean())], "entropy_seq_mean": [float(ent_resp.mean())],
        "entropy_std": [float(h.std())], "entropy_p50": [q[0]], "entropy_p80": [q[1]], "entropy_p90": [q[2]],
        "entropy_p99": [q[3]], "entropy_hist": [hist.tolist()], "high_entropy_frac": [float((h > 0.672).mean())],
        "logprob_mean": [float(lp.mean())], "advantage_mean": [float(adv.mean())], "cov_mean": [float(cov.mean())],
        "cov_pos_frac": [float((cov > 0).mean())], "reward_mean": [float(reward.mean())],
        "reward_std": [float(reward.std())], "zero_adv_group_frac": [zero], "resp_len_mean": [float(lengths.mean())],
        "hwe_token_frac": [float(hwe.mean())], "hwe_threshold": [thr],
        "entropy_pressure": [float((-adv * s_star).mean())], "loss": [float(rng.normal())],
        "wall_time": [1.7e9 + step],
    }
    return {"tokens": tokens, "samples": samples, "spans": spans, "steps": steps_row}


def generate(path: Path, steps: int = STEPS, rows: int = ROWS, seed: int = 0) -> float:
    """Write the benchmark run (``rows`` token rows over ``steps`` steps); returns the seconds it took."""
    import numpy as np

    from bench_dashboard import start_run
    from entrodiag.metrics import DEFAULT_HIST_EDGES

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    edges = np.array(DEFAULT_HIST_EDGES)
    vocab = np.array([f"w{i} " for i in range(VOCAB)], dtype=object)  # a tokenizer's decode of one id
    start_run(path, steps)
    per_step = [rows // steps + (1 if s < rows % steps else 0) for s in range(steps)]
    buffer: dict[str, list[dict]] = {}
    entropy = []
    for step in range(steps):
        for table, cols in _step(rng, step, steps, per_step[step], vocab, edges).items():
            buffer.setdefault(table, []).append(cols)
        entropy.append(buffer["steps"][-1]["entropy_mean"][0])
        if (step + 1) % STEPS_PER_PART == 0 or step == steps - 1:
            for table, batches in buffer.items():
                cols = {k: (np.concatenate([np.asarray(c[k]) for c in batches]) if table != "steps"
                            else [v for c in batches for v in c[k]]) for k in batches[0]}
                _write(path, table, step // STEPS_PER_PART, cols)
            buffer.clear()
            if (step + 1) % (10 * STEPS_PER_PART) == 0:
                print(f"  generated step {step + 1} of {steps}", file=sys.stderr)
    ev = [*range(0, steps, 10)] + ([steps - 1] if (steps - 1) % 10 else [])
    h = np.asarray(entropy)[ev]
    n = len(ev)
    _write(path, "evals", 0, {
        "step": ev * 2, "rank": [0] * 2 * n, "name": ["val/accuracy_sampled"] * n + ["val/accuracy_greedy"] * n,
        "value": np.r_[0.95 - 0.3 * np.exp(h) + rng.normal(0, 0.01, n), 1.1 - 0.3 * np.exp(h) + rng.normal(0, 0.01, n)],
        "n": [500] * 2 * n})
    return time.perf_counter() - t0


#: The token columns ``entrodiag analyze`` reads whole: the leaderboard's, and those whose impossible
#: values it counts (``entrodiag.store.values``); token text it reads for the ids it shows only. The
#: leaderboard's four with the text are the old baseline.
NEEDED = ("step", "token_id", "entropy", "is_forking", "logprob", "advantage", "cov", "s_star", "window_entropy")
LEADERBOARD = ("token_id", "token", "entropy", "is_forking")
#: A bare read in a fresh python: polars reads the columns, batch by batch (nothing kept, so it
#: runs at 10^8 rows too), or whole into memory (``collect``; the old baseline, 10^7 rows).
READ = ("import polars as pl, sys, glob; lf = pl.scan_parquet(sorted(glob.glob(sys.argv[1] + '/tokens/part-*.parquet')))"
        ".select(sys.argv[2].split(','))\n"
        "if sys.argv[3] == 'batches':\n    for _ in lf.collect_batches(): pass\n"
        "else:\n    lf.collect()")


TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS (getrusage of a forked child counts the parent's)


def timed(cmd: list[str]) -> tuple[float, float | None, float | None, int, str]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system; both from GNU time, None
    without it), exit code and stderr of ``cmd``."""
    has_time = os.path.exists(TIME)
    t = time.perf_counter()
    res = subprocess.run([TIME, "-f", "peak-rss-kb %M cpu %U %S", *cmd] if has_time else cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         cwd=tempfile.gettempdir())  # `python -m` puts the cwd first on sys.path
    s = time.perf_counter() - t
    err, rss, cpu = res.stderr, None, None
    if has_time and "peak-rss-kb" in err:
        err, _, last = err.rstrip().rpartition("\n")
        words = last.split()
        rss, cpu = int(words[1]) / 1024, float(words[3]) + float(words[4])
    return s, rss, cpu, res.returncode, err


def series(cmd: list[str], repeats: int, ok=(0,)) -> dict:
    """Median (min, max) wall seconds and the largest peak RSS of ``repeats`` runs of ``cmd``."""
    ts, rss, cpu = [], [], []
    for _ in range(repeats):
        s, mib, cpu_s, rc, err = timed(cmd)
        if rc not in ok:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({rc}):\n{err}")
        ts.append(s)
        rss.append(mib)
        cpu.append(cpu_s)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "all_s": ts,
            "max_rss_mib": max(rss) if None not in rss else None,
            "median_cpu_s": statistics.median(cpu) if None not in cpu else None}


def read_cmd(run: Path, columns: tuple[str, ...], how: str) -> list[str]:
    return [sys.executable, "-c", READ, str(run), ",".join(columns), how]


def parts(run_dir: Path) -> dict[str, float]:
    """In-process seconds of each part of the analysis (fresh Run, so nothing is cached)."""
    import polars as pl

    from entrodiag import load_run
    from entrodiag.analysis import (
        detect_collapse,
        early_prediction,
        entropy_distribution,
        fit_entropy_law,
        hwe_span_stats,
        mechanism_check,
    )
    from entrodiag.analysis.tokens import read_token_rows

    out = {}
    t = time.perf_counter()
    run = load_run(run_dir)
    _ = run.steps, run.evals
    out["load steps+evals"] = time.perf_counter() - t
    for name, fn in (
        ("law fit (1000 bootstrap)", lambda: fit_entropy_law(run)),
        ("early prediction", lambda: early_prediction(run)),
        ("detect_collapse", lambda: detect_collapse(run)),
        ("mechanism_check", lambda: mechanism_check(run)),
        ("token pass (leaderboard, rows, bad values)", lambda: read_token_rows(run, bad_values=True)),
        ("hwe spans", lambda: hwe_span_stats(run)),
        ("entropy distribution", lambda: entropy_distribution(run)),
        ("other tables: rows, bad values", lambda: ({t: run.scan(t).select(pl.len()).collect().item()
                                                    for t in ("samples", "spans", "evals")},
                                                   run.bad_values(("steps", "samples", "spans", "evals")))),
    ):
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="run directory (generated if absent; default "
                   "/tmp/entrodiag-bench-analyze, or -<rows> for other sizes)")
    p.add_argument("--rows", type=int, default=ROWS, help=f"token rows of a generated run (default {ROWS:,})")
    p.add_argument("--steps", type=int, default=STEPS, help=f"steps of a generated run (default {STEPS:,})")
    p.add_argument("--repeats", type=int, default=5, help="timed CLI runs per variant (median reported)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--compare-with", type=Path, metavar="CHECKOUT", default=None,
                   help="also time this checkout's `entrodiag analyze` (e.g. `git archive main | tar -x -C "
                   "DIR`), alternated with the others")
    args = p.parse_args()
    default = "/tmp/entrodiag-bench-analyze" + ("" if (args.rows, args.steps) == (ROWS, STEPS) else f"-{args.rows}")
    run = Path(args.run or default)
    gen_s = None
    if not (run / "run.json").exists():
        print(f"generating {run} ({args.steps:,} steps, {args.rows:,} token rows) ...", file=sys.stderr)
        gen_s = generate(run, steps=args.steps, rows=args.rows)
    import polars as pl

    from entrodiag import load_run

    r = load_run(run)
    rows = {t: r.scan(t).select(pl.len()).collect().item() for t in ("steps", "tokens", "samples", "spans", "evals")}
    size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
    print(f"run: {rows}, {size / 2**20:.0f} MiB on disk" + (f", generated in {gen_s:.0f} s" if gen_s else ""))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"polars {pl.__version__}",
        "rows": rows, "disk_mib": size / 2**20, "generate_s": gen_s, "loadavg_before": os.getloadavg(),
    }
    cli = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "entrodiag.cli", "analyze", str(run)]
    timed(cli)  # warm the page cache and the bytecode cache
    # alternated, so that a change of load falls on every variant alike
    variants = {"analyze": cli, "analyze --json": [*cli, "--json"]}
    if args.compare_with:  # another checkout's entrodiag (e.g. main's, from `git archive`)
        other = ["env", f"PYTHONPATH={args.compare_with.resolve()}", *cli[2:]]
        variants["analyze (compared checkout)"] = other
        timed(other)
    if rows["tokens"] > 20_000_000:
        variants["baseline: needed columns, batches"] = read_cmd(run, NEEDED, "batches")
    else:  # whole in memory: ~60 bytes a row
        variants["baseline: needed columns, collect"] = read_cmd(run, NEEDED, "collect")
        variants["baseline: needed columns + token, collect"] = read_cmd(run, (*NEEDED, "token"), "collect")
        variants["baseline: leaderboard's 4 columns, collect"] = read_cmd(run, LEADERBOARD, "collect")
    got: dict[str, list] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for label, cmd in variants.items():
            got[label].append(series(cmd, 1, ok=(0, 1)))
    for label, runs in got.items():
        ts = [x["all_s"][0] for x in runs]
        rss, cpu = [x["max_rss_mib"] for x in runs], [x["median_cpu_s"] for x in runs]
        result[label] = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "all_s": ts,
                         "max_rss_mib": max(rss) if None not in rss else None,
                         "median_cpu_s": statistics.median(cpu) if None not in cpu else None}
        print(f"{label:<46} median {statistics.median(ts):6.2f} s  (min {min(ts):.2f}, max {max(ts):.2f}, "
              f"n={len(ts)})  CPU {result[label]['median_cpu_s'] or float('nan'):.2f} s  "
              f"peak RSS {result[label]['max_rss_mib'] or float('nan'):,.0f} MiB")
    a = result["analyze"]["median_s"]
    result["ratios"] = {k: a / result[k]["median_s"] for k in result
                        if k.startswith(("baseline", "analyze ("))}
    cpu = result["analyze"]["median_cpu_s"]
    result["cpu_ratios"] = {k: cpu / result[k]["median_cpu_s"] for k in result["ratios"]
                            if cpu and result[k]["median_cpu_s"]}
    for k, v in result["ratios"].items():
        print(f"analyze / {k}: {v:.2f} (CPU seconds: {result['cpu_ratios'].get(k, float('nan')):.2f})")
    imports = series(["env", f"PYTHONPATH={REPO}", sys.executable, "-c",
                      "import entrodiag.analysis.summary, rich.console, rich.table"],
                     args.repeats)
    result["python_and_imports_s"] = imports["median_s"]
    print(f"  {'python start + imports (fresh)':<44} {result['python_and_imports_s']:.3f} s (median)")
    result["parts_s"] = parts(run)
    for name, s in result["parts_s"].items():
        print(f"  {name:<44} {s:.3f} s")
    result["loadavg_after"] = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {result['loadavg_before']}, after {result['loadavg_after']}")
    if rows["tokens"] > 20_000_000:
        ok = a <= 10.0 and (result["analyze"]["max_rss_mib"] or 0) <= 4096
        print(f"target (median <= 10 s, peak RSS <= 4 GiB on 2 cores): {'holds' if ok else 'MISSED'}")
    else:
        ok = result["ratios"]["baseline: needed columns, collect"] <= 1.5
        print(f"target (analyze <= 1.5x the bare read of the needed columns): {'holds' if ok else 'MISSED'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
