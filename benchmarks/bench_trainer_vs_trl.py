"""Rollouts per second of the built-in GRPO trainer (``entrodiag train``) against TRL's GRPOTrainer.

    python benchmarks/bench_trainer_vs_trl.py --config tiny --rounds 5 --json benchmarks/results/vs_trl.json

Both trainers start from the same weights (the demo's warm-started tiny Llama, read from the warm
start cache) and run the same matched configuration: the addition task's training prompts,
64 prompts x 8 samples per generation batch (512 rollouts), at most 4 new tokens at T = 1,
2 optimizer passes per generation batch (entrodiag ``epochs=2``, TRL ``num_iterations=2``),
token-level loss aggregation (entrodiag: sum over the batch's tokens / their number; TRL's default
``loss_type="dapo"``, the same on one process), PPO clip 0.2, no KL (``beta=0``), AdamW lr 5e-4,
grad-clip 1.0, fp32 on CPU. TRL's CPU-hostile defaults are turned off as a user would: gradient
(activation) checkpointing off, bf16 off; its logging, saving and progress bar off.

Each trainer runs in its own process (``--worker``), the two alternating for ``--rounds`` rounds
(the order flips every round), with the same ``OMP_NUM_THREADS`` (``--threads``). Only
steady-state generation batches are timed: imports, model loading, trainer construction and the
first ``--skip`` batches are left out, and so is the built-in trainer's last step (it evaluates and
checkpoints). A batch's time is the interval between the trainers' own step timestamps: the start
of consecutive rollouts (entrodiag) or the end of every second optimizer step (TRL, a callback).
The split: ``generate`` is the sampling call alone (entrodiag ``generate``, TRL ``_generate``);
``score_prep`` the rest of the rollout (decoding, rewards, advantages; for TRL also the
tokenising, padding and the extra forward pass for the old log-probs); ``update`` the optimizer
passes (for TRL: the batch's time less its generation and scoring, so it holds the Trainer's own
bookkeeping and logging too); ``entropy_after`` the built-in trainer's after-update entropy pass
(a diagnostic TRL does not make); ``other`` the remainder (entrodiag: the Recorder and the loop).

The built-in trainer runs with its defaults as ``entrodiag train`` uses them (recording every step,
after-update entropy on), except that evaluation and checkpoints fall outside the timed steps.
``--config smollm2`` is not implemented yet.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPLIT = ("batch", "generate", "score_prep", "update", "entropy_after", "other")
PROMPTS, GROUP, NEW_TOKENS, EPOCHS, LR, CLIP = 64, 8, 4, 2, 5e-4, 0.2


def _cfg(steps: int, entropy_after: bool = True):
    from entrodiag.trainer import load_config

    # evaluation runs at step 0 and the last step, checkpoints at the last: both outside the timed steps
    return load_config("tiny-arith", steps=steps, prompts_per_step=PROMPTS, group_size=GROUP,
                       max_new_tokens=NEW_TOKENS, epochs=EPOCHS, lr=LR, clip_low=CLIP, clip_high=CLIP,
                       eval_every=10**9, checkpoint_every=10**9, device="cpu", seed=0,
                       measure_entropy_change=entropy_after)


def worker_builtin(n_batches: int, out_json: Path, entropy_after: bool = True) -> None:
    import torch

    from entrodiag.trainer import loop
    from entrodiag.trainer.loop import Trainer

    # + the last step: it evaluates before its rollout and checkpoints after, so neither its interval
    # nor the one before it (which ends after that evaluation) is timed
    cfg = _cfg(n_batches + 2, entropy_after)
    marks: dict[str, list[float]] = {"start": [], "generate": [], "rollout": [], "update": [], "after": []}
    real_generate = loop.generate
    in_rollout = [False]

    def timed_generate(*a, **k):  # only the rollouts' sampling (not the evaluation's)
        t = time.perf_counter()
        r = real_generate(*a, **k)
        if in_rollout[0]:
            marks["generate"].append(time.perf_counter() - t)
        return r

    loop.generate = timed_generate

    class Timed(Trainer):
        def rollout(self, step):
            t = time.perf_counter()
            marks["start"].append(t)
            in_rollout[0] = True
            r = super().rollout(step)
            in_rollout[0] = False
            marks["rollout"].append(time.perf_counter() - t)
            return r

        def update(self, *a, **k):
            t = time.perf_counter()
            r = super().update(*a, **k)
            marks["update"].append(time.perf_counter() - t)
            return r

        def entropy_after(self, *a, **k):
            t = time.perf_counter()
            r = super().entropy_after(*a, **k)
            marks["after"].append(time.perf_counter() - t)
            return r

    from entrodiag import load_run

    with tempfile.TemporaryDirectory() as tmp:
        tr = Timed(cfg, Path(tmp) / "run", progress=False, log=lambda *a, **k: None, handle_signals=False)
        tr.run()
        steps = load_run(Path(tmp) / "run").steps
        check = {"reward_mean": steps["reward_mean"].mean(), "resp_len_mean": steps["resp_len_mean"].mean()}
    gen = marks["generate"]
    batches = [b - a for a, b in zip(marks["start"], marks["start"][1:])][:n_batches]
    out_json.write_text(json.dumps({
        "batch_s": batches, "generate_s": gen[:len(batches)], "score_prep_s": [
            r - g for r, g in zip(marks["rollout"], gen)][:len(batches)],
        "update_s": marks["update"][:len(batches)], "entropy_after_s": marks["after"][:len(batches)],
        "threads": torch.get_num_threads(), "check": check,
    }))


def _hf_char_tokenizer():
    """The tiny model's character tokenizer as a PreTrainedTokenizerFast (same ids, <bos> prepended)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from entrodiag.trainer.model import CharTokenizer

    ct = CharTokenizer()
    tk = Tokenizer(models.WordLevel({t: i for i, t in enumerate(ct.vocab)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", ct.bos_token_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")
    assert tok("37+45=")["input_ids"] == ct.encode("37+45="), "HF tokenizer disagrees with the char tokenizer"
    return tok


def worker_trl(n_batches: int, out_json: Path) -> None:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from entrodiag.trainer.tasks import make_task
    from entrodiag.trainer.warmstart import tiny_policy

    cfg = _cfg(n_batches + 1)
    task = make_task(cfg.task, cfg.val_size, cfg.seed)
    model, _ = tiny_policy(cfg, task, log=lambda *a, **k: None)  # the same cached start weights
    tok = _hf_char_tokenizer()
    data = Dataset.from_dict({"prompt": task.train_prompts, "answer": task.train_answers})

    def exact(completions, answer, **_):
        return [float(c.strip() == a) for c, a in zip(completions, answer)]

    renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__
    no_ckpt = {"activation_checkpointing" if renamed else "gradient_checkpointing": False}
    tmp = tempfile.mkdtemp()
    args = GRPOConfig(
        output_dir=tmp, max_steps=EPOCHS * n_batches, learning_rate=LR, seed=0,
        per_device_train_batch_size=PROMPTS * GROUP, num_generations=GROUP, num_iterations=EPOCHS,
        max_completion_length=NEW_TOKENS, temperature=1.0, beta=0.0, epsilon=CLIP, loss_type="dapo",
        scale_rewards="group", max_grad_norm=1.0, weight_decay=0.0,
        lr_scheduler_type="constant_with_warmup", warmup_steps=EPOCHS * cfg.warmup_steps,
        use_cpu=True, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, **no_ckpt,
    )
    ends: list[float] = []
    split: dict[str, list[float]] = {"generate": [], "gen_score": []}

    class Stamp(TrainerCallback):
        def on_train_begin(self, *a, **k):
            ends.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            ends.append(time.perf_counter())

    class Timed(GRPOTrainer):
        def _generate(self, *a, **k):
            t = time.perf_counter()
            r = super()._generate(*a, **k)
            if self.model.training:
                split["generate"].append(time.perf_counter() - t)
            return r

        def _generate_and_score_completions(self, *a, **k):
            t = time.perf_counter()
            r = super()._generate_and_score_completions(*a, **k)
            if self.model.training:
                split["gen_score"].append(time.perf_counter() - t)
            return r

    trainer = Timed(model=model, processing_class=tok, reward_funcs=exact, args=args, train_dataset=data,
                    callbacks=[Stamp()])
    trainer.train()
    logs = [e for e in trainer.state.log_history if "reward" in e]
    check = {"reward_mean": statistics.mean(e["reward"] for e in logs),
             "resp_len_mean": statistics.mean(e["completions/mean_length"] for e in logs),
             "n_generate_calls": len(split["generate"]), "optimizer_steps": trainer.state.global_step}
    # ends[0] is train begin, ends[k] the end of optimizer step k; batch j = steps 2j+1 .. 2j+2
    batches = [ends[EPOCHS * (j + 1)] - ends[EPOCHS * j] for j in range(n_batches)]
    gen = split["generate"][:n_batches]
    prep = [g - s for g, s in zip(split["gen_score"], gen)]
    out_json.write_text(json.dumps({
        "batch_s": batches, "generate_s": gen, "score_prep_s": prep,
        "update_s": [b - g for b, g in zip(batches, split["gen_score"])], "threads": torch.get_num_threads(),
        "check": check,
    }))


def _run_worker(kind: str, n_batches: int, threads: int, extra: tuple[str, ...] = ()) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.json"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--batches", str(n_batches),
                               "--worker-out", str(out), *extra], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} worker failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        res = json.loads(out.read_text())
    res["process_s"] = time.perf_counter() - t0
    return res


