"""Rollouts per second of the built-in GRPO trainer (``entrodiag train``) against TRL's GRPOTrainer.

    python benchmarks/bench_trainer_vs_trl.py --config tiny,smollm2 --rounds 3 --json benchmarks/results/vs_trl.json

Two matched configurations (``--config``; several are alternated round by round in one run):

- ``tiny``: the demo's warm-started tiny Llama (read from the warm-start cache), the addition
  task's training prompts, 64 prompts x 8 samples per generation batch (512 rollouts), at most 4
  new tokens; lr 5e-4; 12 batches per process, the first 3 untimed.
- ``smollm2``: SmolLM2-135M-Instruct (``--model smollm2-135m``: the converted GGUF folder in the
  model cache; TRL gets the same weights, loaded by the same function, and the same tokenizer),
  the word-arith task through the chat template (the script checks that TRL's templated prompt has
  the built-in trainer's token ids and the same end-of-turn token), 8 prompts x 4 samples (32
  rollouts), at most 16 new tokens; lr 5e-6; 3 batches per process, the first one untimed.

Both: T = 1, 2 optimizer passes per generation batch (entrodiag ``epochs=2``, TRL
``num_iterations=2``), token-level loss aggregation (entrodiag: sum over the batch's tokens /
their number; TRL's default ``loss_type="dapo"``, the same on one process), PPO clip 0.2, no KL
(``beta=0``), AdamW, grad-clip 1.0, fp32 on CPU, the task's own checker as reward. TRL's
CPU-hostile defaults are turned off as a user would: gradient (activation) checkpointing off, bf16
off; its logging, saving and progress bar off.

Each trainer runs in its own process (``--worker``), the two alternating for ``--rounds`` rounds
(the order flips every round), with the same ``OMP_NUM_THREADS`` (``--threads``). Only
steady-state generation batches are timed: imports, model loading, trainer construction and the
first ``--skip`` batches are left out, and so is the built-in trainer's last step (it evaluates;
its final checkpoint is skipped). A batch's time is the interval between the trainers' own step
timestamps: the start of consecutive rollouts (entrodiag) or the end of every second optimizer
step (TRL, a callback). The process CPU time over the same intervals is recorded too: on a shared
machine, with one thread per process, the CPU-time ratio moves much less with other load than the
wall-time ratio (the target is stated on the wall-time ratio).
The split: ``generate`` is the sampling call alone (entrodiag ``generate``, TRL ``_generate``);
``score_prep`` the rest of the rollout (decoding, rewards, advantages; for TRL also the
tokenising, padding and the extra forward pass for the old log-probs); ``update`` the optimizer
passes (for TRL: the batch's time less its generation and scoring, so it holds the Trainer's own
bookkeeping and logging too); ``entropy_after`` the built-in trainer's after-update entropy pass
(a diagnostic TRL does not make); ``other`` the remainder (entrodiag: the Recorder and the loop).

The built-in trainer runs with its defaults as ``entrodiag train`` uses them (recording every step,
after-update entropy on), except that evaluation and checkpoints fall outside the timed steps.
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
CLIP = 0.2
CONFIGS = {
    # preset, prompts x group per generation batch, new tokens, optimizer passes per batch, lr,
    # held-out prompts (evaluated only outside the timed batches), batches per process, skipped
    "tiny": {"preset": "tiny-arith", "prompts": 64, "group": 8, "new_tokens": 4, "epochs": 2, "lr": 5e-4,
             "val_size": 500, "batches": 12, "skip": 3},
    "smollm2": {"preset": "smollm2-arith", "prompts": 8, "group": 4, "new_tokens": 16, "epochs": 2, "lr": 5e-6,
                "val_size": 8, "batches": 3, "skip": 1},
}


DEVICE = "cpu"  # a worker's device (--device)


def _now() -> float:
    """A timestamp after the device's queued work (CUDA kernels run asynchronously)."""
    if DEVICE == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter()


def _cfg(config: str, steps: int, entropy_after: bool = True):
    from entrodiag.trainer import load_config

    c = CONFIGS[config]
    # evaluation runs at step 0 and the last step, checkpoints at the last: both outside the timed steps
    return load_config(c["preset"], steps=steps, prompts_per_step=c["prompts"], group_size=c["group"],
                       max_new_tokens=c["new_tokens"], epochs=c["epochs"], lr=c["lr"], clip_low=CLIP,
                       clip_high=CLIP, val_size=c["val_size"], micro_batch_size=0, cpu_bf16=False,
                       eval_every=10**9, checkpoint_every=10**9, device=DEVICE, seed=0,
                       measure_entropy_change=entropy_after)


