"""Which pages a run supports: the report's table of contents, each page's title and, for a page
left out, why (what is missing and what to log to get it). ``pages.plan`` pairs the titles with
their builders; the summary lists the left-out pages with their reasons.
"""

from __future__ import annotations

from ..analysis.sources import log_hint
from .data import ReportData

SUMMARY = "Summary"
DYNAMICS = "Dynamics"
CONTROL = "Entropy control"
LAW = "The entropy law"
DISTRIBUTION = "Entropy distribution and forking tokens"
EXAMPLES = "Example responses"
MECHANISM = "Mechanism check"
COMPARISON = "Comparison"
APPENDIX = "Appendix: configuration"


def contents(d: ReportData) -> list[tuple[str, str | None]]:
    """``(title, reason)`` of each page in order; ``reason`` is ``None`` for a page the run supports
    and says why for a page left out."""
    s = d.summary
    law = d.section("law")
    mech = d.section("mechanism")
    dist = d.section("entropy_distribution")
    ft = d.section("forking_tokens")
    out: list[tuple[str, str | None]] = [(SUMMARY, None)]
    out.append((DYNAMICS, None if s["run"]["steps"] else "no step rows: nothing was recorded yet"))
    if d.section("control").get("status") == "ok":  # only runs trained with an entropy target
        out.append((CONTROL, None))
    if law.get("status") == "ok" and d.fit is not None:
        out.append((LAW, None))
    else:
        out.append((LAW, law.get("reason") or "the law could not be fitted"))
    if dist.get("status") == "ok" or ft.get("status") == "ok":
        out.append((DISTRIBUTION, None))
    else:
        out.append((DISTRIBUTION, f"{dist.get('reason')}; {ft.get('reason')}"))
    if s["run"]["rows"].get("tokens"):
        out.append((EXAMPLES, None))
    else:
        out.append((EXAMPLES, "no token rows: " + (
            log_hint(d.run, "tokens") or "the Recorder keeps token rows for token_sample responses per step "
            "(token_sample > 0)")))
    if mech.get("status") == "ok":
        out.append((MECHANISM, None))
    else:
        out.append((MECHANISM, mech.get("reason") or mech.get("explanation")))
    if d.others:
        out.append((COMPARISON, None))
    out.append((APPENDIX, None))
    return out
