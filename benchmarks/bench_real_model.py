"""A real model on CPU: SmolLM2-135M-Instruct's starting accuracy per word-arith level, and where a
GRPO step's time goes (sampling, forward/backward, after-update entropy, evaluation).

    python benchmarks/bench_real_model.py levels --prompts 24 --samples 2
    python benchmarks/bench_real_model.py split --reps 3 --json benchmarks/results/split.json

``levels``: sampled (T = 1) and greedy accuracy of the model on each level's held-out split, n
answers each. ``split``: one Trainer per variant, the phases of a step timed separately, ``reps``
steps each, variants interleaved on one model (same weights, same machine state), medians:

- ``before``: the output head over every position (the trainer before this benchmark's changes:
  the head ran over prompt and response when training and over the whole prompt when sampling);
- ``after``: ``logits_to_keep``, only the response positions (and the prompt's last one) reach the head;
- ``after+bf16``: the same under CPU bf16 autocast;
- ``after+mb4``: the same with micro-batches of 4 sequences.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def levels(args) -> list[dict]:
    from entrodiag.trainer.model import load_policy
    from entrodiag.trainer.rollout import decode_responses, encode_prompts, generate
    from entrodiag.trainer.tasks import WORD_ARITH_LEVELS, word_arith_task

    model, tok = load_policy(args.model)
    model.eval()
    rows = []
    for level in WORD_ARITH_LEVELS:
        task = word_arith_task(level, val_size=args.prompts, seed=0)
        enc = encode_prompts(tok, task.val_prompts)
        idx = torch.arange(args.prompts).repeat_interleave(args.samples)
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        res = {}
        for name, greedy, take in (("sampled", False, idx), ("greedy", True, torch.arange(args.prompts))):
            roll = generate(model, enc.take(take), args.max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                            greedy=greedy, generator=gen)
            texts = decode_responses(tok, roll)
            right = [task.score(t, task.val_answers[i]) for t, i in zip(texts, take.tolist())]
            res[name] = sum(right) / len(right)
            res[f"n_{name}"] = len(right)
            res[f"empty_{name}"] = sum(not t.strip() for t in texts) / len(texts)
            res[f"truncated_{name}"] = (roll.mask.sum(1) == args.max_new_tokens).float().mean().item()
            if name == "sampled":
                res["example"] = texts[0]
        res.update(level=level, what=WORD_ARITH_LEVELS[level], seconds=time.perf_counter() - t0)
        rows.append(res)
        print(f"level {level} ({WORD_ARITH_LEVELS[level]}): sampled {res['sampled']:.3f} (n {res['n_sampled']}), "
              f"greedy {res['greedy']:.3f} (n {res['n_greedy']}), empty {res['empty_sampled']:.2f}, "
              f"truncated {res['truncated_sampled']:.2f}, {res['seconds']:.0f} s; e.g. {res['example']!r}", flush=True)
    return rows


VARIANTS = ("before", "after", "after+bf16", "after+mb4")


def _trainer(args, out: Path):
    from entrodiag.trainer import load_config
    from entrodiag.trainer.loop import Trainer

    cfg = load_config("tiny-arith", model=args.model, task="word-arith", prompts_per_step=args.prompts,
                      group_size=args.group, max_new_tokens=args.max_new_tokens, epochs=1, val_size=args.val,
                      lr=1e-6, warmup_steps=0, device=args.device)
    return Trainer(cfg, out, progress=False, log=lambda *a, **k: None)


@contextlib.contextmanager
def _variant(tr, variant: str):
    """Set ``tr`` up as ``variant`` for the duration (one model for every variant: same weights)."""
    from entrodiag.trainer import loop, rollout

    saved = loop.accepts_logits_to_keep, rollout.accepts_logits_to_keep, tr.autocast, tr.cfg.micro_batch_size
    if variant == "before":
        loop.accepts_logits_to_keep = rollout.accepts_logits_to_keep = lambda model: False
    if variant.endswith("bf16") and tr.device.type == "cpu":
        tr.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    if variant.endswith("mb4"):
        tr.cfg.micro_batch_size = 4
    try:
        yield
    finally:
        loop.accepts_logits_to_keep, rollout.accepts_logits_to_keep, tr.autocast, tr.cfg.micro_batch_size = saved


def _phases(tr, step: int) -> dict[str, float]:
    """Wall and CPU seconds (this process: robust to a shared machine with one thread) per phase."""
    t = {}

    def timed(name, fn, *a):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*a)
        t[name], t[name + "_cpu"] = time.perf_counter() - w, time.process_time() - c
        return out

    timed("evaluate", tr.evaluate, step)
    prompts, roll, _, _, _, adv, _ = timed("sampling", tr.rollout, step)
    timed("forward_backward", tr.update, prompts, roll, adv)
    timed("entropy_after", tr.entropy_after, prompts, roll)
    for suffix in ("", "_cpu"):
        t["step_without_eval" + suffix] = sum(t[k + suffix] for k in ("sampling", "forward_backward", "entropy_after"))
    t["response_tokens"] = float(roll.mask.sum())
    return t


def split(args) -> dict:
    variants = args.variants.split(",")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        tr = _trainer(args, Path(tmp) / "run")
        for rep in range(args.reps + 1):  # rep 0 warms up
            for v in variants:
                with _variant(tr, v):
                    t = _phases(tr, rep)
                if rep:
                    results[v].append(t)
                    print(f"rep {rep} {v:<11} " + "  ".join(f"{k} {x:.2f}" for k, x in t.items() if k.endswith("_cpu")),
                          flush=True)
        tr.rec.close("finished")
    med = {v: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for v, rows in results.items()}
    base = med.get("before") or next(iter(med.values()))
    print(f"\nmedians over {args.reps} steps ({args.prompts} prompts x {args.group} answers, up to "
          f"{args.max_new_tokens} tokens, 1 epoch; evaluation on {args.val} held-out prompts, sampled + greedy)")
    keys = ("sampling", "forward_backward", "entropy_after", "step_without_eval", "evaluate")
    for suffix, what in (("_cpu", "CPU seconds of this process"), ("", "wall seconds")):
        print(f"\n{what}\n{'variant':<12}" + "".join(f"{k:>20}" for k in keys) + f"{'ratio':>8}")
        for v, m in med.items():
            print(f"{v:<12}" + "".join(f"{m[k + suffix]:>19.2f}s" for k in keys)
                  + f"{m['step_without_eval' + suffix] / base['step_without_eval' + suffix]:>8.2f}")
    return {"medians": med, "raw": results, "threads": torch.get_num_threads(),
            "bf16_cpu": torch.backends.mkldnn.is_available() and _has_avx512_bf16()}


def _has_avx512_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("levels", "split"))
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--prompts", type=int, default=4, help="levels: held-out prompts per level; split: prompts per step")
    p.add_argument("--samples", type=int, default=2, help="levels: sampled answers per prompt")
    p.add_argument("--group", type=int, default=4, help="split: answers per prompt")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--val", type=int, default=8, help="split: held-out prompts evaluated per step")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="split: where the trainer runs")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    res = levels(args) if args.what == "levels" else split(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