def worker_builtin(config: str, n_batches: int, out_json: Path | None, entropy_after: bool = True,
                   profile_from: int | None = None) -> None:
    """One built-in trainer process; with ``profile_from``, torch.profiler records the batches from
    that one to the last timed one and the top operators are printed (``--profile``)."""
    import torch

    from entrodiag.trainer import loop
    from entrodiag.trainer.loop import Trainer

    # + the last step: it evaluates before its rollout, so neither its interval nor the one before
    # it (which ends after that evaluation) is timed
    cfg = _cfg(config, n_batches + 2, entropy_after)
    marks: dict[str, list[float]] = {"start": [], "cpu": [], "generate": [], "rollout": [], "update": [], "after": []}
    real_generate = loop.generate
    in_rollout = [False]

    def timed_generate(*a, **k):  # only the rollouts' sampling (not the evaluation's)
        t = _now()
        r = real_generate(*a, **k)
        if in_rollout[0]:
            marks["generate"].append(_now() - t)
        return r

    loop.generate = timed_generate

    prof = None

    class Timed(Trainer):
        def rollout(self, step):
            nonlocal prof
            if profile_from is not None and step == profile_from:
                prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                prof.__enter__()
            elif prof is not None and step == n_batches:
                prof.__exit__(None, None, None)
            t = _now()
            marks["start"].append(t)
            marks["cpu"].append(time.process_time())
            in_rollout[0] = True
            r = super().rollout(step)
            in_rollout[0] = False
            marks["rollout"].append(_now() - t)
            return r

        def update(self, *a, **k):
            t = _now()
            r = super().update(*a, **k)
            marks["update"].append(_now() - t)
            return r

        def entropy_after(self, *a, **k):
            t = _now()
            r = super().entropy_after(*a, **k)
            marks["after"].append(_now() - t)
            return r

        def checkpoint(self, step):  # only the last step checkpoints, after the timed batches: skip
            return True              # writing 1.6 GB of SmolLM2 weights and optimizer state

    from entrodiag import load_run

    with tempfile.TemporaryDirectory() as tmp:
        tr = Timed(cfg, Path(tmp) / "run", progress=False, log=lambda *a, **k: None, handle_signals=False)
        tr.run()
        steps = load_run(Path(tmp) / "run").steps
        check = {"reward_mean": steps["reward_mean"].mean(), "resp_len_mean": steps["resp_len_mean"].mean()}
    gen = marks["generate"]
    batches = [b - a for a, b in zip(marks["start"], marks["start"][1:])][:n_batches]
    cpu = [b - a for a, b in zip(marks["cpu"], marks["cpu"][1:])][:n_batches]
    if prof is not None:
        k = profile_from
        med = statistics.median
        print(f"built-in trainer, {config}, batches {k}..{n_batches - 1} (medians, s): batch {med(batches[k:]):.4f}, "
              f"process CPU {med(cpu[k:]):.4f}, generate {med(gen[k:n_batches]):.4f}, "
              f"update {med(marks['update'][k:n_batches]):.4f}, "
              f"entropy after {med(marks['after'][k:n_batches]) if marks['after'] else 0.0:.4f}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    if out_json is None:
        return
    out_json.write_text(json.dumps({
        "batch_s": batches, "cpu_s": cpu, "generate_s": gen[:len(batches)], "score_prep_s": [
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


def _trl_model_and_data(config: str, cfg):
    """The start weights, the tokenizer and the prompts as TRL takes them, checked against the
    built-in trainer's prompt token ids."""
    from datasets import Dataset

    from entrodiag.trainer.tasks import make_task

    task = make_task(cfg.task, cfg.val_size, cfg.seed)
    if config == "tiny":
        from entrodiag.trainer.warmstart import tiny_policy

        model, _ = tiny_policy(cfg, task, log=lambda *a, **k: None)  # the same cached start weights
        tok = _hf_char_tokenizer()
        return model, tok, Dataset.from_dict({"prompt": task.train_prompts, "answer": task.train_answers}), task

    from entrodiag.trainer.model import load_policy

    # SmolLM2-135M-Instruct from the same converted folder the built-in trainer reads, fp32; the
    # prompts are conversational, so TRL applies the same chat template (its default system turn)
    model, ours = load_policy(cfg.model, log=lambda *a, **k: None)
    tok = ours.tok
    first = [{"role": "user", "content": task.train_prompts[0]}]
    theirs = tok.apply_chat_template(first, tokenize=False, add_generation_prompt=True)
    assert tok(theirs, add_special_tokens=False)["input_ids"] == ours.encode_prompt(task.train_prompts[0]), \
        "TRL's chat-templated prompt differs from the built-in trainer's"
    assert tok.eos_token_id == ours.eos_token_id, "TRL would stop at another token than the built-in trainer"
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in task.train_prompts],
                              "answer": task.train_answers})
    return model, tok, data, task


def worker_trl(config: str, n_batches: int, out_json: Path) -> None:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    c = CONFIGS[config]
    cfg = _cfg(config, n_batches + 1)
    model, tok, data, task = _trl_model_and_data(config, cfg)

    def exact(completions, answer, **_):  # the task's own checker on the completion text
        texts = [x[-1]["content"] if isinstance(x, list) else x for x in completions]
        return [task.score(t, a) for t, a in zip(texts, answer)]

    renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__
    no_ckpt = {"activation_checkpointing" if renamed else "gradient_checkpointing": False}
    tmp = tempfile.mkdtemp()
    args = GRPOConfig(
        output_dir=tmp, max_steps=c["epochs"] * n_batches, learning_rate=c["lr"], seed=0,
        per_device_train_batch_size=c["prompts"] * c["group"], num_generations=c["group"],
        num_iterations=c["epochs"], max_completion_length=c["new_tokens"], temperature=1.0, beta=0.0,
        epsilon=CLIP, loss_type="dapo", scale_rewards="group", max_grad_norm=1.0, weight_decay=0.0,
        lr_scheduler_type="constant_with_warmup", warmup_steps=c["epochs"] * cfg.warmup_steps,
        use_cpu=DEVICE == "cpu", bf16=DEVICE == "cuda", report_to="none", save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, **no_ckpt,
    )
    ends: list[float] = []
    cpu_ends: list[float] = []
    split: dict[str, list[float]] = {"generate": [], "gen_score": []}

    class Stamp(TrainerCallback):
        def on_train_begin(self, *a, **k):
            ends.append(_now())
            cpu_ends.append(time.process_time())

        def on_step_end(self, *a, **k):
            ends.append(_now())
            cpu_ends.append(time.process_time())

    class Timed(GRPOTrainer):
        def _generate(self, *a, **k):
            t = _now()
            r = super()._generate(*a, **k)
            if self.model.training:
                split["generate"].append(_now() - t)
            return r

        def _generate_and_score_completions(self, *a, **k):
            t = _now()
            r = super()._generate_and_score_completions(*a, **k)
            if self.model.training:
                split["gen_score"].append(_now() - t)
            return r

    trainer = Timed(model=model, processing_class=tok, reward_funcs=exact, args=args, train_dataset=data,
                    callbacks=[Stamp()])
    trainer.train()
    logs = [e for e in trainer.state.log_history if "reward" in e]
    check = {"reward_mean": statistics.mean(e["reward"] for e in logs),
             "resp_len_mean": statistics.mean(e["completions/mean_length"] for e in logs),
             "n_generate_calls": len(split["generate"]), "optimizer_steps": trainer.state.global_step}
    # ends[0] is train begin, ends[k] the end of optimizer step k; batch j = steps 2j+1 .. 2j+2
    e = c["epochs"]
    batches = [ends[e * (j + 1)] - ends[e * j] for j in range(n_batches)]
    cpu = [cpu_ends[e * (j + 1)] - cpu_ends[e * j] for j in range(n_batches)]
    gen = split["generate"][:n_batches]
    prep = [g - s for g, s in zip(split["gen_score"], gen)]
    out_json.write_text(json.dumps({
        "batch_s": batches, "cpu_s": cpu, "generate_s": gen, "score_prep_s": prep,
        "update_s": [b - g for b, g in zip(batches, split["gen_score"])], "threads": torch.get_num_threads(),
        "check": check,
    }))


def _run_worker(kind: str, config: str, n_batches: int, threads: int, extra: tuple[str, ...] = ()) -> dict:
    extra = (*extra, "--device", DEVICE)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.json"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--config", config, "--batches",
                               str(n_batches), "--worker-out", str(out), *extra], env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} worker ({config}) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        res = json.loads(out.read_text())
    res["process_s"] = time.perf_counter() - t0
    return res


