"""The agent tools as plain functions over one root: each returns a JSON-ready dict (NaN as null)
built from the functions the command line uses (``analyze_run``, ``compare_runs``,
``store.query``), so an answer here and ``entrodiag analyze --json`` / ``query --json`` agree.

Every run argument is a path under the root (``confine.resolve_run``); a run being written is read
as far as it has landed (completed part files), without waiting and without a lock.
"""

from __future__ import annotations

import threading
from urllib.parse import quote
from pathlib import Path
from typing import Any

from .. import __version__
from ..analysis.jsonable import clean
from ..schemas import stamp
from ..store.reader import load_run
from .confine import ConfinedIndex, resolve_run

#: Rows ``tail`` and ``query`` return at most (an agent pages on with ``next_since`` or LIMIT/OFFSET).
MAX_ROWS = 500
#: One ``analyze_run`` at a time: the server runs tools in worker threads, and the warnings it
#: records (``warnings.catch_warnings``) are process-wide state.
_ANALYZING = threading.Lock()
#: The step columns ``tail`` leaves out (per-step histograms: long lists an agent rarely reads).
TAIL_DROP = ("entropy_hist",)


def run_id(root: Path, path: Path) -> str:
    """A run's name as the tools give it: its path relative to the root (``.`` for the root)."""
    rel = path.relative_to(root).as_posix()
    return rel or "."


def resource_uri(name: str, what: str) -> str:
    """The MCP resource URI of a run's ``what`` (``run.json``, ``report.pdf``); a run_id with a
    ``/`` (a run in a sub-folder) is percent-encoded (``group%2Frun``)."""
    return f"entrodiag://run/{quote(name, safe='')}/{what}"


def list_runs(root: Path, filter: str | None = None) -> dict[str, Any]:
    """The runs under ``root``: run_id (what the other tools take), status, model, steps, the last
    step and entropy, the worst flag and the flag kinds, the URI of its run.json resource. ``filter``: a case-insensitive text that
    the run_id, status, model, task or intervention must contain."""
    from ..analysis.compare import compare_runs, worst_severity
    from ..store.query import runs_table

    index = ConfinedIndex(root)

    def row(run) -> dict:
        cmp = compare_runs([run]).row(0, named=True)
        steps = run.steps
        last = steps.tail(1)
        return {"steps": steps.height, "last_step": int(last["step"][0]) if last.height else None,
                "last_entropy": last["entropy_mean"][0] if last.height and "entropy_mean" in last.columns else None,
                "worst_flag": worst_severity(cmp), "flags": cmp["flags"] or None}

    rows = index.rows("agents-list", row, tables=("steps", "evals"), version=f"agents-list/1 entrodiag={__version__}")
    out = []
    for m in runs_table(index).to_dicts() if index.runs() else []:
        rid = m["run_id"]
        name = run_id(root, Path(m["path"]).resolve())
        item = {"run_id": name, "status": m.get("status"), "model": m.get("model"),
                "task": m.get("task"), "intervention": m.get("intervention"), **rows.get(rid, {}),
                "error": m.get("error"), "run_json_uri": resource_uri(name, "run.json")}
        text = " ".join(str(item.get(k) or "") for k in ("run_id", "status", "model", "task", "intervention"))
        if filter and filter.lower() not in text.lower():
            continue
        out.append(item)
    return clean({"root": str(root), "runs": out})


def diagnose(root: Path, run: str, metric: str | None = None) -> dict[str, Any]:
    """``entrodiag analyze --json`` of the run (the diagnosis schema) with ``summary``: a few plain
    sentences an agent can pass on."""
    from ..analysis.summary import analyze_run

    path = resolve_run(root, run)
    with _ANALYZING:  # analyze_run records its warnings with catch_warnings, which is process-wide
        doc = stamp(analyze_run(path, metric=metric))
    return {"schema_version": doc["schema_version"], "summary": plain_summary(doc),
            **{k: v for k, v in doc.items() if k != "schema_version"}}


def plain_summary(doc: dict[str, Any]) -> str:
    """A short plain-language reading of a diagnosis: where the run stands, the worst flags with
    their advice, the law's ceiling and the forecast (each only where the analysis gives it)."""
    r = doc["run"]
    lines = [f"Run {r['run_id']} ({r['status']}): {r['steps']} step(s)"
             + (f", last step {r['last_step']}." if r["last_step"] is not None else ".")]
    ent = next((row for row in doc["dynamics"].get("rows", []) if row["name"] == "entropy_mean"), None)
    if ent and ent["start"] is not None and ent["end"] is not None:
        lines.append(f"Entropy went from {ent['start']:.3g} to {ent['end']:.3g} nats.")
    flags = doc["flags"].get("items", [])
    if flags:
        for f in flags[:3]:
            lines.append(f"{f['severity'].upper()} {f['kind']}: {f['message']} Try: {f['advice']}")
        if len(flags) > 3:
            lines.append(f"And {len(flags) - 3} more flag(s).")
    elif doc["flags"].get("judged"):
        lines.append("No collapse flag.")
    else:
        lines.append("No detector could judge the run yet.")
    law = doc["law"]
    if law.get("status") == "ok" and law.get("ceiling") is not None:
        lines.append(f"Entropy law on {law.get('metric')}: ceiling {law['ceiling']:.3g} (R at zero entropy), "
                     f"R^2 {law['r2']:.2f}.")
    elif law.get("status") == "ok":
        lines.append(f"Entropy law: {law['verdict'].get('text') or law['verdict']['status']}.")
    if doc["forecast"].get("status") == "ok":
        lines.append(doc["forecast"]["text"].rstrip(".") + ".")
    if doc["missing"]:
        lines.append("Missing: " + doc["missing"][0])
    return " ".join(lines)


