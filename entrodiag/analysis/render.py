"""The rich text of ``analyze_run``'s dict: ``render_summary`` prints it as tables (``entrodiag
analyze`` without ``--json``; usable from a notebook too). Layout only: every number comes from the
dict.
"""

from __future__ import annotations

from typing import IO, Any

from ..store.reader import BAD_VALUES_WARNING, SKIP_WARNING
from ..store.values import describe as describe_bad_values
from .ceilings import ceilings_line


def _f(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


_SEV_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def prepare() -> None:
    """Import and warm what ``render_summary`` uses (rich's console, markup and table code, its
    character-width tables) by laying out a small table unseen: ``analyze_run`` calls it while its
    worker reads the token rows, so that printing the summary after does not pay it."""
    import io

    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table

    table = Table("[bold]run[/]", "ratio", title="[bold]ok[/]")
    table.add_row("e·5 ✓", Padding("1.0", (0, 1)))
    Console(file=io.StringIO(), width=80, highlight=False, soft_wrap=False).print(table)


def render_summary(summary: dict, file: IO[str] | None = None, width: int | None = None) -> None:
    """Print ``analyze_run``'s dict as rich tables (to ``file``, default stdout)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table

    con = Console(file=file, width=width, highlight=False, soft_wrap=False)
    r = summary["run"]
    con.rule(f"[bold]entrodiag analyze[/] {escape(r['run_id'])}")
    con.print(
        f"{escape(r['path'])}  status [bold]{escape(str(r['status']))}[/]  "
        f"source {escape(str(r.get('source')))}  "
        f"intervention {escape(str(r.get('intervention') or 'none'))}  steps {r['steps']}"
        + (f" ({r['first_step']}–{r['last_step']})" if r["steps"] else "")
        + "  rows: " + ", ".join(f"{k} {v}" for k, v in r["rows"].items())
    )
    m = summary.get("metric") or {}
    if m.get("status") == "ok":
        style = "bold yellow" if m.get("training") else "bold"
        con.print(f"[{style}]R[/] = {escape(m['name'])} ([{style}]{escape(m['label'])}[/]): {escape(m['reason'])}")
    elif m:
        con.print(f"[yellow]R[/]: {escape(str(m.get('reason')))}")
    rw = summary.get("reward") or {}
    if rw.get("status") == "ok" and rw.get("reason"):
        con.print(f"[bold yellow]reward series[/] = {escape(rw['column'])} ({escape(rw['label'])}): "
                  f"{escape(rw['reason'])}")
    sem = summary.get("entropy_semantics") or {}
    if sem.get("statement"):
        con.print(f"[dim]{escape(sem['statement'])}[/]")
    for line in sem.get("warnings", []):
        con.print(f"[yellow]approximation[/] {escape(line)}")
    by_meaning: dict[str, list[str]] = {}
    for name, meaning in (summary.get("metric_notes") or {}).items():
        by_meaning.setdefault(meaning, []).append(name)
    for meaning, logged in by_meaning.items():
        shown = ", ".join(logged[:4]) + (f" and {len(logged) - 4} more" if len(logged) > 4 else "")
        con.print(f"[dim]metric {escape(shown)}: {escape(meaning)}[/]")
    for line in summary.get("missing", []):
        con.print(f"[yellow]missing[/] {escape(line)}")
    for part in r.get("skipped_parts") or []:
        con.print(f"[bold red]skipped[/] {escape(part['path'])}: damaged, its rows are left out "
                  f"({escape(part['reason'])})")
    if r.get("bad_values"):
        con.print(f"[yellow]bad values[/] read as missing (impossible values; entrodiag inspect counts them): "
                  f"{escape(describe_bad_values(r['bad_values']))}")
    for w in summary.get("warnings", []):
        if not w.startswith((SKIP_WARNING, BAD_VALUES_WARNING)):  # said above
            con.print(f"[yellow]warning[/] {escape(w)}")

    def empty(title: str, section: dict) -> bool:
        if section.get("status") == "ok":
            return False
        con.print(f"\n[bold]{title}[/]: [dim]{escape(str(section.get('reason')))}[/]")
        return True

    d = summary["dynamics"]
    if not empty("Dynamics", d):
        t = Table(title="Dynamics", title_justify="left", caption=d.get("note"), caption_justify="left")
        for c in ("series", "start", "end", "change", "end/start"):
            t.add_column(c, justify="left" if c == "series" else "right")
        for row in d["rows"]:
            t.add_row(row["label"], _f(row["start"]), _f(row["end"]), _f(row["change"], "+.4g"),
                      _f(row["ratio"], ".3g"))
        con.print(t)

    law = summary["law"]
    if not empty("Entropy law R = −a·e^H + b", law):
        label = (law.get("metric_choice") or {}).get("label", "")
        t = Table(title=f"Entropy law R = −a·e^H + b  (R = {law['metric']}{', the ' + label if label else ''}, "
                  f"H = {law['entropy']}, "
                  f"trailing mean of {law['smooth']} steps; Cui et al. 2025)", title_justify="left")
        for c in ("", "estimate", f"{law['level']:.0%} CI"):
            t.add_column(c, justify="left" if not c else "right")
        v = law.get("verdict") or {}
        held = None if v.get("numbers_shown", True) else f"withheld ({v.get('status')})"

        def num(key: str, spec: str = ".4g") -> str:
            return held if held and law.get(key) is None else _f(law.get(key), spec)

        for k, label in (("a", "a"), ("b", "b"), ("ceiling", "ceiling b − a")):
            ci = law["ci"].get(k)
            t.add_row(label, num(k), f"[{_f(ci[0])}, {_f(ci[1])}]" if ci else "—")
        t.add_row("R² / RMSE / n", f"{_f(law['r2'], '.3f')} / {_f(law['rmse'])} / {law['n']}", "")
        t.add_row("R̂ at the last step", num("r_last"), "")
        t.add_row("fraction of the ceiling reached", num("ceiling_frac", ".1%"), "")
        t.add_row("share of the attainable gain realised", num("gain_frac", ".1%"), "")
        con.print(t)
        if v:
            style = "green" if v["status"] == "fits" else "bold yellow"
            con.print(f"law: [{style}]{escape(v['text'])}[/]")

    ep = summary["early_prediction"]
    if not empty("Early prediction", ep):
        fitted = [row for row in ep["rows"] if not row.get("reason")]
        if fitted:
            what = (law.get("metric_choice") or {}).get("label") or "R"
            level = fitted[0].get("level") or 0.9
            t = Table(title=f"Early prediction: fit the first f of the evaluations, predict the final {what} "
                      f"(given its entropy) with a {level:.0%} interval", title_justify="left")
            for c in ("f", "fit/test", "RMSE rest", "law final", f"estimate ± {level:.0%}", "actual", "error"):
                t.add_column(c, justify="right", no_wrap=True)
            for row in fitted:
                half = None if row.get("hi") is None else (row["hi"] - row["lo"]) / 2
                miss = "" if row.get("covered") in (None, True) else " [bold red]miss[/]"
                t.add_row(f"{row['frac']:.2f}", f"{row['n_fit']}/{row['n_test']}", _f(row["rmse"]),
                          _f(row["predicted_final"], ".3f"), f"{_f(row.get('estimate'), '.3f')} ± {_f(half, '.3f')}",
                          _f(row["actual_final"], ".3f"), _f(row.get("estimate_error"), "+.3f") + miss)
            con.print(t)
        else:
            con.print("\n[bold]Early prediction[/]: fit the first f of the evaluations, predict the rest")
        for row in ep.get("rows", []):
            if row.get("reason"):
                con.print(f"[dim]  f = {row['frac']:.2f}: {escape(row['reason'])}[/]")

    cp = summary.get("compute", {"status": "empty", "reason": "not computed"})
    if not empty("Compute sigmoid R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B)", cp):
        v = cp.get("verdict") or {}
        ci = cp.get("ci") or {}
        shown = ", ".join(f"{k} = {_f(cp.get(k))}" + (f" [{_f(ci[k][0])}, {_f(ci[k][1])}]" if k in ci else "")
                          for k in ("A", "B", "C_mid") if cp.get(k) is not None)
        con.print(f"\n[bold]Compute sigmoid[/] R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B) (ScaleRL; C = "
                  f"{escape(str(cp['axis']))}: {escape(str(cp['axis_source']))}; {cp['n_cut']} point(s) below "
                  f"{_f(cp['cut'])} left out): " + (shown + "; " if shown else "")
                  + f"R0 = {_f(cp['R0'])}{' (first evaluation)' if cp.get('r0_fixed') else ''}, "
                  f"R² = {_f(cp['r2'], '.3f')}, n = {cp['n']}")
        if v:
            style = "green" if v["status"] == "fits" else "bold yellow"
            con.print(f"compute sigmoid: [{style}]{escape(v['text'])}[/]")
    if summary.get("law", {}).get("status") == "ok" or cp.get("status") == "ok":
        con.print(f"[bold]Ceilings[/]: {escape(ceilings_line(summary))}")

    fc = summary.get("forecast", {"status": "empty", "reason": "not computed"})
    if not empty("Entropy forecast", fc):
        con.print(f"\n[bold]Entropy forecast[/] (log-linear decay, {fc['level']:.0%} interval): "
                  f"{escape(fc['text'])}")

    fl = summary["flags"]
    if fl["items"]:
        con.print(f"\n[bold]Flags[/] ({len(fl['items'])}, worst first)")
        for f in fl["items"]:
            con.print(f"[{_SEV_STYLE[f['severity']]}]{f['severity'].upper():<8}[/] [bold]{f['kind']}[/] "
                      f"(steps {f['first_step']}–{f['last_step']}): {escape(f['message'])}")
            con.print(Padding(f"[green]→ {escape(f['advice'])}[/]", (0, 0, 0, 9)))
    elif fl.get("judged") == 0:  # every detector is in the not-judged list below
        con.print("\n[bold]Flags[/]: not judged yet (no detector could judge the run)")
    else:
        con.print("\n[bold]Flags[/]: [green]none raised[/]")
    by_reason: dict[str, list[str]] = {}
    for kind, why in fl["skipped"].items():
        by_reason.setdefault(why, []).append(kind)
    for why, kinds in by_reason.items():
        con.print(f"[dim]not judged: {', '.join(kinds)}: {escape(why)}[/]")

    m = summary["mechanism"]
    if not empty("Mechanism check (ΔH vs −cov)", m):
        t = Table(title=f"Mechanism check: ΔH ≈ −η·Cov(log π, A)  (ΔH from {escape(m['delta_source'])})",
                  title_justify="left")
        for c in ("predictor", "Pearson r", "p", "Spearman ρ", "same sign", "steps"):
            t.add_column(c, justify="right")
        t.add_row("−cov_mean", _f(m["pearson"], ".3f"), _f(m["pearson_p"], ".2g"), _f(m["spearman"], ".3f"),
                  f"{_f(m['sign_agreement'], '.0%')} (chance {_f(m['sign_chance'], '.0%')})", str(m["n"]))
        t.add_row("entropy_pressure", _f(m["pressure_pearson"], ".3f"), "", "",
                  _f(m["pressure_sign_agreement"], ".0%"), "")
        con.print(t)
        con.print(f"verdict: [bold]{m['verdict']}[/]: {escape(m['explanation'])}")

    ft = summary["forking_tokens"]
    if not empty("Forking tokens", ft):
        t = Table(title="Forking-token leaderboard (top 20% entropy of their step; Wang et al. 2025)",
                  title_justify="left")
        for c in ("token", "id", "seen", "forking", "rate", "mean entropy"):
            t.add_column(c, justify="left" if c == "token" else "right")
        for row in ft["rows"]:
            t.add_row(escape(repr(row["token"])), str(row["token_id"]), str(row["count"]),
                      str(row["forking"]),
                      _f(row["forking_rate"], ".0%"), _f(row["mean_entropy"], ".3f"))
        con.print(t)

    hs = summary["hwe_spans"]
    if not empty("High-window-entropy spans", hs):
        con.print(
            f"\n[bold]High-window-entropy spans[/] (ARES, w = 4): {hs['n_spans']} spans, mean length "
            f"{_f(hs.get('mean_length'), '.2f')} tokens, mean window entropy "
            f"{_f(hs.get('mean_window_entropy'), '.3f')}"
            + (f"; per sampled response {_f(hs.get('spans_per_response_start'), '.2f')} (start) → "
               f"{_f(hs.get('spans_per_response_end'), '.2f')} (end)" if "spans_per_response" in hs else "")
            + (f"; HWE token share {_f(hs.get('hwe_token_frac_start'), '.1%')} → "
               f"{_f(hs.get('hwe_token_frac_end'), '.1%')}" if "hwe_token_frac_start" in hs else "")
        )
        for ex in hs.get("examples", []):
            text = "" if ex["text"] is None else escape(repr(ex["text"]))
            con.print(f"  step {ex['step']} sample {ex['sample_id']} tokens {ex['start']}–{ex['end']}: "
                      f"window entropy {_f(ex['mean_window_entropy'], '.3f')}  {text}")

    ctl = summary.get("control", {"status": "empty"})
    if ctl.get("status") == "ok":
        con.print(f"\n[bold]Entropy control[/]: {escape(ctl['text'])}")

    dist = summary["entropy_distribution"]
    if not empty("Entropy distribution", dist):
        t = Table(title="Token-entropy distribution over training (all tokens, from the histograms)",
                  title_justify="left")
        names = list(dist["segments"][0]["coarse"])
        for c in ("steps", *names, "p50", "p90", "p99"):
            t.add_column(c, justify="right")
        for seg in dist["segments"]:
            t.add_row(f"{seg['first_step']}–{seg['last_step']}",
                      *[_f(seg["coarse"][n], ".1%") for n in names],
                      _f(seg.get("entropy_p50"), ".3f"), _f(seg.get("entropy_p90"), ".3f"),
                      _f(seg.get("entropy_p99"), ".3f"))
        con.print(t)


__all__ = ["render_summary"]