def _summary(res: dict, skip: int, rollouts: int) -> dict:
    def med(key):
        return statistics.median(res[key][skip:])

    batch = med("batch_s")
    parts = {k: med(f"{k}_s") for k in ("generate", "score_prep", "update", "entropy_after") if res.get(f"{k}_s")}
    parts["other"] = batch - sum(parts.values())
    parts.setdefault("entropy_after", 0.0)
    return {"batch_s": batch, "rollouts_per_s": rollouts / batch, **{f"{k}_s": v for k, v in parts.items()},
            "cpu_batch_s": med("cpu_s"), "rollouts_per_cpu_s": rollouts / med("cpu_s"),
            "check": res["check"], "process_s": res["process_s"]}


TARGETS = {"tiny": 2.5, "smollm2": 1.5}


def _load() -> str:
    try:
        return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load unknown"


def _configs(text: str) -> list[str]:
    names = list(CONFIGS) if text == "all" else [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--config takes {', '.join(CONFIGS)} (comma-separated) or all, got {text!r}")
    return names


def _check_smollm2() -> str | None:
    """Why the SmolLM2 configuration cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        return "the gguf package is not installed (pip install 'entrodiag[gguf]')"
    try:
        from entrodiag.trainer.model import resolve_model

        resolve_model("smollm2-135m", log=lambda *a, **k: None)
    except Exception as e:  # not cached and no registry: say so, as the real-model tests do
        return f"SmolLM2-135M-Instruct is not available ({e})"
    return None


def _results(plan: dict, rows: dict, n_rounds: dict, args) -> dict:
    """Medians over the rounds done so far, per configuration."""
    results = {}
    for config, (n_batches, skip) in plan.items():
        c, rs = CONFIGS[config], rows[config]
        if not rs:
            continue

        def med(kind, key, rs=rs):
            return statistics.median(row[kind][key] for row in rs)

        results[config] = {
            "ratio": statistics.median(r["ratio"] for r in rs),
            "ratios": [r["ratio"] for r in rs],
            "cpu_ratio": statistics.median(r["cpu_ratio"] for r in rs),
            "cpu_ratios": [r["cpu_ratio"] for r in rs],
            "target": TARGETS[config],
            "builtin_rollouts_per_s": med("builtin", "rollouts_per_s"),
            "trl_rollouts_per_s": med("trl", "rollouts_per_s"),
            "split_s": {kind: {k: med(kind, f"{k}_s") for k in SPLIT} for kind in ("builtin", "trl")},
            "cpu_batch_s": {kind: med(kind, "cpu_batch_s") for kind in ("builtin", "trl")},
            "rounds": rs,
            "setup": {"preset": c["preset"], "prompts": c["prompts"], "group_size": c["group"],
                      "max_new_tokens": c["new_tokens"], "epochs": c["epochs"], "lr": c["lr"],
                      "batches_per_process": n_batches, "skipped": skip, "threads": args.threads,
                      "device": DEVICE, "rounds_done": len(rs), "rounds_planned": n_rounds[config],
                      "builtin_entropy_after": not args.no_entropy_after},
        }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return results


def _print_result(config: str, result: dict) -> None:
    st = result["setup"]
    rollouts = st["prompts"] * st["group_size"]
    print(f"\n{config} on {st['device']}, {st['rounds_done']} rounds, OMP_NUM_THREADS={st['threads']}, "
          f"{st['batches_per_process'] - st['skipped']} timed batches of {rollouts} rollouts per process (medians)")
    print(f"{'':10s}{'rollouts/s':>11s}" + "".join(f"{k:>14s}" for k in SPLIT) + f"{'CPU s/batch':>14s}")
    for kind, name in (("builtin", "built-in"), ("trl", "TRL")):
        sp = result["split_s"][kind]
        print(f"{name:10s}{result[f'{kind}_rollouts_per_s']:11.1f}" + "".join(f"{sp[k]:14.3f}" for k in SPLIT)
              + f"{result['cpu_batch_s'][kind]:14.3f}")
    for kind in ("builtin", "trl"):
        print(f"{kind} checks (last round): {result['rounds'][-1][kind]['check']}")
    met = "met" if result["ratio"] >= result["target"] else "missed"
    print(f"paired ratios {', '.join(f'{x:.2f}' for x in result['ratios'])}; median {result['ratio']:.2f} "
          f"(target >= {result['target']}: {met})")
    print(f"CPU-time ratios {', '.join(f'{x:.2f}' for x in result['cpu_ratios'])}; median {result['cpu_ratio']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=_configs, default=["tiny"],
                   help="matched configuration(s): tiny, smollm2, a comma-separated list or all; several are "
                        "alternated round by round in the same run (default tiny)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds, one process per trainer and "
                   "configuration each (default 5)")
    p.add_argument("--smollm2-rounds", type=int, help="rounds of the smollm2 configuration, when fewer than "
                   "--rounds (minutes per process on a CPU; it joins the first rounds)")
    p.add_argument("--batches", type=int, help="generation batches per process (default: tiny 12, smollm2 3)")
    p.add_argument("--smollm2-batches", type=int, help="generation batches per smollm2 process (overrides --batches)")
    p.add_argument("--skip", type=int, help="first batches left out of the timing (default: tiny 3, smollm2 1)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both trainers (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (fp32, the matched configuration above) or cuda (both trainers in bf16 autocast: "
                        "the built-in trainer's CUDA default, TRL's bf16=True)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--no-entropy-after", action="store_true",
                   help="run the built-in trainer with --no-measure-entropy-change (a diagnostic TRL does not make)")
    p.add_argument("--profile", action="store_true",
                   help="profile the built-in trainer instead (one process, torch.profiler over the timed "
                        "batches of the first --config): the split and the top operators by CPU time")
    p.add_argument("--worker", choices=("builtin", "trl"), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    global DEVICE
    DEVICE = args.device
    if args.worker:
        (config,) = args.config
        if args.worker == "builtin":
            worker_builtin(config, args.batches, args.worker_out, not args.no_entropy_after)
        else:
            worker_trl(config, args.batches, args.worker_out)
        return
    plan = {c: (args.batches or CONFIGS[c]["batches"], CONFIGS[c]["skip"] if args.skip is None else args.skip)
            for c in args.config}
    if "smollm2" in plan and args.smollm2_batches:
        plan["smollm2"] = (args.smollm2_batches, plan["smollm2"][1])
    if args.profile:
        import torch

        torch.set_num_threads(args.threads)
        config = args.config[0]
        worker_builtin(config, plan[config][0], None, not args.no_entropy_after, profile_from=plan[config][1])
        return
    n_rounds = {c: args.rounds for c in plan}
    if "smollm2" in plan and args.smollm2_rounds is not None:
        n_rounds["smollm2"] = min(args.rounds, args.smollm2_rounds)
    if min(n_rounds.values()) < 1 or any(b <= k or k < 0 for b, k in plan.values()):
        p.error("--rounds (and --smollm2-rounds) must be >= 1 and --batches > --skip >= 0")
    try:
        import trl  # noqa: F401
    except ImportError:
        p.exit(2, "bench_trainer_vs_trl.py needs TRL: pip install 'entrodiag[trl]'\n")
    if DEVICE == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.exit(2, "bench_trainer_vs_trl.py: --device cuda but CUDA is not available\n")
    if "smollm2" in plan and (why := _check_smollm2()):
        p.exit(2, f"bench_trainer_vs_trl.py: --config smollm2 cannot run: {why}\n")

    from tqdm.auto import tqdm

    rows: dict[str, list[dict]] = {c: [] for c in plan}
    with tqdm(total=2 * sum(n_rounds.values()), desc="processes", unit="proc") as bar:
        for r in range(args.rounds):
            for config, (n_batches, skip) in plan.items():
                if r >= n_rounds[config]:
                    continue
                c = CONFIGS[config]
                order = ("builtin", "trl") if r % 2 == 0 else ("trl", "builtin")
                got = {}
                for kind in order:
                    extra = ("--no-entropy-after",) if kind == "builtin" and args.no_entropy_after else ()
                    res = _run_worker(kind, config, n_batches, args.threads, extra)
                    got[kind] = _summary(res, skip, c["prompts"] * c["group"])
                    bar.update(1)
                ratio = got["builtin"]["rollouts_per_s"] / got["trl"]["rollouts_per_s"]
                cpu_ratio = got["builtin"]["rollouts_per_cpu_s"] / got["trl"]["rollouts_per_cpu_s"]
                rows[config].append({"round": r, "order": list(order), **got, "ratio": ratio, "cpu_ratio": cpu_ratio})
                _results(plan, rows, n_rounds, args)  # written after every round: a cut run keeps its rounds
                bar.write(f"round {r} {config}: built-in {got['builtin']['rollouts_per_s']:.1f} rollouts/s, "
                          f"TRL {got['trl']['rollouts_per_s']:.1f} rollouts/s, ratio {ratio:.2f} "
                          f"(CPU-time ratio {cpu_ratio:.2f}; {_load()})")

    results = _results(plan, rows, n_rounds, args)
    for config, result in results.items():
        _print_result(config, result)


if __name__ == "__main__":
    main()
