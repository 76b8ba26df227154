"""The ``entrodiag`` command line: the parser, ``main`` and the table of commands.

Each command is a function ``cmd_<name>(args) -> exit code`` with its arguments added by
``add_<name>_args(parser)``, grouped by job: ``runs`` (inspect, compact, query), ``training``
(train, demo, probe), ``import_logs`` (import), ``diagnose`` (analyze, report, watch, dashboard).
Heavy modules (torch, polars, transformers) are imported inside the command that needs them, so
``entrodiag --help`` is instant.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

from .. import __version__
from .diagnose import (add_analyze_args, add_dashboard_args, add_report_args, add_watch_args, cmd_analyze,
                       cmd_dashboard, cmd_report, cmd_watch)
from .agents import add_mcp_args, cmd_mcp
from .import_logs import add_import_args, cmd_import
from .runs import RUN_HELP, add_compact_args, add_inspect_args, add_query_args, cmd_compact, cmd_inspect, cmd_query
from .training import add_demo_args, add_probe_args, add_train_args, cmd_demo, cmd_probe, cmd_train

#: every subcommand: name -> (adds its arguments, runs it and returns the exit code), in help order
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "inspect": (add_inspect_args, cmd_inspect),
    "compact": (add_compact_args, cmd_compact),
    "train": (add_train_args, cmd_train),
    "demo": (add_demo_args, cmd_demo),
    "import": (add_import_args, cmd_import),
    "analyze": (add_analyze_args, cmd_analyze),
    "report": (add_report_args, cmd_report),
    "watch": (add_watch_args, cmd_watch),
    "probe": (add_probe_args, cmd_probe),
    "query": (add_query_args, cmd_query),
    "dashboard": (add_dashboard_args, cmd_dashboard),
    "mcp": (add_mcp_args, cmd_mcp),
}


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
    from ..store.location import LocationError, is_url
    from ..store.reader import RunError

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


__all__ = ["COMMANDS", "RUN_HELP", "build_parser", "cmd_analyze", "cmd_compact", "cmd_dashboard", "cmd_demo", "cmd_import",
           "cmd_inspect", "cmd_mcp", "cmd_probe", "cmd_query", "cmd_report", "cmd_train", "cmd_watch", "main"]
