"""The report's visual language: page size, fonts, one colour per quantity, number formats, and
text made safe to draw (no mathtext, visible whitespace, no missing glyphs).

Every page draws with ``RC`` (``matplotlib.rc_context(RC)``): DejaVu Sans (shipped with
matplotlib, so the report looks the same everywhere), mathtext off (``text.parse_math`` False:
a ``$`` in a token or a config value is a dollar sign), TrueType fonts embedded in the PDF (its
text can be searched and copied).
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache
from typing import Any

#: A4 landscape, inches.
PAGE: tuple[float, float] = (11.69, 8.27)
#: Page margins, inches (left/right, top band with the title, bottom band with the footer).
MARGIN_X = 0.55
TOP_BAND = 1.05
BOTTOM_BAND = 0.45

FONT = "DejaVu Sans"
FONT_BOLD = "DejaVu Sans:bold"
MONO = "DejaVu Sans Mono"

#: Font sizes (points).
SIZE = {"title": 15.0, "subtitle": 9.0, "heading": 11.5, "body": 9.0, "small": 8.0, "tiny": 7.0}

#: One colour per quantity, the same on every page.
COLORS: dict[str, str] = {
    "entropy": "#1f5fa8",          # token-mean entropy (nats) and its quantile band
    "reward": "#e07b00",           # training reward
    "accuracy": "#2e8b3a",         # the law's evaluation metric (R)
    "covariance": "#7b3fa0",       # cov(log p, A)
    "pressure": "#c2378a",         # entropy pressure (mean of −A·S*)
    "length": "#8c5a3c",           # response length (tokens)
    "high_entropy": "#0f9fae",     # share of tokens above 0.672 nats
    "zero_adv": "#707070",         # share of zero-advantage groups
    "clip_high": "#b03030",        # share clipped at the high side
    "clip_low": "#3070b0",         # share clipped at the low side
    "hwe": "#d62728",              # high-window-entropy spans
    "law": "#1a1a1a",              # the fitted law
    "ceiling": "#d62728",          # the law's ceiling b − a
    "delta": "#1f5fa8",            # measured ΔH (an entropy change: the entropy colour)
    "grid": "#e3e3e3",
    "muted": "#6b6b6b",
    "text": "#1a1a1a",
    "missing": "#8a6d00",
}

#: Other evaluation metrics (the law's own metric is ``COLORS["accuracy"]``), in order.
EVAL_PALETTE: tuple[str, ...] = ("#7aa33a", "#145a32", "#a0a03a", "#4f7f5f")

#: Runs on the comparison page (there a colour means a run; the page says so).
RUN_PALETTE: tuple[str, ...] = ("#1a1a1a", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                "#8c564b", "#17becf", "#bcbd22", "#e377c2")

SEVERITY_COLORS: dict[str, str] = {"critical": "#b71c1c", "warning": "#b35900", "info": "#1f5fa8"}

#: Event markers on the entropy plot (flags take their severity's colour): kind -> (colour,
#: matplotlib marker, the same marker as a character for the list of events, label).
EVENT_STYLE: dict[str, tuple[str, str, str, str]] = {
    "flag": ("#b35900", "v", "▼", "flag raised live"),
    "switch": ("#7b3fa0", "D", "◆", "intervention switched"),
    "stop": ("#000000", "X", "✖", "run stopped"),
    "alert": ("#909090", "o", "●", "alert sent"),
    "alert_failed": ("#909090", "x", "×", "alert failed"),
    "checkpoint_failed": ("#b71c1c", "s", "■", "checkpoint failed"),
}


def event_style(kind: str | None, severity: str | None = None) -> tuple[str, str, str, str]:
    """(colour, marker, marker character, label) of an event; a flag takes its severity's colour."""
    color, marker, char, label = EVENT_STYLE.get(kind or "", EVENT_STYLE["alert"])
    if kind == "flag" and severity in SEVERITY_COLORS:
        color = SEVERITY_COLORS[severity]
    return color, marker, char, label

#: Law metric / early-prediction fits (dashed, darker for larger fractions).
EARLY_STYLES: tuple[tuple[str, tuple], ...] = (
    ("#b0b0b0", (0, (2, 2))), ("#808080", (0, (5, 2))), ("#505050", (0, (8, 3))), ("#303030", (0, (1, 1))),
)

RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": [FONT],
    "font.monospace": [MONO],
    "font.size": SIZE["body"],
    "text.usetex": False,
    "text.parse_math": False,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 8.5,
    "axes.edgecolor": "#9a9a9a",
    "axes.linewidth": 0.7,
    "axes.grid": True,
    "grid.color": COLORS["grid"],
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "legend.fontsize": 7.0,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "#dddddd",
    "legend.fancybox": False,
    "lines.linewidth": 1.3,
    "pdf.fonttype": 42,
    "axes.formatter.useoffset": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
}

#: Replacement shown for a character the font has no glyph for (and for control characters).
MISSING_GLYPH = "□"
_VISIBLE = {"\r\n": "⏎", "\n": "⏎", "\r": "↵", "\t": "⇥"}


