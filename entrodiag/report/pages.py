"""The report's pages, one builder each: summary, dynamics, the law, the entropy distribution and
forking tokens, example responses, the mechanism check, the comparison, and the appendix.

A builder takes the ``ReportData`` and returns its pages (a text page that overflows continues on
a new one). The builders live in one module per group of pages (``summary_page``: the summary;
``analysis_pages``: dynamics to comparison; ``appendix``) and stay importable from here. ``plan``
decides which pages a run supports; a page whose data is missing is left out and the summary says,
in one line each, what is missing and what to log to get it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .analysis_pages import (
    comparison_pages,
    control_pages,
    distribution_pages,
    dynamics_pages,
    examples_pages,
    law_pages,
    mechanism_pages,
)
from .appendix import DEFINITIONS, appendix_pages
from .contents import (
    APPENDIX,
    COMPARISON,
    CONTROL,
    DISTRIBUTION,
    DYNAMICS,
    EXAMPLES,
    LAW,
    MECHANISM,
    SUMMARY,
    contents,
)
from .data import ReportData
from .layout import Page
from .summary_page import HEADLINES, KEY_ROWS, event_lines, summary_pages
from .summary_page import law_number as _law_number  # noqa: F401  (the old private name stays importable)


@dataclass
class Section:
    """A page in the plan: its title, its builder, or why it is left out."""

    title: str
    build: Callable[[ReportData], list[Page]] | None
    reason: str | None = None


#: The builder of each page title (``contents`` says which pages a run supports).
BUILDERS: dict[str, Callable[[ReportData], list[Page]]] = {
    SUMMARY: summary_pages, DYNAMICS: dynamics_pages, CONTROL: control_pages,
    LAW: law_pages, DISTRIBUTION: distribution_pages, EXAMPLES: examples_pages,
    MECHANISM: mechanism_pages, COMPARISON: comparison_pages,
    APPENDIX: appendix_pages,
}


# ------------------------------------------------------------------------------------ plan
def plan(d: ReportData) -> list[Section]:
    """The pages this run supports, in order (left-out ones carry their reason)."""
    return [Section(title, BUILDERS[title] if reason is None else None, reason)
            for title, reason in contents(d)]


def render(d: ReportData) -> list[Page]:
    """Every page of the report, in order. The summary is drawn last (and placed first), so that it
    names every damaged part file that any page's query had to skip."""
    built: list[list[Page]] = []
    for section in plan(d):
        if section.build is not None and section.build is not summary_pages:
            built.append(section.build(d))
    return [page for pages in [summary_pages(d), *built] for page in pages]


__all__ = ["DEFINITIONS", "HEADLINES", "KEY_ROWS", "Section", "appendix_pages", "comparison_pages",
           "distribution_pages", "dynamics_pages", "event_lines", "examples_pages", "law_pages",
           "mechanism_pages", "plan", "render", "summary_pages"]
