"""The trainer's update at SmolLM2 shapes: whole logits vs the chunked head (issue 29).

Both variants run the trainer's own code (``entrodiag.trainer.forward.response_logp``, then the
objective of ``losses.compose`` and its backward) on the same inputs:

- **whole**: ``head=None``, the path the update took before: the model's head builds the
  ``[B, T + 1, V]`` fp32 logits, then ``log_softmax``, the gather and (entropy bonus)
  ``exp(logp)·logp`` over the vocabulary;
- **chunked**: ``head=W``: log-probs and entropy from the last hidden states chunk by chunk
  (``trainer/chunked_head.py``), the logits recomputed chunk by chunk in the backward.

The transformer under the head is left out (it is the same in both; at SmolLM2's size its
activations are the same few hundred MB either way): a stand-in model returns a fixed
``[B, P + T, D]`` hidden-state tensor (a leaf with gradient) and applies the output head
``W [V, D]`` (a parameter) to the positions asked for, as ``LlamaForCausalLM`` does with
``logits_to_keep``. Shapes: B = 32 responses × T = 64 tokens, V = 49,152, D = 576 (SmolLM2-135M),
P = 1 prompt position, fp32, CPU; the loss is ``entropy_bonus`` (PPO clip − 0.005·H), so both
log-probs and entropy carry gradient.

Each variant runs in a fresh process per trial (variants alternated), with the same thread
count. A worker builds its inputs, warms up once on 2 rows, returns free heap to the OS
(``malloc_trim``), resets its peak RSS (``/proc/self/clear_refs``; peak = ``VmHWM``), then times
``--repeats`` full updates (forward + backward, gradients zeroed between them), in wall time and
in the process's CPU time (steadier than wall time on a machine other work shares). Peak extra memory
= peak RSS − RSS before the first full update (torch's CPU allocator has no statistics and
``tracemalloc`` does not see it). A separate check compares loss and gradients of the two
variants.

    python benchmarks/bench_update.py --trials 3 --repeats 3 [--chunk-rows N] [--json benchmarks/results/update.json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def _rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _inputs(args, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    B, T, V, D = args.batch, args.tokens, args.vocab, args.hidden
    hidden = (torch.randn(B, 1 + T, D, generator=g)).requires_grad_()
    weight = torch.nn.Parameter(torch.randn(V, D, generator=g) * D ** -0.5 * 4)
    response = torch.randint(V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[::3, T - T // 4:] = False  # some responses ended early
    old_logp = -torch.rand(B, T, generator=g) * 3
    adv = torch.randn(B, generator=g)
    return hidden, weight, response, mask, old_logp, adv


class _StandIn:
    """The transformer's output as a fixed tensor, then the output head, as a causal LM would."""

    def __init__(self, hidden, weight):
        self.hidden, self.weight = hidden, weight

    def forward(self, input_ids, logits_to_keep: int = 0, output_hidden_states: bool = False, **kw):
        import torch

        h = self.hidden[: input_ids.shape[0], -input_ids.shape[1]:]
        kept = h[:, -logits_to_keep:] if logits_to_keep else h
        return SimpleNamespace(logits=torch.nn.functional.linear(kept, self.weight),
                               hidden_states=(h,) if output_hidden_states else None)

    __call__ = forward


def _step(variant: str, model, inputs, rows: int | None = None):
    """One update's loss and backward through the trainer's code."""
    import torch

    from entrodiag.trainer.config import TrainConfig
    from entrodiag.trainer.forward import response_logp
    from entrodiag.trainer.losses import PolicyBatch, compose
    from entrodiag.trainer.rollout import Prompts

    hidden, weight, response, mask, old_logp, adv = inputs
    sl = slice(0, rows)
    response, mask, old_logp, adv = response[sl], mask[sl], old_logp[sl], adv[sl]
    B = response.shape[0]
    prompts = Prompts(torch.ones(B, 1, dtype=torch.long), torch.ones(B, 1, dtype=torch.bool))
    objective = compose(TrainConfig(), "entropy_bonus")
    head = weight if variant == "chunked" else None
    logp, entropy = response_logp(model, prompts, response, mask, 1.0, head=head, need_entropy=True,
                                  share_prompts=False)
    batch = PolicyBatch(logp, old_logp, adv[:, None].expand_as(logp), mask, torch.zeros_like(logp), entropy)
    out = objective(batch, mask.sum().clamp(min=1))
    out.loss.backward()
    return out.loss.detach()


