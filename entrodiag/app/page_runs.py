"""Runs: every run under the root (status, source, model, intervention, steps, entropy start → now,
accuracy, ceiling, flags) and a summary of each selected run, with the entropy forecast."""

from __future__ import annotations

import polars as pl
import streamlit as st

from entrodiag.analysis.compare import worst_severity
from entrodiag.analysis.verdicts import withheld_text
from entrodiag.app import app_data, app_ui
from entrodiag.store.reader import SKIP_WARNING


def runs_table(ctx: app_ui.Context) -> tuple[pl.DataFrame, app_data.Fill | None]:
    """One row per run under the root (``compare_runs`` numbers; unreadable runs with their error).
    The numbers come from the root's summary index (``app_data.runs_overview_lazy``), so only runs
    that changed are opened; a run the index does not hold is read on its own. When many runs are
    new, they are read in the background (the ``Fill``): until then their rows hold what run.json
    says."""
    rows = []
    with st.spinner("Indexing the runs (each new or changed run is read once; later renders use the index)"):
        indexed, fill = app_data.runs_overview_lazy(ctx.root) if ctx.discovery.runs else ({}, None)
    metas = app_data.runs_index(ctx.root).metas() if fill is not None else {}
    for entry in ctx.discovery.runs:
        row = {"run": entry.name, "status": entry.status}
        o = indexed.get(entry.name) if entry.error is None else None
        if entry.error is None and o is None and fill is not None:  # not read yet: what run.json says
            meta = metas.get(entry.name, {})
            row.update(intervention=meta.get("intervention") or "none", source=meta.get("source"),
                       model=meta.get("model"))
            rows.append(row)
            continue
        if entry.error is None and o is None:
            o = app_data.overview_row(entry.path)
        if o is not None and "error" in o:
            row["error"] = o["error"]
        elif o is not None:
            row.update(
                intervention=o["intervention"], steps=o["steps"], entropy_start=o["entropy_start"],
                entropy_now=o["entropy_end"], accuracy=o["eval_final"], ceiling=app_ui.ceiling_text(o),
                law=o.get("law_verdict"),
                flags=o["n_critical"] + o["n_warning"] + o["n_info"],
                worst=worst_severity(o),
                metric=o["metric"], source=o["source"], model=o["model"],
            )
        else:
            row["error"] = entry.error
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None), fill


def run_summary(ctx: app_ui.Context, path: str) -> None:
    """Key numbers of one run from ``analyze_run``: dynamics, law, flags and the forecast."""
    s = app_data.summary(path)
    r = s["run"]
    run = app_data.open_run(path)
    st.subheader(app_ui.md(ctx.name(path)))
    st.caption(" · ".join([app_ui.status_badge(run.status), *(app_ui.md(x) for x in (
        f"source {r.get('source') or '—'}", f"model {r.get('model') or '—'}",
        f"task {r.get('task') or '—'}", f"intervention {r.get('intervention') or 'none'}",
        f"{r['steps']} steps" + (f" ({r['first_step']}–{r['last_step']})" if r["steps"] else ""),
        ", ".join(f"{k} {v}" for k, v in r["rows"].items())))]))
    dyn = {row["name"]: row for row in s["dynamics"].get("rows", [])}
    law = s["law"]
    flags = s["flags"]["items"]
    cols = st.columns(5)
    h = dyn.get("entropy_mean")
    cols[0].metric("Entropy now (nats)", app_ui.fmt(h and h["end"]), delta_color="off",
                   delta=None if h is None else f"{h['change']:+.3f} from {h['start']:.3f}")
    metric = law.get("metric") if law["status"] == "ok" else next(iter(r["eval_metrics"]), None)
    ev = dyn.get(metric) if metric else None
    m = s.get("metric") or {}
    label = app_ui.md(f"{m['label'].capitalize()} (last)") if m.get("training") else "Accuracy (last eval)"
    cols[1].metric(label, app_ui.fmt(ev and ev["end"]),
                   help=app_ui.md(m.get("text") or metric or "no evaluations"),
                   delta=None if ev is None else f"{ev['change']:+.3f} from {ev['start']:.3f}")
    withheld = withheld_note(law)
    if law["status"] == "ok":
        lo, hi = law["ci"].get("ceiling", [None, None])
        app_ui.note_metric(cols[2], "Ceiling b − a", app_ui.fmt(law["ceiling"]),
                           withheld or f"{law['level']:.0%} CI {app_ui.fmt(lo)}–{app_ui.fmt(hi)}")
        app_ui.note_metric(cols[3], "Law R²", app_ui.fmt(law["r2"]), f"{law['n']} evaluations")
    else:
        cols[2].metric("Ceiling b − a", "—")
        cols[3].metric("Law R²", "—")
    worst = s["flags"]["worst"]
    bad = worst in ("warning", "critical")  # then the note is red
    cols[4].metric("Flags", str(len(flags)), delta=f"worst: {worst}" if worst else "none raised",
                   delta_color="inverse" if bad else "off", delta_arrow="off")
    app_ui.ceilings_caption(s)
    forecast(s.get("forecast"), withheld)
    for line in s.get("missing", []):
        st.caption(f"missing: {app_ui.md(line)}")
    for w in s.get("warnings", []):
        if not w.startswith(SKIP_WARNING):  # damaged files: named in the page's own warning
            st.warning(app_ui.md(w))


