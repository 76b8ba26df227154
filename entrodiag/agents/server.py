"""``entrodiag mcp``: the agent tools (``tools``) as an MCP server on the official ``mcp`` SDK,
over stdio (default) or streamable HTTP on 127.0.0.1 (``--http``; ``--host`` to listen elsewhere).

Tools: list_runs, diagnose, compare, tail, query, forecast. Resources: each run's run.json
(``entrodiag://run/{run_id}/run.json``, a ``/`` in run_id percent-encoded: ``tools.resource_uri``)
and its latest report PDF (``entrodiag://run/{run_id}/report.pdf``). Prompts: why_is_my_run_collapsing, compare_these_runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..analysis.runs import AnalysisError
from ..store.rundir import RunError
from ..store.schema import RUN_JSON
from . import tools
from .confine import checked_root, resolve_run

#: What the server tells a client it is for (the MCP ``instructions``).
INSTRUCTIONS = (
    "entrodiag reads RL fine-tuning runs (GRPO and relatives) under one folder and says whether the policy's "
    "entropy is collapsing, how far the entropy law's ceiling is, what to change and which run is better. "
    "Start with list_runs; pass its run_id to diagnose, forecast, tail (poll a live run, passing next_since back "
    "as since) and compare; query runs SQL over the tables runs, steps, evals, events, samples, tokens, "
    "spans (read-only).")


class MissingExtra(RuntimeError):
    """The ``mcp`` package is not installed (the message names the extra)."""


def require_sdk() -> None:
    """``MissingExtra`` with a one-line install hint when the ``mcp`` SDK is absent."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise MissingExtra("entrodiag mcp needs the MCP SDK: pip install 'entrodiag[mcp]'") from None


def latest_report(root: Path, run_dir: Path) -> Path | None:
    """The newest report PDF of a run: one inside its folder, or ``<root>/reports/<run_id>.pdf``
    (``entrodiag report``'s default name), each only when it lies under ``root``."""
    import json

    try:
        rid = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError):
        rid = None
    found = list(run_dir.glob("*.pdf"))
    if rid:
        found += [p for p in (root / "reports").glob("*.pdf") if p.stem == rid]
    found = [p for p in found if p.is_file() and p.resolve().is_relative_to(root)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


#: The errors a tool answers with their one-line message (the agent's input was wrong, or the run
#: lacks what was asked); anything else is a bug and is reported as such by the SDK.
USER_ERRORS = (RunError, AnalysisError, ValueError, OSError)


def answering(fn: Callable[..., Any], error: type[Exception]) -> Callable[..., Any]:
    """``fn`` raising ``error`` (the SDK's ``ToolError`` or ``ResourceError``) with the one-line
    message of a ``USER_ERRORS`` exception, so the agent reads why and what to do."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise error(str(e)) from None
    return call


def build_server(root: str | os.PathLike):
    """The MCP server over the runs under ``root`` (a local folder)."""
    require_sdk()
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
    from mcp.types import ToolAnnotations

    base = checked_root(root)
    server = MCPServer("entrodiag", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    ro = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)

    def tool(fn):
        return server.tool(annotations=ro)(answering(fn, ToolError))

    def resource(uri: str, mime_type: str):
        return lambda fn: server.resource(uri, mime_type=mime_type)(answering(fn, ResourceError))

    @tool
    def list_runs(filter: str | None = None) -> dict[str, Any]:
        """The runs under the server's root: run_id (what the other tools take), status, model, steps, last
        step and entropy, worst flag. filter: text the run_id, status, model, task or intervention contains."""
        return tools.list_runs(base, filter)

    @tool
    def diagnose(run: str, metric: str | None = None) -> dict[str, Any]:
        """The run's diagnosis (entrodiag analyze --json, schema_version'd) with a plain-language summary:
        entropy dynamics, the entropy law and its ceiling, the forecast, collapse flags with advice, the
        mechanism check. metric: R of the law (an evaluation name such as val/accuracy); default chosen."""
        return tools.diagnose(base, run, metric)

    @tool
    def compare(runs: list[str], metric: str | None = None) -> dict[str, Any]:
        """Runs side by side: entropy start/end, R (final, best), the law's a, b, ceiling and verdict, flags."""
        return tools.compare(base, runs, metric)

    @tool
    def tail(run: str, since_step: int = -1, since: dict[str, int] | None = None) -> dict[str, Any]:
        """New step rows, evaluations and events of a live run (-1: from the start), one cursor per
        table: pass the answer's next_since back as since to read on (since_step starts all three)."""
        return tools.tail(base, run, since_step, since)

    @tool
    def query(sql: str) -> dict[str, Any]:
        """DuckDB SQL over the runs (read-only): tables runs, steps, evals, events, samples, tokens, spans,
        each with run_id. Example: select run_id, max(step), min(entropy_mean) from steps group by run_id."""
        return tools.query(base, sql)

    @tool
    def forecast(run: str, metric: str | None = None) -> dict[str, Any]:
        """When the run's entropy reaches its floor (half its start) with an interval, and the final R the
        entropy law predicts with its interval, plus the law's ceiling."""
        return tools.forecast(base, run, metric)

    @resource("entrodiag://run/{run_id}/run.json", "application/json")
    def run_json(run_id: str) -> str:
        """A run's run.json (metadata: status, model, task, config)."""
        return (resolve_run(base, run_id) / RUN_JSON).read_text(encoding="utf-8")

    @resource("entrodiag://run/{run_id}/report.pdf", "application/pdf")
    def report_pdf(run_id: str) -> bytes:
        """The run's latest report PDF (entrodiag report), if one was written."""
        pdf = latest_report(base, resolve_run(base, run_id))
        if pdf is None:
            raise ValueError(f"{run_id}: no report PDF yet (entrodiag report {run_id} writes one)")
        return pdf.read_bytes()

    @server.prompt()
    def why_is_my_run_collapsing(run: str) -> str:
        """Ask why a run's entropy is collapsing and what to change."""
        return (f"Why is my RL run {run!r} collapsing? Call the entrodiag tool diagnose with run={run!r} (and "
                f"forecast for when the entropy runs out). Explain the collapse flags and their evidence in plain "
                "words, say how much performance the entropy law leaves (its ceiling) and recommend the one or two "
                "changes its advice names, with the numbers that support them.")

    @server.prompt()
    def compare_these_runs(runs: str) -> str:
        """Ask which of several runs (comma-separated run_ids) is better and why."""
        names = [r.strip() for r in runs.split(",") if r.strip()]
        return (f"Compare these RL runs: {', '.join(names)}. Call the entrodiag tool compare with runs={names!r}, "
                "then diagnose on any run that looks worse. Say which run is better on held-out R, which keeps "
                "more entropy, whose ceiling is higher, and what made the difference (intervention, flags).")

    return server


def serve(root: str | os.PathLike, *, http: bool = False, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the server: stdio, or streamable HTTP at http://HOST:PORT/mcp with ``http``."""
    server = build_server(root)
    if not http:
        server.run("stdio")
        return
    from mcp.server.transport_security import TransportSecuritySettings

    local = host in ("127.0.0.1", "localhost", "::1")
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=local,
        allowed_hosts=[f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")] if local else [],
        allowed_origins=[f"http://{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")] if local else [])
    server.run("streamable-http", host=host, port=port, transport_security=security)
