"""Entropy side by side: ``entrodiag.metrics.entropy_and_logprobs`` against the per-token entropy
and sampled-token log-prob functions of TRL and verl, and the naive computation, on CPU.

Methods (each computes entropy and the log-prob of the sampled token of every row):

- ``entrodiag``: ``entropy_and_logprobs(logits, ids)`` (default chunks);
- ``trl``: ``trl.trainer.utils.entropy_from_logits(logits)`` (128-row chunks) +
  ``selective_log_softmax(logits, ids)``, on a ``[--trl-batch, rows / trl-batch, V]`` view of the
  same logits (no copy): the ``[B, T, V]`` layout TRL's GRPOTrainer passes them (its
  ``selective_log_softmax`` loops over the leading dimension);
- ``verl``: ``verl.utils.torch_functional.entropy_from_logits_with_chunking(logits)`` (2048-row
  chunks) + ``logprobs_from_logits(logits, ids)``, on ``[rows, V]`` (verl's layout). It is imported
  from the Python that ``--verl-python`` names (verl needs its own environment; by default the
  current one, if verl imports there);
- ``naive``: ``torch.distributions.Categorical(logits=logits)``'s ``entropy()`` and ``log_prob``.

The real functions are imported; nothing of TRL or verl is copied. A method whose package does
not import is reported as such, not replaced.

How it measures (the method of ``bench_entropy.py``, whose helpers it uses): each method runs in a
fresh process per trial, methods alternated (forward, then reversed order), the same
``torch.set_num_threads`` everywhere. A worker builds the logits (``scale·N(0, 1)``, seed 0) and
ids, warms up on 64 rows, returns freed heap memory to the OS (glibc ``malloc_trim``), takes the
baseline (current RSS, which holds the inputs), resets the peak RSS (``/proc/self/clear_refs``),
makes one full-size call and ``--repeats`` timed calls, and reads the peak RSS: peak extra memory
= peak − baseline (memory a call takes from the OS shows in RSS once touched; without the trim,
free pages the process already held could absorb a temporary unseen). After that window it
checks its method against an fp64 reference on ``--check-rows`` rows. torch's CPU allocator keeps no cache, so RSS is the
right measure; ``tracemalloc`` does not see torch's allocations. The process CPU time of each
timed call is reported too: on a loaded machine it moves less than wall time (but includes the
time OpenMP threads spin while waiting for each other).

Run by hand: ``python benchmarks/bench_entropy_vs_frameworks.py --help``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_entropy as B  # noqa: E402  (measurement helpers shared with bench_entropy.py)

METHODS = ("entrodiag", "trl", "verl", "naive")
LABELS = {
    "entrodiag": "entrodiag `entropy_and_logprobs`",
    "trl": "TRL `entropy_from_logits` + `selective_log_softmax`",
    "verl": "verl `entropy_from_logits_with_chunking` + `logprobs_from_logits`",
    "naive": "naive `Categorical`",
}


# ---------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------


def _make(method: str, trl_batch: int):
    """``(fn, version)``; ``fn(logits [N, V], ids [N]) -> (entropy, logprobs)``."""
    import torch

    if method == "entrodiag":
        try:
            import entrodiag
            from entrodiag.metrics import entropy_and_logprobs
        except ImportError:  # a checkout that is not installed
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            import entrodiag
            from entrodiag.metrics import entropy_and_logprobs
        return entropy_and_logprobs, entrodiag.__version__
    if method == "trl":
        import trl
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax

        def trl_pair(logits, ids):
            n, v = logits.shape
            b = trl_batch if n % trl_batch == 0 else 1
            z, k = logits.view(b, n // b, v), ids.view(b, n // b)
            with torch.no_grad():
                return entropy_from_logits(z).reshape(n), selective_log_softmax(z, k).reshape(n)

        return trl_pair, trl.__version__
    if method == "verl":
        import verl
        from verl.utils.torch_functional import entropy_from_logits_with_chunking, logprobs_from_logits

        def verl_pair(logits, ids):
            with torch.no_grad():
                return entropy_from_logits_with_chunking(logits), logprobs_from_logits(logits, ids)

        return verl_pair, verl.__version__
    if method == "naive":

        def naive(logits, ids):
            with torch.no_grad():
                d = torch.distributions.Categorical(logits=logits)
                return d.entropy(), d.log_prob(ids)

        return naive, torch.__version__
    raise ValueError(f"unknown method {method!r}")


def _inputs(args):
    import torch

    torch.manual_seed(0)
    logits = torch.randn(args.rows, args.vocab, dtype=torch.float32).mul_(args.scale)
    if args.dtype != "float32":
        logits = logits.to(getattr(torch, args.dtype))
    return logits, torch.randint(0, args.vocab, (args.rows,), dtype=torch.long)


def _malloc_trim() -> None:
    """Return free heap memory to the OS (glibc), so that RSS holds only memory in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    fn, version = _make(args.worker, args.trl_batch)
    logits, ids = _inputs(args)
    warm = min(64, args.rows)
    fn(logits[:warm], ids[:warm])  # library set-up, no full-size temporary
    gc.collect()
    _malloc_trim()  # freed heap pages back to the OS: the next peak counts every temporary

    baseline = B._rss_kib()
    peak_reset = B._reset_peak()
    if baseline is None:
        baseline = B._maxrss_kib()
    t0 = time.perf_counter()
    h, lp = fn(logits, ids)  # full-size warm-up, inside the memory window
    first = time.perf_counter() - t0
    sums = [h.double().sum().item(), lp.double().sum().item()]
    del h, lp
    gc.collect()
    times, cpu = [], []
    busy0, own0, wall0 = B._busy_jiffies(), os.times(), time.perf_counter()
    for _ in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        h, lp = fn(logits, ids)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del h, lp
    peak = B._maxrss_kib()
    busy1, own1, wall1 = B._busy_jiffies(), os.times(), time.perf_counter()
    other = None
    if busy0 is not None:
        own = (own1.user + own1.system) - (own0.user + own0.system)
        other = max(0.0, (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - own) / (wall1 - wall0)
    # agreement with an fp64 reference on the first rows, after the measured window
    n = min(args.check_rows, args.rows)
    rows, rids = logits[:n].contiguous(), ids[:n].contiguous()
    h, lp = fn(rows, rids)
    ref = torch.log_softmax(rows.double(), dim=-1)
    err_h = (h.double() - (-(ref.exp() * ref).sum(-1))).abs().max().item()
    err_lp = (lp.double() - ref.gather(-1, rids[:, None]).squeeze(-1)).abs().max().item()
    return {
        "method": args.worker,
        "version": version,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "times_s": times,
        "cpu_s": cpu,
        "first_call_s": first,
        "peak_extra_mib": (peak - baseline) / 1024,
        "peak_reset": peak_reset,
        "other_load_cpus": other,
        "max_err_entropy": err_h,
        "max_err_logprob": err_lp,
        "entropy_sum": sums[0],
        "logprob_sum": sums[1],
    }


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------


def _python_for(method: str, args) -> str:
    return args.verl_python if method == "verl" and args.verl_python else sys.executable


def _importable(method: str, args) -> str | None:
    """None if the method's package imports in its Python, else the reason."""
    module = {"trl": "trl.trainer.utils", "verl": "verl.utils.torch_functional"}.get(method)
    if module is None:
        return None
    proc = subprocess.run(
        [_python_for(method, args), "-c", f"import {module}"], capture_output=True, text=True
    )
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return f"not importable in {_python_for(method, args)}: {last}"


def _mem_available_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _run(method: str, args) -> dict:
    if args.wait_quiet > 0:
        B._wait_quiet(args)
    argv = [_python_for(method, args), str(Path(__file__).resolve()), "--worker", method]
    for flag in ("rows", "vocab", "dtype", "repeats", "threads", "check_rows", "scale", "trl_batch"):
        argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {method!r} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summary(results: dict) -> dict:
    rows = {}
    for m, runs in results.items():
        rows[m] = {
            "median_s": statistics.median(statistics.median(r["times_s"]) for r in runs),
            "min_s": min(min(r["times_s"]) for r in runs),
            "cpu_s": statistics.median(statistics.median(r["cpu_s"]) for r in runs),
            "peak_extra_mib": statistics.median(r["peak_extra_mib"] for r in runs),
            "peak_extra_mib_max": max(r["peak_extra_mib"] for r in runs),
            "median_s_per_trial": [statistics.median(r["times_s"]) for r in runs],
            "other_load_cpus_max": max((r["other_load_cpus"] or 0.0) for r in runs),
            "max_err_entropy": max(r["max_err_entropy"] for r in runs),
            "max_err_logprob": max(r["max_err_logprob"] for r in runs),
            "version": runs[0]["version"],
            "torch": runs[0]["torch"],
        }
    if "entrodiag" in rows:
        base = rows["entrodiag"]
        for r in rows.values():
            r["time_vs_entrodiag"] = r["median_s"] / base["median_s"]
            r["memory_vs_entrodiag"] = r["peak_extra_mib"] / max(base["peak_extra_mib"], 1e-9)
    return rows


def _table(rows: dict, skipped: dict) -> str:
    out = [
        "| method | version | median time (s) | min (s) | CPU time (s) | peak extra RSS (MiB) "
        "| time / entrodiag | memory / entrodiag | max err vs fp64 (H, log p) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m, r in rows.items():
        out.append(
            f"| {LABELS[m]} | {r['version']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_s']:.3f} "
            f"| {r['peak_extra_mib']:.1f} | {r.get('time_vs_entrodiag', float('nan')):.2f} "
            f"| {r.get('memory_vs_entrodiag', float('nan')):.1f} "
            f"| {r['max_err_entropy']:.1e}, {r['max_err_logprob']:.1e} |"
        )
    for m, why in skipped.items():
        out.append(f"| {LABELS[m]} | | not run: {why} | | | | | | |")
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(
            "Time and peak extra RSS of entrodiag's entropy_and_logprobs against TRL's "
            "entropy_from_logits + selective_log_softmax, verl's entropy_from_logits_with_chunking "
            "+ logprobs_from_logits and the naive Categorical, on CPU. Each method runs in its own "
            "fresh process per trial, alternated; ratios are against entrodiag in the same run."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=4096, help="rows (tokens) of the logits")
    p.add_argument("--vocab", type=int, default=32000, help="vocabulary size")
    p.add_argument("--dtype", choices=B.DTYPES[:3], default="float32", help="dtype of the logits")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    p.add_argument("--trials", type=int, default=3, help="fresh processes per method")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    p.add_argument("--threads", type=int, default=B._default_threads(), help="torch threads in every worker")
    p.add_argument("--trl-batch", type=int, default=8, help="B of the [B, rows/B, V] view TRL gets")
    p.add_argument("--check-rows", type=int, default=128, help="rows checked against fp64 in each worker")
    p.add_argument("--scale", type=float, default=4.0, help="logits = scale * N(0, 1)")
    p.add_argument(
        "--verl-python",
        metavar="PYTHON",
        help="interpreter of an environment where verl imports (default: this one)",
    )
    p.add_argument(
        "--max-naive-gib",
        type=float,
        default=None,
        help="skip naive when 5x the logits' size exceeds this (default: MemAvailable minus 4 GiB)",
    )
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each worker, wait up to S s until other processes use < 0.2 CPU")
    p.add_argument("--json", metavar="OUT", help="write raw results and the summary as JSON here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    skipped = {}
    for m in list(methods):
        why = _importable(m, args)
        if why:
            skipped[m] = why
            methods.remove(m)
    logits_gib = args.rows * args.vocab * {"float32": 4, "bfloat16": 2, "float16": 2}[args.dtype] / 2**30
    avail = _mem_available_gib()
    limit = args.max_naive_gib if args.max_naive_gib is not None else (avail or 0) - 4
    if "naive" in methods and 5 * logits_gib > limit:
        skipped["naive"] = f"needs about {5 * logits_gib:.0f} GiB (5x the logits), {limit:.0f} GiB allowed"
        methods.remove("naive")
    import torch

    print(
        f"# logits [{args.rows}, {args.vocab}] {args.dtype} ({logits_gib:.2f} GiB), CPU, {args.threads} "
        f"threads, {args.repeats} timed calls x {args.trials} trials; torch {torch.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, MemAvailable "
        f"{avail if avail is None else round(avail, 1)} GiB, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for m, why in skipped.items():
        print(f"# {m}: {why}", flush=True)
    results = {m: [] for m in methods}
    loads = []
    for t in range(args.trials):
        for m in methods if t % 2 == 0 else methods[::-1]:
            r = _run(m, args)
            results[m].append(r)
            loads.append(os.getloadavg()[0])
            print(
                f"trial {t + 1}: {m:9s} median {statistics.median(r['times_s']):.3f} s, peak extra "
                f"{r['peak_extra_mib']:.1f} MiB, other load {B._fmt_load(r['other_load_cpus'])} CPUs, "
                f"load average {loads[-1]:.1f}",
                flush=True,
            )
    rows = _summary(results)
    sums = {m: (r[0]["entropy_sum"], r[0]["logprob_sum"]) for m, r in results.items()}
    print()
    print(_table(rows, skipped))
    print(f"\n# load average during the run: {min(loads):.1f}-{max(loads):.1f}")
    print("# float64 sums of the full outputs (entropy, log-prob) per method:", sums)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "summary": rows, "skipped": skipped, "results": results,
             "load_average": loads}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
