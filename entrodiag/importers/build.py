"""The import itself: ``import_run`` reads a log, maps its columns, judges every value and writes
the run; ``ImportReport`` says what it did.

The steps, each a function below: check the request (``--map``, ``--out``, ``--log-every``), read
the raw rows (``readers``), plan the columns (``plan``), collect the step and evaluation values
with every value left out or changed counted (``values``), then write run.json, the steps and the
evaluations through the store's ``RunWriter``. Nothing is written before the whole log has been
read and checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metric_names import is_mean_score, is_performance
from .columns import RESERVED_TARGETS, normalise, parse_map
from .failure import ImportFailure
from .plan import ColumnPlan, plan_columns
from .readers import read_history
from .semantics import entropy_semantics, guess_framework
from .values import INT64_MAX, check_series_kept, count, impossible, judge, lost_summary, series_lost, step_of


@dataclass
class ImportReport:
    """What ``import_run`` did."""

    run_dir: Path | str  # a local folder, or the URL of one on an object store
    source: Path | str  # a file or folder, or a tracker's URI as given
    format: str
    steps: int
    evals: int  # evaluation values (steps x names)
    step_column: str
    columns: dict[str, str] = field(default_factory=dict)  # logged name → step column or eval name
    unrecognised: list[str] = field(default_factory=list)  # kept as extra step columns, as named
    skipped: list[str] = field(default_factory=list)  # not numeric, or mapped to skip
    eval_names: list[str] = field(default_factory=list)
    eval_steps: int = 0  # steps with at least one evaluation
    notes: list[str] = field(default_factory=list)  # how steps and records were read (say them)
    bad_values: dict[str, int] = field(default_factory=dict)  # what was dropped or overwritten, counted
    framework: str | None = None
    entropy_semantics: dict[str, Any] = field(default_factory=dict)


def import_run(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "auto",
    mapping: dict[str, str] | list[str] | None = None,
    meta: dict | None = None,
    log_every: int | None = None,
    eval_where: str | None = None,
    run: str | None = None,
    experiment: str | None = None,
) -> ImportReport:
    """Build the run directory ``out`` from the metrics logged in ``source``.

    Args:
        source: a log file or folder (see the module docstring for the formats).
        out: the run directory to create (must not hold a run): a local path or an object-store
            URL (``s3://bucket/runs/x``, ``gs://...``), each file written as one whole object.
        format: one of ``FORMATS``, or ``auto``.
        mapping: ``{logged column: field}`` or ``["column=field", ...]``; field is a step column
            (``entropy_mean``, ``reward_mean``, ...), an evaluation name (``val/accuracy``),
            ``step`` (the step column) or ``skip``.
        meta: more run.json fields (``model``, ``task``, ...).
        log_every: console dicts only: step of the k-th printed dict = ``log_every``·k (default:
            the progress-bar counter printed before it).
        eval_where: record-typed JSONL only: ``FIELD=VALUE`` (values comma-separated) names the
            record-kind field and the kinds that are evaluations (default: detected).
        run: a tracker's store only (W&B folder of runs, MLflow, Trackio): the run's id or name.
        experiment: MLflow only: the experiment (name or id) whose newest run to read.

    Every value left out or changed is counted in ``ImportReport.bad_values`` by column and reason
    (text, true/false, NaN or infinite, impossible for its column such as a negative entropy, a row
    whose step is not a whole number >= 0 or lies beyond int64, an integer rounded into float64 or
    into a count column, a damaged TensorBoard record, ...); a step logged twice with different
    values for a column keeps the last one and is counted too. Nothing is written before the whole
    log has been read and checked.

    Raises:
        ImportFailure: missing file, unknown format, unreadable content, an empty log, no step
            column, no value with a valid step, or an entropy series, or the series R would come
            from (every validation mean score; without one, the task score), that would be lost to
            parsing (number-like text entrodiag cannot read, lines cut short by a logger); the
            message says what to pass. Any other series' losses are imported and said by key
            (``notes``, ``bad_values``, run.json ``imported.lost``).
        FileExistsError: ``out`` already holds a run.

    Example:
        >>> report = import_run("out/checkpoint-500/trainer_state.json", "runs/x")  # doctest: +SKIP
        >>> report.steps, report.unrecognised  # doctest: +SKIP
    """
    user_map = _user_map(mapping)
    out = _new_run(out)
    if log_every is not None and log_every < 1:
        raise ImportFailure(f"--log-every must be a positive number of steps, got {log_every}")
    fmt, path, rows, src_meta = read_history(source, format, log_every=log_every, eval_where=eval_where,
                                             run=run, experiment=experiment)
    if log_every is not None and fmt not in ("console", "notebook"):
        raise ImportFailure(f"--log-every applies to printed console dicts; {path} is read as {fmt}")
    if not rows:
        raise ImportFailure(f"{path}: the log is empty (no metric rows)")

    plan = plan_columns(path, rows, user_map)
    notes = [*src_meta.get("notes", []), *plan.notes]
    bad: dict[str, int] = dict(src_meta.get("bad_values", {}))
    steps, evals = _collect(rows, plan, bad)
    cut = src_meta.get("cut")
    # every series the log holds (a column of text only is skipped by the plan, and still guarded)
    series = {**{n: plan.targets[n] for n in plan.names if n != plan.step_column}, **plan.used}
    lost = series_lost(rows, series, cut)
    check_series_kept(path, rows, series, lost)
    if cut:
        for n, k in cut["lost"].items():
            if n in plan.used:
                count(bad, f"{n}: on a line cut at {cut['cap']} characters (lost)", k)
    guarded = tuple(n for n, t in series.items() if t.name in ("entropy_mean", "score_mean", "reward_mean")
                    or (t.kind == "eval" and is_performance(t.name) and is_mean_score(t.name)))
    notes += lost_summary(lost, cut, first=guarded)
    if not steps and not evals:
        why = "; ".join(f"{c} x {k}" for k, c in list(bad.items())[:3])
        raise ImportFailure(f"{path}: no numeric metric values with a step in {plan.step_column!r}"
                            + (f" ({why})" if why else ""))

    framework = src_meta.get("framework") or guess_framework(fmt, [normalise(n) for n in plan.names])
    semantics = entropy_semantics(framework, plan.entropy_column, {**src_meta.get("config", {})},
                                  tokens=src_meta.get("token_semantics"))
    imported = _imported(fmt, path, src_meta, plan, notes, bad, framework)
    if lost:
        imported["lost"] = lost
    _write_run(out, _run_meta(fmt, src_meta, semantics, imported, meta), steps, evals, src_meta.get("tables"))
    return ImportReport(
        run_dir=out, source=path, format=fmt, steps=len(steps), evals=len(evals),
        step_column=plan.step_column, columns=plan.mapped,
        unrecognised=plan.unrecognised, skipped=plan.skipped, eval_names=sorted({name for _, name in evals}),
        eval_steps=len({s for s, _ in evals}), notes=notes, bad_values=bad, framework=framework,
        entropy_semantics=semantics,
    )


def _user_map(mapping: dict[str, str] | list[str] | None) -> dict[str, str]:
    """The user's ``{logged column: field}``; refuses a field that cannot be mapped to."""
    user_map = parse_map(mapping) if isinstance(mapping, list) else dict(mapping or {})
    for col, target in user_map.items():
        if target in RESERVED_TARGETS:
            raise ImportFailure(f"mapping {col}={target}: {target!r} cannot be mapped to")
    return user_map


def _new_run(out: str | os.PathLike) -> Path | str:
    """``out`` as a run location (a local folder or an object-store URL); refuses one that holds a run."""
    from ..store.location import check_store, run_path
    from ..store.schema import RUN_JSON

    out = run_path(out)
    if check_store(out).child(RUN_JSON).exists():
        raise FileExistsError(f"{out} already holds a run (run.json exists); choose a new --out")
    return out


def _collect(
    rows: list[dict], plan: ColumnPlan, bad: dict[str, int]
) -> tuple[dict[int, dict[str, float]], dict[tuple[int, str], float]]:
    """``(steps, evals)``: step -> {step column: value} and (step, evaluation name) -> value.

    Each value left out or changed on the way is counted in ``bad`` (see ``values``); a step
    logged twice with different values keeps the last one, counted too, except its wall time
    (the latest kept: a step's training and evaluation rows are logged at different times).
    """
    from ..store.schema import STEP_COLUMNS

    steps: dict[int, dict[str, float]] = {}
    evals: dict[tuple[int, str], float] = {}
    for row in rows:
        raw_step = row.get(plan.step_column)
        step, why = step_of(raw_step)
        if step is None:
            if raw_step is not None or any(row.get(n) is not None for n in plan.used):
                count(bad, f"rows whose step ({plan.step_column}) is {why} (left out)")
            continue
        for n, t in plan.used.items():
            v, why = judge(row.get(n))
            if why is not None:
                count(bad, f"{n}: {why}")
            if v is None:
                continue
            wrong = t.kind == "step" and impossible(t.name, v)
            if wrong:
                count(bad, f"{n}: {wrong} (left out)")
                continue
            if t.kind == "step" and str(STEP_COLUMNS.get(t.name, ("",))[0]).startswith("int"):
                if abs(v) > INT64_MAX:
                    count(bad, f"{n}: beyond the int64 range of {t.name} (left out)")
                    continue
                if v != int(v):
                    count(bad, f"{n}: not a whole number, rounded ({t.name} counts)")
                v = round(v)
            store = evals if t.kind == "eval" else steps.setdefault(step, {})
            key = (step, t.name) if t.kind == "eval" else t.name
            old = store.get(key)
            if key == "wall_time" and old is not None:  # a step's rows (train, eval) logged at two times
                v = max(old, v)
            elif old is not None and old != v:
                count(bad, f"{n}: step logged twice with different values (kept the last)")
            store[key] = v
    return steps, evals


def _imported(fmt: str, path: Path | str, src_meta: dict, plan: ColumnPlan, notes: list[str],
              bad: dict[str, int], framework: str | None) -> dict[str, Any]:
    """run.json's ``imported``: where the run came from and how its columns were read."""
    return {
        "from": src_meta.get("from") or str(Path(path).resolve()),
        "format": fmt,
        "framework": framework,
        "notes": notes,
        "bad_values": bad,
        **({"typed": src_meta["typed"]} if src_meta.get("typed") else {}),
        "step_column": plan.step_column,
        "columns": plan.mapped,
        "unrecognised": plan.unrecognised,
        "skipped": plan.skipped,
        **({"summary": src_meta["summary"]} if src_meta.get("summary") else {}),
        **({"run": src_meta["run"]} if src_meta.get("run") else {}),  # a tracker's id and name of the run
        **({"files": src_meta["files"]} if src_meta.get("files") else {}),
    }


def _run_meta(fmt: str, src_meta: dict, semantics: dict[str, Any], imported: dict[str, Any],
              meta: dict | None) -> dict[str, Any]:
    """run.json of the imported run (the user's ``meta`` last, so that it wins)."""
    from .. import __version__

    return {
        "source": f"import:{fmt}",
        "config": src_meta.get("config", {}),
        "model": None, "task": None, "intervention": None, "entropy_temperature": None,
        "world_size": 1,
        "entrodiag_version": __version__,
        "entropy_semantics": semantics,
        "imported": imported,
        **(meta or {}),
    }


def _write_run(out: Path | str, run_meta: dict[str, Any], steps: dict[int, dict[str, float]],
               evals: dict[tuple[int, str], float], tables: dict[str, dict[str, list]] | None = None) -> None:
    """Write the run: run.json, one steps part, one evals part and one part of each of ``tables``
    (a framework dump's ``samples``/``tokens``); marks it failed on an error."""
    from ..store.writer import RunWriter

    step_list = sorted(steps)
    columns: dict[str, Any] = {"step": step_list, "rank": [0] * len(step_list)}
    for c in sorted({c for values in steps.values() for c in values}):
        columns[c] = [steps[s].get(c) for s in step_list]
    eval_keys = sorted(evals)
    writer = RunWriter(out, meta=run_meta)
    try:
        if step_list:
            writer.append("steps", columns)
        if eval_keys:
            writer.append("evals", {
                "step": [s for s, _ in eval_keys], "rank": [0] * len(eval_keys),
                "name": [n for _, n in eval_keys], "value": [evals[k] for k in eval_keys],
                "n": [None] * len(eval_keys),
            })
        for name, columns in (tables or {}).items():
            if columns.get("step"):
                writer.append(name, columns)
        writer.flush(timeout=None)
    except BaseException:
        writer.close("failed")
        raise
    writer.close("failed" if writer.errors else "finished")
    if writer.errors:
        raise ImportFailure(f"{out}: writing the run failed ({writer.errors} errors, see the log above); "
                            "the run is marked failed")