def _summary(res: dict, skip: int) -> dict:
    def med(key):
        return statistics.median(res[key][skip:])

    batch = med("batch_s")
    parts = {k: med(f"{k}_s") for k in ("generate", "score_prep", "update", "entropy_after") if res.get(f"{k}_s")}
    parts["other"] = batch - sum(parts.values())
    parts.setdefault("entropy_after", 0.0)
    return {"batch_s": batch, "rollouts_per_s": PROMPTS * GROUP / batch, **{f"{k}_s": v for k, v in parts.items()},
            "check": res["check"], "process_s": res["process_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=("tiny", "smollm2"), default="tiny", help="matched configuration (default tiny)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds, one process per trainer each (default 5)")
    p.add_argument("--batches", type=int, default=12, help="generation batches per process (default 12)")
    p.add_argument("--skip", type=int, default=3, help="first batches left out of the timing (default 3)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both trainers (default 1)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--no-entropy-after", action="store_true",
                   help="run the built-in trainer with --no-measure-entropy-change (a diagnostic TRL does not make)")
    p.add_argument("--worker", choices=("builtin", "trl"), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        if args.worker == "builtin":
            worker_builtin(args.batches, args.worker_out, not args.no_entropy_after)
        else:
            worker_trl(args.batches, args.worker_out)
        return
    if args.config == "smollm2":
        p.exit(2, "bench_trainer_vs_trl.py: --config smollm2 is not implemented yet (only --config tiny)\n")
    if args.rounds < 1 or args.batches <= args.skip:
        p.error("--rounds must be >= 1 and --batches > --skip")
    try:
        import trl  # noqa: F401
    except ImportError:
        p.exit(2, "bench_trainer_vs_trl.py needs TRL: pip install 'entrodiag[trl]'\n")

    from tqdm.auto import tqdm

    rows = []
    with tqdm(total=2 * args.rounds, desc="processes", unit="proc") as bar:
        for r in range(args.rounds):
            order = ("builtin", "trl") if r % 2 == 0 else ("trl", "builtin")
            got = {}
            for kind in order:
                extra = ("--no-entropy-after",) if kind == "builtin" and args.no_entropy_after else ()
                got[kind] = _summary(_run_worker(kind, args.batches, args.threads, extra), args.skip)
                bar.update(1)
            ratio = got["builtin"]["rollouts_per_s"] / got["trl"]["rollouts_per_s"]
            rows.append({"round": r, "order": list(order), **got, "ratio": ratio})
            bar.write(f"round {r}: built-in {got['builtin']['rollouts_per_s']:.0f} rollouts/s, "
                      f"TRL {got['trl']['rollouts_per_s']:.0f} rollouts/s, ratio {ratio:.2f}")

    def med(kind, key):
        return statistics.median(row[kind][key] for row in rows)

    result = {
        "ratio": statistics.median(r["ratio"] for r in rows),
        "ratios": [r["ratio"] for r in rows],
        "builtin_rollouts_per_s": med("builtin", "rollouts_per_s"),
        "trl_rollouts_per_s": med("trl", "rollouts_per_s"),
        "split_s": {kind: {k: med(kind, f"{k}_s") for k in SPLIT}
                    for kind in ("builtin", "trl")},
        "rounds": rows,
        "setup": {"prompts": PROMPTS, "group_size": GROUP, "max_new_tokens": NEW_TOKENS, "epochs": EPOCHS,
                  "batches_per_process": args.batches, "skipped": args.skip, "threads": args.threads,
                  "builtin_entropy_after": not args.no_entropy_after},
    }
    print(f"\ntiny, {args.rounds} rounds, OMP_NUM_THREADS={args.threads}, {args.batches - args.skip} timed batches "
          f"of {PROMPTS * GROUP} rollouts per process (medians)")
    print(f"{'':10s}{'rollouts/s':>11s}" + "".join(f"{k:>14s}" for k in SPLIT))
    for kind, name in (("builtin", "built-in"), ("trl", "TRL")):
        s = result["split_s"][kind]
        print(f"{name:10s}{result[f'{kind}_rollouts_per_s']:11.0f}" + "".join(f"{s[k]:14.3f}" for k in SPLIT))
    for kind in ("builtin", "trl"):
        print(f"{kind} checks (last round): {rows[-1][kind]['check']}")
    print(f"paired ratios {', '.join(f'{x:.2f}' for x in result['ratios'])}; median {result['ratio']:.2f} "
          f"(target >= 2.5: {'met' if result['ratio'] >= 2.5 else 'missed'})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"tiny": result}, indent=1))


if __name__ == "__main__":
    main()
