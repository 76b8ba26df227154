"""Entropy benchmark: ``entrodiag.metrics.entropy_and_logprobs`` against the naive
``torch.distributions.Categorical(logits=...)`` computation.

Each method runs in its own fresh process, one process per method and trial; the script starts
those processes by calling itself again with the hidden ``--worker METHOD`` flag. A worker:

1. sets ``torch.set_num_threads`` (the same value for every method) and ``torch.manual_seed(0)``,
   builds the logits ``[rows, vocab]`` and the token ids;
2. warms up on a small slice (``--warmup-rows`` rows), so that library set-up (thread pool,
   kernels) happens before the baseline but no large temporary sets the peak there;
3. takes the baseline: current RSS (``VmRSS``), which includes the inputs. Where Linux allows it
   (``/proc/self/clear_refs``) the peak RSS is reset to the current RSS here; otherwise the peak
   so far is kept, which can only make the measured extra memory larger, never smaller;
4. runs the method on the full input ``1 + repeats`` times: the first call is the warm-up of the
   full size, the next ``repeats`` calls are timed with ``time.perf_counter``;
5. reads the peak RSS (``ru_maxrss``). Peak extra memory = peak after − baseline, in MiB; the
   first full-size call is inside this window, so a peak that only the first call reaches counts.

A separate worker computes both methods on a slice of ``--check-rows`` rows (and a float64
reference) and reports the largest absolute differences; every timing worker also returns the
float64 sums of its outputs, which the parent compares across methods.

Run by hand (not in CI): ``python benchmarks/bench_entropy.py``; see ``--help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DTYPES = ("float32", "bfloat16", "float16", "float64")
TARGET_MEMORY_RATIO = 0.2
TARGET_TIME_RATIO = 1.0


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------


def _import_entrodiag():
    try:
        from entrodiag.metrics import entropy_and_logprobs
    except ImportError:  # run from a checkout without installing the package
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from entrodiag.metrics import entropy_and_logprobs
    return entropy_and_logprobs


def _make_method(method: str):
    """``(name, fn)`` with ``fn(logits, ids) -> (entropy, logprobs)``.

    ``method`` is ``naive``, ``entrodiag`` (default chunking) or ``entrodiag:N`` (chunk_rows=N).
    """
    import torch

    if method == "naive":

        def naive(logits, ids):
            with torch.no_grad():
                d = torch.distributions.Categorical(logits=logits)
                return d.entropy(), d.log_prob(ids)

        return naive
    entropy_and_logprobs = _import_entrodiag()
    if method == "entrodiag":
        return lambda logits, ids: entropy_and_logprobs(logits, ids)
    if method.startswith("entrodiag:"):
        chunk_rows = int(method.split(":", 1)[1])
        return lambda logits, ids: entropy_and_logprobs(logits, ids, chunk_rows=chunk_rows)
    raise ValueError(f"unknown method {method!r}")


def _rss_kib() -> int | None:
    """Current resident set size in KiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform == "darwin" else float(peak)  # bytes on macOS, KiB on Linux