def withheld_note(law: dict) -> str | None:
    """``withheld (<verdict>)`` when the law's verdict withholds its predictions (the ceiling, the
    accuracy at the floor), else ``None`` (``analysis.verdicts``)."""
    v = law.get("verdict") if law.get("status") == "ok" else None
    if not v or v.get("numbers_shown", True):
        return None
    return withheld_text(v)


def forecast(fc: dict | None, withheld: str | None = None) -> None:
    """The entropy forecast (when the analysis layer provides one and it is ok); ``withheld``: why
    the law's accuracy at the floor is not given."""
    if not fc or fc.get("status") != "ok":
        return
    level = fc.get("level", 0.9)
    st.caption("Entropy forecast: when the smoothed entropy reaches the floor, from its decay rate over the "
               f"whole run and the recent half ({level:.0%} interval), and the entropy law's accuracy there")
    cols = st.columns(4)
    share = f"{fc['floor_frac']:.0%} of the start {fc['start']:.3f}" if fc.get("floor_frac") else None
    app_ui.note_metric(cols[0], "Entropy floor (nats)", app_ui.fmt(fc["floor"]), share)
    applies = fc.get("applies") is not False  # False: the premise fails (e.g. the entropy rises)
    if not applies:
        app_ui.note_metric(cols[1], "Floor predicted at step", "—", "does not apply (below)")
    elif fc.get("reached_step") is not None:
        cols[1].metric("Floor reached at step", str(fc["reached_step"]))
    else:
        lo, hi = fc.get("predicted_low"), fc.get("predicted_high")
        upper = "never" if hi is None and lo is not None else app_ui.fmt(hi, "d")
        rng = f"{level:.0%} interval {app_ui.fmt(lo, 'd')}–{upper}"
        app_ui.note_metric(cols[1], "Floor predicted at step", app_ui.fmt(fc.get("predicted_step"), "d"), rng)
    ended = applies and fc.get("ended") and fc.get("reached_step") is None
    app_ui.note_metric(cols[2], "Steps after the run's end" if ended else "Steps left",
                       app_ui.fmt(fc.get("steps_left"), "d"),
                       f"{'ended at' if ended else 'from'} step {fc['current_step']} "
                       f"(H = {fc['current']:.3f})")
    acc = fc.get("accuracy_at_floor")
    app_ui.note_metric(cols[3], "Accuracy at the floor (law)", app_ui.fmt(acc),
                       (withheld or ("no forecast" if not applies else None)) if acc is None else None)
    if not applies:
        st.caption(f"The forecast does not apply: {app_ui.md(fc.get('reason') or '')}")


def body(ctx: app_ui.Context) -> None:
    """The runs table and the summaries of the selected runs."""
    table, fill = runs_table(ctx)
    if fill is None:
        show_table(table)
    else:  # the table fills in: redrawn every second, then the whole page once when it is full
        first = [(table, fill)]

        def filling() -> None:
            t, f = first.pop() if first else runs_table(ctx)
            if f is None:
                st.rerun()
            st.progress(f.done / max(f.total, 1),
                        text=f"Reading the runs: {f.done} of {f.total} analysed (each new or changed run is "
                        "read once, a few at a time; the table fills in as they come, later renders use the index)")
            show_table(t)

        st.fragment(filling, run_every=1.0)()
    if not ctx.selected:
        st.info("Pick one or more runs in the sidebar to see their summary.", icon=":material/arrow_back:")
        return
    for path in ctx.selected:
        if path in {e.path for e in ctx.discovery.runs if e.error is None}:
            with st.container(border=True):
                run_summary(ctx, path)


def show_table(table: pl.DataFrame) -> None:
    """The runs table."""
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "entropy_start": st.column_config.NumberColumn("entropy start", format="%.3f"),
            "entropy_now": st.column_config.NumberColumn("entropy now", format="%.3f"),
            "accuracy": st.column_config.NumberColumn("accuracy", format="%.3f",
                                                      help="last evaluation of `metric`"),
            "ceiling": st.column_config.TextColumn("ceiling", help="b − a of the entropy law, where the law "
                                                   "fits; withheld (and why) where it does not"),
            "law": st.column_config.TextColumn("law", help="whether the entropy law describes the run: fits, "
                                               "poor fit or not applicable (then no ceiling)"),
            "flags": st.column_config.NumberColumn("flags", format="%d"),
        },
    )


ctx = app_ui.context()
st.title("Runs")
st.caption(f"under {app_ui.md(ctx.root)}")
if ctx.discovery.problem:
    app_ui.no_runs(ctx)
else:
    # Live refresh and the damage warning watch the selected runs and the running ones, not every
    # run under the root: the table's numbers come from the summary index, and opening each of a
    # thousand runs to ask its status would cost what the index saves.
    readable = {e.path for e in ctx.discovery.runs if e.error is None}
    watched = [p for p in ctx.selected if p in readable]
    watched += [e.path for e in ctx.discovery.runs if e.status == "running" and e.path not in watched]
    app_ui.live(ctx, watched, lambda: body(ctx))