def compare(root: Path, runs: list[str], metric: str | None = None) -> dict[str, Any]:
    """``compare_runs`` of the runs side by side: entropy start/end, R, the law's ceiling, flags."""
    from ..analysis.compare import compare_runs

    if not runs:
        raise ValueError("name at least one run to compare (run_ids from list_runs)")
    paths = [resolve_run(root, r) for r in runs]
    table = compare_runs(paths, metric=metric)
    rows = table.to_dicts()
    for row, path in zip(rows, paths):
        row["run_id"] = run_id(root, path)
    return clean(stamp({"metric": metric, "runs": rows}))


#: The tables ``tail`` reads, each with its own cursor (``next_since``).
TAIL_TABLES = ("steps", "evals", "events")


def tail(root: Path, run: str, since_step: int = -1, since: dict[str, int] | None = None) -> dict[str, Any]:
    """What a run recorded after the cursors: step rows (ranks merged; no histograms), evaluations
    and events, at most ``MAX_ROWS`` rows of each table. One cursor per table, as ``since``
    (``{"steps": s, "evals": e, "events": v}``; a table it does not name starts after
    ``since_step``): an evaluation or event that lands after its step's row is still read by the
    next poll. ``next_since``: pass it back as ``since`` to read on; no cursor moves below the one
    given. Reads the part files that have landed, while the trainer writes, without a lock."""
    import polars as pl

    path = resolve_run(root, run)
    given = {t: int((since or {}).get(t, since_step)) for t in TAIL_TABLES}
    r = load_run(path)
    r.quiet = True  # its skips are read from the run (the server calls tools in several threads)
    tables = {"steps": r.steps.drop(TAIL_DROP, strict=False), "evals": r.evals, "events": r.events}
    out: dict[str, Any] = {"run_id": run_id(root, path), "status": r.status, "since": given,
                           "last_step": r.steps["step"].max() if r.steps.height else None}
    nxt, truncated = {}, False
    for name, df in tables.items():
        cursor = given[name]
        if df.is_empty() or "step" not in df.columns:
            out[name], nxt[name] = [], cursor
            continue
        df = df.filter(pl.col("step") > cursor).sort("step", maintain_order=True)
        if df.height > MAX_ROWS:  # cut after a whole step, so the next poll starts at the next one
            truncated = True
            df = df.filter(pl.col("step") <= df["step"][MAX_ROWS - 1])
        out[name] = df.to_dicts()
        nxt[name] = max(cursor, int(df["step"].max())) if df.height else cursor
    out["truncated"], out["next_since"] = truncated, nxt
    out["warnings"] = r.skip_messages()
    bad = r.bad_values(("steps", "evals", "events"))
    if bad:
        from ..store.run import BAD_VALUES_WARNING
        from ..store.values import describe

        out["warnings"].append(f"{BAD_VALUES_WARNING} in {path}: {describe(bad)}")
    return clean(out)


def query(root: Path, sql: str) -> dict[str, Any]:
    """``entrodiag query --json`` over the runs under the root, read-only and sandboxed (DuckDB's
    external access off, only the index's tables, bounded memory), at most ``MAX_ROWS`` rows
    (``truncated``; DuckDB stops reading after one more)."""
    from ..store.query import as_json, query_notes, query_with_index

    table, index = query_with_index(root, sql, index=ConfinedIndex(root), sandbox=True, max_rows=MAX_ROWS + 1)
    doc = as_json(table.slice(0, MAX_ROWS))
    doc["truncated"] = table.num_rows > MAX_ROWS
    doc["notes"] = query_notes(index) + [f"run {rid} left out: {why}" for rid, why in index.refused().items()]
    return doc


def forecast(root: Path, run: str, metric: str | None = None) -> dict[str, Any]:
    """When the run's entropy reaches its floor (half its start) and what R the entropy law
    predicts: the diagnosis's ``forecast`` section, the law (ceiling with its interval, R at the
    last step), and its latest early prediction of the final R with its interval."""
    doc = diagnose(root, run, metric)
    law = doc["law"]
    early = doc["early_prediction"]
    rows = [row for row in early.get("rows", []) if row.get("predicted_final") is not None]
    return {"schema_version": doc["schema_version"], "run_id": run_id(root, resolve_run(root, run)),
            "forecast": doc["forecast"],
            "law": {k: law.get(k) for k in ("status", "reason", "metric", "a", "b", "ceiling", "ci", "r2", "r_last",
                                            "level", "verdict") if k in law},
            "final_r": (rows[-1] | {"status": "ok"}) if rows else {
                "status": "empty", "reason": early.get("reason") or "no early prediction of the final R"}}
