"""The report's appendix: the run's configuration, recorder settings and metadata from run.json, and
the definitions of the quantities the report shows (with their sources).
"""

from __future__ import annotations

import json
from typing import Any

from .data import ReportData
from .layout import Column, Page, TextFlow
from .style import COLORS, SIZE, fmt, text_width, visible


# -------------------------------------------------------------------------------- appendix
def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, value) pairs, sorted by key."""
    if isinstance(obj, dict) and obj:
        out: list[tuple[str, Any]] = []
        for k in sorted(obj, key=str):
            out += _flatten(obj[k], f"{prefix}{k}.")
        return out
    return [(prefix.rstrip("."), obj)]


_TIMES = ("heartbeat", "finished", "time")


def _value(v: Any, key: str = "") -> str:
    if isinstance(v, float) and v > 1e9 and key.rsplit(".", 1)[-1] in _TIMES:  # unix seconds
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(v)) + "Z"
    if v is None or isinstance(v, (bool, dict, list)):  # as run.json writes them: null, true, [...]
        return json.dumps(v, default=str, ensure_ascii=False)
    if isinstance(v, float):
        return fmt(v, ".6g")
    return str(v)


def _pairs(flow: TextFlow, items: list[tuple[str, Any]]) -> None:
    """(key, value) pairs in three column pairs when every value fits, else in two."""
    size = SIZE["tiny"] + 0.5
    cells = [(visible(k, mono=True), visible(_value(v, k), mono=True)) for k, v in items]
    total = flow.x1 - flow.x0
    for ncols in (3, 2):
        width = total / ncols
        key_w = min(2.1, max((text_width(k, size, mono=True) for k, _ in cells), default=1.0) + 0.15)
        if ncols == 2 or all(text_width(v, size, mono=True) <= width - key_w - 0.12 for _, v in cells):
            break
    per = (len(cells) + ncols - 1) // ncols
    rows = []
    for i in range(per):
        row: list[str] = []
        for c in range(ncols):
            k, v = cells[c * per + i] if c * per + i < len(cells) else ("", "")
            row += [k, v]
        rows.append(row)
    columns = []
    for _ in range(ncols):
        columns += [Column("", key_w, mono=True), Column("", width - key_w, mono=True)]
    flow.table(columns, rows, header=False, size=size)


def appendix_pages(d: ReportData) -> list[Page]:
    """The run's configuration (run.json ``config``), its other metadata, and definitions."""
    pages: list[Page] = []
    first = Page("Appendix: configuration", "The training configuration and run metadata as stored in run.json.")
    pages.append(first)
    flow = TextFlow(pages, lambda: Page("Appendix (continued)"), page=first)
    meta = dict(d.run.meta)
    config = meta.pop("config", None) or {}
    flow.heading("Training configuration")
    if isinstance(config, dict) and config:
        _pairs(flow, [(k, v) for k, v in _flatten(config)])
    else:
        flow.para("run.json has no config (pass config= to the Recorder to keep the hyper-parameters here).",
                  size=SIZE["small"], color=COLORS["missing"])
    edges = meta.pop("entropy_hist_edges", None)
    recorder = meta.pop("recorder", None)
    if isinstance(recorder, dict) and recorder:
        flow.heading("Recorder settings")
        _pairs(flow, [(k, v) for k, v in _flatten(recorder)])
    flow.heading("Run metadata")
    items = [(k, v) for k, v in _flatten(meta)]
    if edges:
        finite = [e for e in edges if e is not None]
        items.append(("entropy_hist_edges", f"{len(edges) - 1} bins, {finite[0]:g} … {finite[-1]:g} nats"
                      + (", last bin open" if edges[-1] is None else "")))
    _pairs(flow, items)
    flow.heading("Definitions")
    for line in DEFINITIONS:
        flow.para(line, size=SIZE["small"], hang=0.15, keep=True)
    return pages


DEFINITIONS: tuple[str, ...] = (
    ("Entropy H: token entropy of the policy over the full vocabulary, in nats, at temperature 1 unless "
     "run.json says otherwise; entropy_mean is the mean over every valid response token of the step."),
    ("cov(log p, A): covariance between a token's log-probability and its advantage over the step's tokens "
     "(Cui et al. 2025, Eq. 10); positive covariance lowers entropy."),
    ("Entropy pressure: mean over tokens of −A·S*, S* = p·(H + log p), a first-order prediction of ΔH "
     "(Wang et al. 2026)."),
    ("Entropy law: R = −a·e^H + b fitted on (training entropy, validation metric) pairs; the ceiling b − a is "
     "the performance the law allows at H = 0 (Cui et al. 2025)."),
    "Forking tokens: tokens at or above their step's 80th entropy percentile (Wang et al. 2025, the 80/20 rule).",
    ("HWE span: a maximal run of positions whose window entropy (mean entropy of the next 4 tokens) is above "
     "the step's 95th percentile (ARES)."),
    "Zero-advantage group: a group whose rewards are all equal gives no gradient (COPO).",
)
