"""The two ceilings in words, one formatter for every output (analyze, the report, the dashboard,
watch): the entropy law's ceiling b − a (``law``) and the compute sigmoid's asymptote A
(``compute_law``), each with its interval, or the verdict in place of a number where its premises
fail::

    entropy-law ceiling 0.62 [0.58, 0.66]; compute asymptote 0.60 [0.55, 0.64], half-way at step 180
"""

from __future__ import annotations

from collections.abc import Sequence


def _num(v: float | None, ci: Sequence[float | None] | None, spec: str) -> str:
    text = format(v, spec)
    if ci is not None and len(ci) == 2 and None not in ci:
        text += f" [{format(ci[0], spec)}, {format(ci[1], spec)}]"
    return text


def ceiling_text(value: float | None, ci: Sequence[float | None] | None = None, status: str | None = None,
                 spec: str = ".3g") -> str:
    """``entropy-law ceiling 0.62 [0.58, 0.66]``, or ``entropy-law ceiling — (<status>)`` where the
    law's verdict withholds it (``status`` ``poor fit``/``not applicable``; ``no fit``: not fitted)."""
    if value is None:
        return f"entropy-law ceiling — ({status or 'no fit'})"
    return "entropy-law ceiling " + _num(value, ci, spec)


def asymptote_text(value: float | None, ci: Sequence[float | None] | None = None, mid_step: float | None = None,
                   status: str | None = None, spec: str = ".3g") -> str:
    """``compute asymptote 0.60 [0.55, 0.64], half-way at step 180``, or ``compute asymptote —
    (<status>)`` where the sigmoid's verdict withholds it."""
    if value is None:
        return f"compute asymptote — ({status or 'no fit'})"
    text = "compute asymptote " + _num(value, ci, spec)
    if mid_step is not None:
        text += f", half-way at step {mid_step:.0f}"
    return text


def _status(section: dict | None) -> str:
    section = section or {}
    if section.get("status") != "ok":
        return "no fit"
    return (section.get("verdict") or {}).get("status") or "no verdict"


def ceilings_line(summary: dict, spec: str = ".3g") -> str:
    """Both ceilings of ``analyze_run``'s dict (its ``law`` and ``compute`` sections) on one line."""
    law, comp = summary.get("law") or {}, summary.get("compute") or {}
    law_ok, comp_ok = law.get("status") == "ok", comp.get("status") == "ok"
    return "; ".join((
        ceiling_text(law.get("ceiling") if law_ok else None, (law.get("ci") or {}).get("ceiling") if law_ok else None,
                     _status(law), spec),
        asymptote_text(comp.get("A") if comp_ok else None, (comp.get("ci") or {}).get("A") if comp_ok else None,
                       comp.get("mid_step") if comp_ok else None, _status(comp), spec),
    ))


def compute_why(summary: dict) -> str | None:
    """Why the compute sigmoid gives no number (its section's reason, or its verdict's text where it
    does not fit); ``None`` where it gives one."""
    comp = summary.get("compute") or {}
    if comp.get("status") != "ok":
        return comp.get("reason") or "not computed"
    v = comp.get("verdict") or {}
    return v.get("text") if v.get("status") != "fits" else None


__all__ = ["asymptote_text", "ceiling_text", "ceilings_line", "compute_why"]
