"""The commands that judge and show runs: ``analyze`` (with its exit codes), ``report``, ``watch``,
``dashboard``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from .runs import RUN_HELP


def add_analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="print the analysis as JSON (the same numbers; with "
                   "schema_version, schema entrodiag/schemas/diagnosis.schema.json)")
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


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyse a run: the entropy law and its ceiling, collapse flags with advice, the mechanism.

    Prints the entropy dynamics, the fitted law R = -a*exp(H) + b with its ceiling b - a and the
    early prediction, collapse flags with the intervention to try, the entropy-mechanism check
    and token analyses. --fail-on makes it exit 1 when a flag of that severity or worse is raised;
    a path that is not a run exits 2."""
    try:
        return analyze_and_print(args.run, as_json=args.json, fail_on=args.fail_on,
                                 thresholds=_thresholds(args.threshold), metric=args.metric)
    except ValueError as e:  # a malformed or unknown threshold
        print(f"entrodiag analyze: {e}", file=sys.stderr)
        return 2


def analyze_and_print(path: str, *, as_json: bool = False, fail_on: str | None = None,
                      thresholds: dict[str, float] | None = None, out: IO[str] | None = None,
                      metric: str | None = None) -> int:
    """Print ``analyze_run``'s analysis (rich tables, or JSON); 1 when ``fail_on`` (or worse) was
    flagged, else 0.

    ``thresholds`` override ``CollapseThresholds`` fields (an unknown name raises ``ValueError``).
    ``RunError`` (not a run) propagates; ``main`` maps it to exit code 2.
    """
    from ..analysis.collapse import severity_rank
    from ..analysis.render import render_summary
    from ..analysis.summary import analyze_run
    from ..schemas import stamp

    if fail_on is not None:
        severity_rank(fail_on)
    summary = analyze_run(path, thresholds=thresholds, metric=metric)
    out = out or sys.stdout
    if as_json:
        out.write(json.dumps(stamp(summary), indent=2, allow_nan=False) + "\n")
    else:
        render_summary(summary, file=out)
    if fail_on is None:
        return 0
    bad = [f for f in summary["flags"]["items"] if severity_rank(f["severity"]) >= severity_rank(fail_on)]
    if bad:
        kinds = ", ".join(f"{f['kind']} ({f['severity']})" for f in bad)
        print(f"entrodiag analyze: {len(bad)} flag(s) at or above {fail_on}: {kinds}", file=sys.stderr)
        return 1
    return 0


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


def add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("-o", "--output", metavar="PATH", help="the PDF to write (default: reports/<run_id>.pdf)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                   help="other runs, local paths or URLs (e.g. the same task under other interventions) "
                   "for a comparison page")
    _metric_arg(p)


def cmd_report(args: argparse.Namespace) -> int:
    """Write a PDF diagnostic report of a run: summary with verdict, flags and advice, dynamics,
    the entropy law, the entropy distribution and forking tokens, example responses, the mechanism
    check and the configuration; --compare adds a page with other runs side by side. A path that
    is not a run, or a run without step rows (nothing recorded yet), exits 2."""
    from pathlib import Path

    from ..report import build_report
    from ..store import load_run

    run = load_run(args.run)
    if run.steps.is_empty():  # a report of nothing would read "no collapse detected"
        damaged = (f"; {len(run.skipped_parts)} damaged part file(s) skipped (entrodiag inspect names them)"
                   if run.skipped_parts else "")
        yet = " yet" if run.status == "running" else ""
        print(f"entrodiag report: {args.run} (status {run.status}) has no step rows{damaged}: nothing to "
              f"report{yet}; entrodiag analyze {args.run} says what is missing", file=sys.stderr)
        return 2
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


def add_watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--follow", action="store_true",
                   help="keep polling until the run ends (else read it once); the exit code says how it "
                   "ended: 0 finished, 3 interrupted (its trainer died without closing it: seen from the "
                   "heartbeat even when no file changes), 4 failed, 5 stopped, 6 removed (its run.json "
                   "disappeared)")
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
    p.add_argument("--json", action="store_true", help="print one JSON object per line (flag, metric, status, end "
                   "events with schema_version; schema entrodiag/schemas/watch-event.schema.json)")
    _metric_arg(p)


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow a (running) run: print each new collapse flag once with its evidence and advice,
    a live status line (step, entropy, reward, accuracy, the law's ceiling, steps until the
    entropy reaches the floor), record flags and alerts in the run's events/ table and send
    alerts. Exit codes: 0 finished (with --follow: the run ended finished; without it: the run was
    read), 1 a flag at --fail-on's severity (so a scheduler can stop the job), 2 not a run (or bad
    input); with --follow, how the run ended otherwise: 3 interrupted (its trainer died: killed, out
    of memory; decided from the heartbeat, the rule of inspect), 4 failed (its trainer recorded a
    failure), 5 stopped (on a flag with --stop-on, or on SIGTERM/SIGINT; train --resume continues
    it), 6 removed (its run.json disappeared while followed); 130 the watch itself was stopped
    (Ctrl-C). Each alert sink gets its own deadline (its timeout, default 10 s): one that does not
    answer is recorded as alert_failed and the next sinks are still tried."""
    from ..watch.follow import follow

    try:
        return follow(args.run, keep_following=args.follow, interval=args.interval, fail_on=args.fail_on,
                      alerts_config=args.alerts, thresholds=_thresholds(args.threshold), floor_frac=args.floor,
                      record_events=not args.no_events, metric=args.metric, as_json=args.json)
    except ValueError as e:
        print(f"entrodiag watch: {e}", file=sys.stderr)
        return 2


def add_dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="runs", metavar="RUNS_ROOT",
                   help="a folder of runs (searched 3 levels deep) or one run, a local path or a URL such as "
                   "s3://bucket/runs (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s, this machine only; 0.0.0.0 lets the network "
                   "read every run this user can read). Requests whose Host is not a name of this address "
                   "(DNS rebinding) are refused")
    p.add_argument("--port", type=int, default=8501, help="port (default: %(default)s)")
    _metric_arg(p)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Explore runs in a Streamlit dashboard (runs, dynamics, entropy law, collapse, tokens, compare),
    refreshing live while a run trains. Needs the dashboard extra: pip install 'entrodiag[dashboard]'."""
    from ..dashboard import DashboardError, run_dashboard

    try:
        return run_dashboard(args.root, host=args.host, port=args.port, metric=args.metric)
    except DashboardError as e:
        print(f"entrodiag dashboard: {e}", file=sys.stderr)
        return 2
