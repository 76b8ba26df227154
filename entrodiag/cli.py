"""The ``entrodiag`` command line.

Each command is a small function registered in ``COMMANDS``; heavy modules (torch, polars,
transformers) are imported inside the command that needs them, so ``entrodiag --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
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


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory (or a folder holding exactly one run)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


@command("inspect", _inspect_args)
def inspect(args: argparse.Namespace) -> int:
    """Show what a run directory holds: status, tables, the first and last step."""
    import warnings

    import polars as pl

    from .store import load_run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(args.run)
        steps = run.steps
        counts = {t: run.scan(t).select(pl.len()).collect().item() for t in ("tokens", "samples", "spans", "evals")}
        evals = run.evals
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
        "warnings": [str(w.message) for w in caught],
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
    for w in summary["warnings"]:
        print(f"warning    {w}")
    if not summary["steps"]:
        print("no step rows yet: a Recorder writes them on flush (every flush_interval_s) and on close")
    return 0


def _pick(row) -> dict:
    keys = ("step", "n_tokens", "entropy_mean", "reward_mean", "cov_mean", "resp_len_mean")
    return {k: row[k][0] for k in keys if k in row.columns} if row.height else {}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from .store.reader import RunError

    try:
        return args._run(args)
    except RunError as e:
        print(f"entrodiag {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