def _set_chunk_rows(rows: int | None) -> None:
    """Rows per chunk of the chunked head (default: the trainer's, ``chunk_rows_for``)."""
    if rows:
        from entrodiag.trainer import chunked_head

        chunked_head.chunk_rows_for = lambda vocab: rows


def _worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    _set_chunk_rows(args.chunk_rows)
    inputs = _inputs(args)
    model = _StandIn(inputs[0], inputs[1])
    _step(args.worker, model, inputs, rows=2)  # library set-up, no large temporaries
    inputs[0].grad = inputs[1].grad = None
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    base = _rss_kib()
    _reset_peak()
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        _step(args.worker, model, inputs)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        inputs[0].grad = inputs[1].grad = None
    peak = _rss_kib("VmHWM")
    return {"variant": args.worker, "times": times, "median_s": statistics.median(times),
            "cpu_times": cpu, "median_cpu_s": statistics.median(cpu),
            "peak_extra_mib": (peak - base) / 1024}


def _check(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    _set_chunk_rows(args.chunk_rows)
    result = {}
    for variant in ("whole", "chunked"):
        inputs = _inputs(args)
        loss = _step(variant, _StandIn(inputs[0], inputs[1]), inputs)
        result[variant] = (loss, inputs[0].grad, inputs[1].grad)
    (l0, gh0, gw0), (l1, gh1, gw1) = result["whole"], result["chunked"]
    return {"loss_diff": abs(float(l0 - l1)), "loss": float(l0),
            "grad_hidden_max_diff": float((gh0 - gh1).abs().max()), "grad_hidden_max": float(gh0.abs().max()),
            "grad_weight_max_diff": float((gw0 - gw1).abs().max()), "grad_weight_max": float(gw0.abs().max())}


def _run(args, mode: str) -> dict:
    argv = [sys.executable, __file__, "--worker", mode, "--threads", str(args.threads), "--repeats", str(args.repeats),
            "--batch", str(args.batch), "--tokens", str(args.tokens), "--vocab", str(args.vocab),
            "--hidden", str(args.hidden)] + (["--chunk-rows", str(args.chunk_rows)] if args.chunk_rows else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker {mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--chunk-rows", type=int, help="rows per chunk of the chunked head (default: the trainer's)")
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "check":
        print(json.dumps(_check(args)))
        return 0
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    rows = []
    for trial in range(args.trials):
        order = ("whole", "chunked") if trial % 2 == 0 else ("chunked", "whole")
        for variant in order:
            rows.append(_run(args, variant))
            print(f"trial {trial} {variant}: median {rows[-1]['median_s']:.3f} s, "
                  f"peak extra {rows[-1]['peak_extra_mib']:.1f} MiB", file=sys.stderr)
    check = _run(args, "check")
    summary = {}
    for variant in ("whole", "chunked"):
        mine = [r for r in rows if r["variant"] == variant]
        summary[variant] = {"median_s": statistics.median(r["median_s"] for r in mine),
                            "median_cpu_s": statistics.median(r["median_cpu_s"] for r in mine),
                            "min_s": min(min(r["times"]) for r in mine),
                            "peak_extra_mib": statistics.median(r["peak_extra_mib"] for r in mine)}
    w, c = summary["whole"], summary["chunked"]
    print(f"shapes B={args.batch} T={args.tokens} V={args.vocab} D={args.hidden}, {args.threads} threads, "
          f"{args.trials} trials x {args.repeats} updates")
    print("| variant | median time (s) | min time (s) | median CPU time (s) | peak extra RSS (MiB) | time ratio "
          "| CPU time ratio | memory ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {s['median_s']:.3f} | {s['min_s']:.3f} | {s['median_cpu_s']:.2f} | "
              f"{s['peak_extra_mib']:.1f} | {s['median_s'] / w['median_s']:.2f} | "
              f"{s['median_cpu_s'] / w['median_cpu_s']:.2f} | {s['peak_extra_mib'] / w['peak_extra_mib']:.3f} |")
    print(f"check: |Δloss| {check['loss_diff']:.2e} (loss {check['loss']:.4f}); max |Δ grad hidden| "
          f"{check['grad_hidden_max_diff']:.2e} (max {check['grad_hidden_max']:.2e}); max |Δ grad W| "
          f"{check['grad_weight_max_diff']:.2e} (max {check['grad_weight_max']:.2e})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                         "rows": rows, "summary": summary, "check": check}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
