"""``entrodiag mcp``: serve the runs under a folder to coding agents (an MCP server)."""

from __future__ import annotations

import argparse
import sys


def add_mcp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="runs", metavar="ROOT",
                   help="the folder of runs the server reads (nothing outside it; default: %(default)s)")
    p.add_argument("--http", action="store_true",
                   help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    p.add_argument("--host", default="127.0.0.1",
                   help="with --http, the address to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="with --http, the port (default: %(default)s)")


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the runs under ROOT to coding agents: an MCP server (stdio; --http for streamable HTTP on
    127.0.0.1) with the tools list_runs, diagnose, compare, tail, query (read-only SQL) and forecast, each
    run's run.json and report PDF as resources, and two prompts. Reads only under ROOT and writes into no
    run folder. Needs the mcp extra: pip install 'entrodiag[mcp]'."""
    from ..agents.server import MissingExtra, serve

    if args.host != "127.0.0.1" and not args.http:
        print("entrodiag mcp: --host takes effect with --http only (stdio opens no port)", file=sys.stderr)
        return 2
    try:
        serve(args.root, http=args.http, host=args.host, port=args.port)
    except MissingExtra as e:
        print(f"entrodiag mcp: {e}", file=sys.stderr)
        return 2
    return 0