def _reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _busy_jiffies() -> int | None:
    """Busy clock ticks of all CPUs together (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle


def _other_load(seconds: float = 1.0) -> float | None:
    """CPUs kept busy by other processes over the next ``seconds`` (this one sleeps)."""
    a = _busy_jiffies()
    if a is None:
        return None
    time.sleep(seconds)
    return (_busy_jiffies() - a) / os.sysconf("SC_CLK_TCK") / seconds


def _inputs(args):
    import torch

    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    logits = torch.randn(args.rows, args.vocab, dtype=torch.float32).mul_(args.scale)
    if dtype != torch.float32:
        logits = logits.to(dtype)
    ids = torch.randint(0, args.vocab, (args.rows,), dtype=torch.long)
    return logits, ids


def _worker_time(args) -> dict:
    import gc

    import torch

    torch.set_num_threads(args.threads)
    logits, ids = _inputs(args)
    fn = _make_method(args.worker)

    # library warm-up on a small slice: no full-size temporary exists before the baseline
    h, lp = fn(logits[: args.warmup_rows], ids[: args.warmup_rows])
    del h, lp
    gc.collect()

    baseline_rss = _rss_kib()
    peak_before = _maxrss_kib()
    peak_reset = _reset_peak()
    if peak_reset:
        peak_before = _maxrss_kib()
    # honest baseline: the current RSS where known (a peak-so-far above it only inflates the extra)
    baseline = baseline_rss if baseline_rss is not None else peak_before

    t0 = time.perf_counter()
    h, lp = fn(logits, ids)  # full-size warm-up; inside the memory window
    first = time.perf_counter() - t0
    sums = [h.double().sum().item(), lp.double().sum().item()]
    del h, lp
    gc.collect()

    times = []
    busy0, own0, wall0 = _busy_jiffies(), os.times(), time.perf_counter()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        h, lp = fn(logits, ids)
        times.append(time.perf_counter() - t0)
        del h, lp
    peak_after = _maxrss_kib()
    busy1, own1, wall1 = _busy_jiffies(), os.times(), time.perf_counter()
    other = None  # CPUs used by other processes while this one was timed: noise indicator
    if busy0 is not None:
        own = (own1.user + own1.system) - (own0.user + own0.system)
        other = max(0.0, (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - own) / (wall1 - wall0)
    return {
        "method": args.worker,
        "threads": torch.get_num_threads(),
        "times_s": times,
        "first_call_s": first,
        "baseline_rss_kib": baseline,
        "peak_before_kib": peak_before,
        "peak_after_kib": peak_after,
        "peak_reset": peak_reset,
        "peak_extra_mib": (peak_after - baseline) / 1024,
        "other_load_cpus": other,
        "entropy_sum": sums[0],
        "logprob_sum": sums[1],
    }


def _worker_check(args) -> dict:
    """Both methods and a float64 reference on the first ``check_rows`` rows."""
    import torch

    torch.set_num_threads(args.threads)
    logits, ids = _inputs(args)
    n = min(args.check_rows, args.rows)
    logits, ids = logits[:n].contiguous(), ids[:n].contiguous()
    ref_h, ref_lp = _make_method("naive")(logits.double(), ids)
    out = {"method": "check", "rows": n}
    methods = ["naive", "entrodiag", *[f"entrodiag:{c}" for c in args.chunk_rows]]
    results = {m: _make_method(m)(logits, ids) for m in methods}
    for m, (h, lp) in results.items():
        out[f"{m} vs float64: entropy"] = (h.double() - ref_h).abs().max().item()
        out[f"{m} vs float64: logprob"] = (lp.double() - ref_lp).abs().max().item()
    nh, nlp = results["naive"]
    for m in methods[1:]:
        h, lp = results[m]
        out[f"{m} vs naive: entropy"] = (h.float() - nh.float()).abs().max().item()
        out[f"{m} vs naive: logprob"] = (lp.float() - nlp.float()).abs().max().item()
    return out


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------


def _worker_argv(args, method: str) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", method]
    argv += ["--rows", str(args.rows), "--vocab", str(args.vocab), "--dtype", args.dtype]
    argv += ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    argv += ["--warmup-rows", str(args.warmup_rows), "--check-rows", str(args.check_rows)]
    argv += ["--scale", str(args.scale)]  # (--wait-quiet stays in the parent)
    if args.chunk_rows:
        argv += ["--chunk-rows", ",".join(map(str, args.chunk_rows))]
    return argv


def _wait_quiet(args) -> float | None:
    """Wait up to ``--wait-quiet`` seconds for other processes to use < 0.2 CPU; last load seen."""
    deadline = time.monotonic() + args.wait_quiet
    load = _other_load(0.5)
    while load is not None and load >= 0.2 and time.monotonic() < deadline:
        load = _other_load(2.0)
    return load


def _run_worker(args, method: str) -> dict:
    if args.wait_quiet > 0:
        _wait_quiet(args)
    proc = subprocess.run(_worker_argv(args, method), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {method!r} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_load(load: float | None) -> str:
    return "n/a" if load is None else f"{load:.2f}"


def _label(method: str) -> str:
    if method.startswith("entrodiag:"):
        return f"entrodiag (chunk_rows={method.split(':', 1)[1]})"
    if method == "entrodiag":
        return "entrodiag (default chunks)"
    return "naive Categorical"


def _summarise(methods, trials):
    """Per method: medians over trials of the per-trial median/min time and of peak extra RSS."""
    rows = {}
    for m in methods:
        runs = [t[m] for t in trials]
        rows[m] = {
            "median_s": statistics.median(statistics.median(r["times_s"]) for r in runs),
            "min_s": min(min(r["times_s"]) for r in runs),
            "peak_extra_mib": statistics.median(r["peak_extra_mib"] for r in runs),
            "peak_extra_mib_per_trial": [r["peak_extra_mib"] for r in runs],
            "median_s_per_trial": [statistics.median(r["times_s"]) for r in runs],
            "first_call_s": statistics.median(r["first_call_s"] for r in runs),
            "other_load_cpus_max": max((r["other_load_cpus"] or 0.0) for r in runs),
        }
    base = rows["naive"]
    for r in rows.values():
        r["time_ratio"] = r["median_s"] / base["median_s"]
        r["memory_ratio"] = r["peak_extra_mib"] / base["peak_extra_mib"]
    return rows


def _table(rows) -> str:
    lines = [
        "| method | median time (s) | min time (s) | peak extra RSS (MiB) | time ratio | memory ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m, r in rows.items():
        lines.append(
            f"| {_label(m)} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['peak_extra_mib']:.1f} "
            f"| {r['time_ratio']:.2f} | {r['memory_ratio']:.3f} |"
        )
    return "\n".join(lines)


def _parse_chunk_rows(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("chunk rows must be >= 1")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(
            "Time and peak extra RSS of entrodiag.metrics.entropy_and_logprobs against the naive "
            "torch.distributions.Categorical(logits=...).entropy()/.log_prob() on CPU. Every "
            "method runs in its own fresh process; ratios are entrodiag / naive measured in the "
            f"same run. Targets: memory ratio <= {TARGET_MEMORY_RATIO}, time ratio <= "
            f"{TARGET_TIME_RATIO}."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=4096, help="rows (tokens) of the logits")
    p.add_argument("--vocab", type=int, default=32000, help="vocabulary size (columns)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the logits")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per worker process")
    p.add_argument("--trials", type=int, default=3,
                   help="fresh worker processes per method (methods interleaved); the table gives medians")
    p.add_argument("--chunk-rows", type=_parse_chunk_rows, default=[], metavar="N[,N...]",
                   help="also run entropy_and_logprobs with these explicit chunk_rows values")
    p.add_argument("--threads", type=int, default=_default_threads(), help="torch.set_num_threads in every worker")
    p.add_argument("--json", metavar="OUT", help="also write the raw results and summary as JSON here")
    p.add_argument("--warmup-rows", type=int, default=64, help="rows of the small pre-baseline warm-up call")
    p.add_argument("--check-rows", type=int, default=512, help="rows of the agreement check")
    p.add_argument("--scale", type=float, default=4.0, help="logits = scale * N(0, 1)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each worker, wait up to S seconds until other processes use < 0.2 CPU")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        result = _worker_check(args) if args.worker == "check" else _worker_time(args)
        print(json.dumps(result))
        return 0

    import torch

    methods = ["naive", "entrodiag", *[f"entrodiag:{c}" for c in args.chunk_rows]]
    print(
        f"# entropy benchmark: logits [{args.rows}, {args.vocab}] {args.dtype}, CPU, "
        f"{args.threads} threads, {args.repeats} timed calls x {args.trials} trials per method\n"
        f"# torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    print(f"# other processes' load before start: {_fmt_load(_other_load(1.0))} CPUs", flush=True)
    check = _run_worker(args, "check")
    trials = []
    for t in range(args.trials):
        order = methods if t % 2 == 0 else methods[::-1]  # alternate the order against drift
        trial = {}
        for m in order:
            trial[m] = _run_worker(args, m)
            r = trial[m]
            print(
                f"trial {t + 1}: {_label(m):32s} median {statistics.median(r['times_s']):.3f} s, "
                f"peak extra {r['peak_extra_mib']:.1f} MiB, other load "
                f"{_fmt_load(r['other_load_cpus'])} CPUs (peak reset: {r['peak_reset']})",
                flush=True,
            )
        trials.append(trial)

    rows = _summarise(methods, trials)
    print()
    print(_table(rows))
    print()
    print(f"agreement on the first {check['rows']} rows (max abs difference, nats):")
    for k, v in check.items():
        if k not in ("method", "rows"):
            print(f"  {k}: {v:.3g}")
    worst_sum = 0.0
    base = trials[0]["naive"]
    for trial in trials:
        for m in methods:
            for key in ("entropy_sum", "logprob_sum"):
                rel = abs(trial[m][key] - base[key]) / max(abs(base[key]), 1e-30)
                worst_sum = max(worst_sum, rel)
    print(f"  full-size output sums, largest relative difference between workers: {worst_sum:.3g}")
    noisy = max(r["other_load_cpus_max"] for r in rows.values())
    if noisy >= 0.2:
        print(
            f"\nWARNING: other processes used up to {noisy:.2f} CPUs during timing; times are "
            "inflated and noisy (see --wait-quiet). Peak memory is not affected."
        )
    print()
    verdicts = {}
    for m in methods[1:]:
        r = rows[m]
        ok_mem = r["memory_ratio"] <= TARGET_MEMORY_RATIO
        ok_time = r["time_ratio"] <= TARGET_TIME_RATIO
        verdicts[m] = {"memory": ok_mem, "time": ok_time}
        print(
            f"{_label(m)}: memory ratio {r['memory_ratio']:.3f} <= {TARGET_MEMORY_RATIO}: "
            f"{'PASS' if ok_mem else 'FAIL'}; time ratio {r['time_ratio']:.2f} <= "
            f"{TARGET_TIME_RATIO}: {'PASS' if ok_time else 'FAIL'}"
        )

    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "config": {k: v for k, v in vars(args).items() if k not in ("worker", "json")},
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "summary": rows,
            "targets": verdicts,
            "agreement": check,
            "output_sum_max_rel_diff": worst_sum,
            "trials": trials,
        }
        out.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
