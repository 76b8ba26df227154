"""Memory bandwidth of the fused Triton entropy kernel on a CUDA GPU (``entrodiag/kernels/entropy.py``).

The kernel reads each logit once and writes two fp32 values per row, so its useful traffic is
the logits' size; bandwidth = bytes of logits ÷ median kernel time, compared to the card's peak
(``--peak-tbs``; known for a few cards, e.g. H200 4.8 TB/s). Target (issue 17): ≥ 70% of the peak
on ``[16384, 151936]`` bf16 (5 GB of logits).

What it does, on one GPU: builds the logits (``4·N(0, 1)``, seed 0) and ids on the device; checks
the kernel against an fp64 reference on 64 rows; times (CUDA events, median of ``--repeats`` after
warm-up) the default launch configuration, a sweep of ``BLOCK_V`` × ``num_warps``, the chunked
PyTorch path of ``entropy_and_logprobs`` (``ENTRODIAG_DISABLE_TRITON=1``) and, where TRL imports,
TRL's own fused kernel (``trl.trainer.utils._fused_logprob_entropy``, private: skipped if absent).
Run by hand or from ``benchmarks/gpu_check.sh``: ``python benchmarks/bench_kernel_gpu.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

PEAK_TBS = {"H200": 4.8, "H100 SXM": 3.35, "H100 NVL": 3.9, "H100 PCIe": 2.0, "H100": 3.35,
            "A100-SXM4-80GB": 2.04, "A100 80GB PCIe": 1.94, "A100": 1.56, "L40S": 0.864,
            "A10G": 0.6, "L4": 0.3, "RTX 4090": 1.008}
TARGET = 0.70


def _peak_for(name: str) -> float | None:
    for key, tbs in PEAK_TBS.items():  # dict order: specific names before generic ones
        if key in name:
            return tbs
    return None


def _time_ms(fn, repeats: int) -> float:
    import torch

    for _ in range(3):  # compile / warm up
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Bandwidth of entrodiag's fused Triton entropy kernel (bytes of logits read once / "
        "time) against the card's peak, with a launch-configuration sweep and the chunked path.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--vocab", type=int, default=151936, help="151936 = Qwen2.5/Qwen3's vocabulary")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per configuration")
    p.add_argument("--peak-tbs", type=float, help="the card's peak memory bandwidth in TB/s (default: by name)")
    p.add_argument("--hidden-dim", type=int, default=896, help="D of the hidden-state kernel's timing")
    p.add_argument("--no-sweep", action="store_true", help="time the default configuration only")
    p.add_argument("--json", metavar="OUT", help="write the results here")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench_kernel_gpu: no CUDA device; nothing measured (the figures stay pending)")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.pop("ENTRODIAG_DISABLE_TRITON", None)
    from entrodiag import metrics
    from entrodiag.kernels import load_entropy_kernel

    kernel = load_entropy_kernel()
    if kernel is None:
        print("bench_kernel_gpu: triton does not import here; pip install 'entrodiag[triton]'")
        return 1
    name = torch.cuda.get_device_name()
    peak = args.peak_tbs or _peak_for(name)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(args.rows, args.vocab, device="cuda", generator=g) * 4).to(dtype)
    ids = torch.randint(0, args.vocab, (args.rows,), device="cuda", generator=g)
    nbytes = logits.numel() * logits.element_size()
    print(f"# {name}, peak {peak} TB/s; logits [{args.rows}, {args.vocab}] {args.dtype} = {nbytes / 1e9:.2f} GB; "
          f"torch {torch.__version__}", flush=True)

    ref = torch.log_softmax(logits[:64].double(), dim=-1)
    h, lp = kernel(logits[:64], ids[:64], 1.0)
    err_h = (h.double() - (-(ref.exp() * ref).sum(-1))).abs().max().item()
    err_lp = (lp.double() - ref.gather(-1, ids[:64, None]).squeeze(-1)).abs().max().item()
    print(f"max |error| vs fp64 on 64 rows: entropy {err_h:.2e}, log-prob {err_lp:.2e}", flush=True)

    rows = []

    def record(label: str, ms: float) -> None:
        tbs = nbytes / (ms / 1e3) / 1e12
        frac = tbs / peak if peak else None
        rows.append({"config": label, "ms": ms, "tb_per_s": tbs, "fraction_of_peak": frac})
        print(f"{label:38s} {ms:9.3f} ms  {tbs:6.2f} TB/s" + (f"  {frac:6.1%} of peak" if frac else ""), flush=True)

    record("fused kernel, default config", _time_ms(lambda: kernel(logits, ids, 1.0), args.repeats))
    if not args.no_sweep:
        for block_v in (1024, 2048, 4096, 8192, 16384):
            for warps in (4, 8, 16):
                try:
                    ms = _time_ms(lambda: kernel(logits, ids, 1.0, block_v=block_v, num_warps=warps), args.repeats)
                except Exception as exc:  # e.g. out of shared memory / registers at this size
                    print(f"BLOCK_V={block_v}, num_warps={warps}: failed ({type(exc).__name__})")
                    continue
                record(f"fused kernel, BLOCK_V={block_v}, num_warps={warps}", ms)
    record("fused kernel, temperature 0.7", _time_ms(lambda: kernel(logits, ids, 0.7), args.repeats))
    os.environ["ENTRODIAG_DISABLE_TRITON"] = "1"
    record("chunked PyTorch path (entrodiag)", _time_ms(lambda: metrics.entropy_and_logprobs(logits, ids), 5))
    os.environ.pop("ENTRODIAG_DISABLE_TRITON")
    try:
        from trl.trainer.utils import _fused_logprob_entropy

        record("TRL _fused_logprob_entropy", _time_ms(lambda: _fused_logprob_entropy(logits, ids), args.repeats))
    except Exception as exc:  # TRL missing, or its private kernel renamed
        print(f"TRL's fused kernel not timed: {type(exc).__name__}: {exc}")

    try:  # the hidden-state variant (no logits in memory) on a Qwen2.5-0.5B-sized head, D = 896
        from entrodiag.kernels import load_entropy_kernel as load

        hidden_kernel = load("hidden")
        hidden = torch.randn(args.rows, args.hidden_dim, device="cuda", generator=g).to(dtype)
        head = (torch.randn(args.vocab, args.hidden_dim, device="cuda", generator=g) * 0.05).to(dtype)
        ms = _time_ms(lambda: hidden_kernel(hidden, head, ids, 1.0), 5)
        flops = 2 * args.rows * args.vocab * args.hidden_dim
        print(f"hidden-state kernel [{args.rows}, {args.hidden_dim}] x [{args.vocab}, {args.hidden_dim}]: {ms:.3f} ms, "
              f"{flops / (ms / 1e3) / 1e12:.1f} TFLOP/s", flush=True)
        ms2 = _time_ms(lambda: kernel(hidden @ head.T, ids, 1.0), 5)
        print(f"  against matmul + logits kernel: {ms2:.3f} ms (logits materialised)", flush=True)
        extra = {"hidden_kernel_ms": ms, "matmul_then_kernel_ms": ms2, "hidden_dim": args.hidden_dim}
    except Exception as exc:
        print(f"hidden-state kernel not timed: {type(exc).__name__}: {exc}")
        extra = {"hidden_kernel_error": f"{type(exc).__name__}: {exc}"}

    fused = [r for r in rows if r["config"].startswith("fused kernel, ") and "temperature" not in r["config"]]
    best = min(fused, key=lambda r: r["ms"])
    default = rows[0]
    print(f"\nbest: {best['config']} {best['tb_per_s']:.2f} TB/s; default {default['tb_per_s']:.2f} TB/s")
    if peak:
        ok = default["fraction_of_peak"] >= TARGET
        print(f"target >= {TARGET:.0%} of peak with the default config: {'holds' if ok else 'MISSED'} "
              f"({default['fraction_of_peak']:.1%})")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "peak_tbs": peak, "bytes": nbytes,
                                               "max_err_entropy": err_h, "max_err_logprob": err_lp,
                                               "rows": rows, **extra}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