# ------------------------------------------------------------------------------------ fonts
@lru_cache(maxsize=4)
def _font(family: str):
    from matplotlib import font_manager, ft2font

    name, _, weight = family.partition(":")
    prop = font_manager.FontProperties(family=name, weight=weight or "normal")
    path = font_manager.findfont(prop, fallback_to_default=True)
    font = ft2font.FT2Font(path)
    font.set_size(1000, 72)
    return font, frozenset(font.get_charmap())


@lru_cache(maxsize=8192)
def _advance(family: str, char: str) -> float:
    from matplotlib import ft2font

    font, charmap = _font(family)
    code = ord(char)
    if code not in charmap:
        code = ord(MISSING_GLYPH)
    flags = ft2font.LoadFlags.NO_HINTING if hasattr(ft2font, "LoadFlags") else ft2font.LOAD_NO_HINTING
    return font.load_char(code, flags=flags).linearHoriAdvance / 65536 / 1000


def text_width(text: str, size: float, mono: bool = False, bold: bool = False) -> float:
    """Width of ``text`` drawn at ``size`` points, in inches (advance widths, no kerning: within
    ~1% of what matplotlib draws, never less by more than that)."""
    family = MONO if mono else FONT_BOLD if bold else FONT
    return sum(_advance(family, c) for c in text) * size / 72.0 * 1.01


def has_glyph(char: str, mono: bool = False) -> bool:
    """Whether the report's font draws ``char``."""
    return ord(char) in _font(MONO if mono else FONT)[1]


def visible(text: Any, mono: bool = False, limit: int | None = None) -> str:
    """``text`` made safe and visible for a single line of a page.

    Newlines become ``⏎``, tabs ``⇥``, carriage returns ``↵``; control and format characters and
    characters the font has no glyph for (CJK in DejaVu, most emoji in the monospace font) become
    ``□``, so matplotlib never warns about a missing glyph; ``None`` becomes ``—``. Pages draw text
    with mathtext off, so ``$``, ``\\``, ``<`` and ``&`` stay as they are. ``limit`` truncates
    with ``…``.
    """
    if text is None:
        return "—"
    s = str(text)
    for raw, shown in _VISIBLE.items():
        s = s.replace(raw, shown)
    out = []
    for c in s:
        cat = unicodedata.category(c)
        if cat[0] == "C" or not has_glyph(c, mono):
            out.append(MISSING_GLYPH)
        else:
            out.append(c)
    s = "".join(out)
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def fit_width(text: str, width: float, size: float, mono: bool = False, bold: bool = False) -> str:
    """``text`` cut (with ``…``) so that it is at most ``width`` inches wide at ``size`` points."""
    if text_width(text, size, mono, bold) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid] + "…", size, mono, bold) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…"


def wrap(text: str, width: float, size: float, mono: bool = False, bold: bool = False) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` inches wide at ``size`` points
    (a word longer than a line is split). ``text`` should already be ``visible``."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size, mono, bold) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while text_width(word, size, mono, bold) > width and len(word) > 1:
            cut = len(fit_width(word, width, size, mono, bold)) - 1  # the ellipsis is not kept
            cut = max(cut, 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line or not lines:
        lines.append(line)
    return lines


# ---------------------------------------------------------------------------------- numbers
def fmt(value: Any, spec: str = ".4g") -> str:
    """A number as the report prints it (``—`` when missing or not finite); the law's a, b and
    ceiling use the default ``.4g``, as ``entrodiag analyze`` does."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "—"
        return format(value, spec)
    return str(value)


def fmt_ci(ci: Any, spec: str = ".4g") -> str:
    """A confidence interval ``[lo, hi]`` (``—`` when missing)."""
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return "—"
    return f"[{fmt(ci[0], spec)}, {fmt(ci[1], spec)}]"


def fmt_pct(value: Any, digits: int = 0) -> str:
    """A share as a percentage (``—`` when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}%}"


def eval_color(name: str, law_metric: str | None, names: list[str]) -> str:
    """The colour of an evaluation metric: the law's metric is the accuracy colour; the others
    take ``EVAL_PALETTE`` in the order the run logged them."""
    if name == law_metric or (law_metric is None and names and name == names[0]):
        return COLORS["accuracy"]
    others = [n for n in names if n != law_metric]
    i = others.index(name) if name in others else 0
    return EVAL_PALETTE[i % len(EVAL_PALETTE)]


__all__ = [
    "BOTTOM_BAND",
    "COLORS",
    "EARLY_STYLES",
    "EVAL_PALETTE",
    "EVENT_STYLE",
    "FONT",
    "FONT_BOLD",
    "MARGIN_X",
    "MISSING_GLYPH",
    "MONO",
    "PAGE",
    "RC",
    "RUN_PALETTE",
    "SEVERITY_COLORS",
    "SIZE",
    "TOP_BAND",
    "eval_color",
    "event_style",
    "fit_width",
    "fmt",
    "fmt_ci",
    "fmt_pct",
    "has_glyph",
    "text_width",
    "visible",
    "wrap",
]
