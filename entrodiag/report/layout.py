"""Pages and text placement: a ``Page`` (an A4-landscape figure with a title band and a footer
band), a chart grid with fixed room for labels, and ``TextFlow``, which writes
wrapped lines and tables top to bottom and continues on a new page when one is full.

Everything is placed in inches (``fig.dpi_scale_trans``) and text widths are measured from the
font's advance widths (``style.text_width``), so text never runs off a page or into a neighbour.
No pyplot: figures are plain ``matplotlib.figure.Figure`` objects, so building a report changes no
global matplotlib state (backend, open figures) of the process that calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.text import Text

from .style import BOTTOM_BAND, COLORS, MARGIN_X, PAGE, SIZE, TOP_BAND, fit_width, visible, wrap

LINE = 1.36  # line height, in multiples of the font size
#: Room around each axes of a chart grid, inches: y tick labels and the y label on the left,
#: x tick labels and the x label below, the title above; gaps between axes.
AX_LEFT, AX_BOTTOM, AX_TOP = 0.62, 0.45, 0.3
GAP_X, GAP_Y = 0.85, 0.72


def line_height(size: float) -> float:
    """Height of one text line at ``size`` points, in inches."""
    return size * LINE / 72.0


class Page:
    """One page: a title (and an optional one-line subtitle) at the top, a footer added later by
    ``stamp``, and the content box ``left``..``right`` × ``bottom``..``top`` (inches)."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.fig = Figure(figsize=PAGE)
        self.title = title
        self.left, self.right = MARGIN_X, PAGE[0] - MARGIN_X
        self.bottom, self.top = BOTTOM_BAND, PAGE[1] - TOP_BAND
        self.text(self.left, PAGE[1] - 0.35, title, size=SIZE["title"], weight="bold", va="top")
        if subtitle:
            lines = wrap(visible(subtitle), self.width, SIZE["subtitle"])
            if len(lines) > 2:
                lines = [lines[0], fit_width(" ".join(lines[1:]), self.width, SIZE["subtitle"])]
            for i, line in enumerate(lines):
                self.text(self.left, PAGE[1] - 0.64 - i * line_height(SIZE["subtitle"]), line,
                          size=SIZE["subtitle"], color=COLORS["muted"], va="top")

    @property
    def width(self) -> float:
        return self.right - self.left

    def text(self, x: float, y: float, s: str, *, size: float = SIZE["body"], mono: bool = False,
             **kw) -> Text:
        """Draw ``s`` (already ``visible``) at (x, y) inches; mathtext is always off."""
        kw.setdefault("color", COLORS["text"])
        kw.setdefault("va", "top")
        return self.fig.text(x, y, s, transform=self.fig.dpi_scale_trans, fontsize=size,
                             family="monospace" if mono else "sans-serif", parse_math=False, **kw)

    def chart_grid(self, nrows: int, ncols: int, *, top: float | None = None, bottom: float | None = None,
                   left: float | None = None, right: float | None = None, gap_x: float = GAP_X,
                   gap_y: float = GAP_Y, reserve_right: float = 0.0, **kw) -> GridSpec:
        """A grid of axes inside the box ``left``..``right`` × ``bottom``..``top`` inches (default:
        the content box), with fixed room (inches) for tick labels, axis labels and titles around
        each axes (``AX_LEFT``, ``AX_BOTTOM``, ``AX_TOP``, ``gap_x``, ``gap_y``) and
        ``reserve_right`` inches kept free on the right (for a colour bar). A fixed layout is as
        safe as matplotlib's constrained layout for these pages (labels are short and known) and
        saves a quarter of the drawing time."""
        w, h = PAGE
        x0 = (self.left if left is None else left) + AX_LEFT
        x1 = (self.right if right is None else right) - 0.08 - reserve_right
        y0 = (self.bottom if bottom is None else bottom) + AX_BOTTOM
        y1 = (self.top if top is None else top) - AX_TOP
        aw = (x1 - x0 - (ncols - 1) * gap_x) / ncols
        ah = (y1 - y0 - (nrows - 1) * gap_y) / nrows
        return GridSpec(nrows, ncols, figure=self.fig, left=x0 / w, right=x1 / w, bottom=y0 / h, top=y1 / h,
                        wspace=gap_x / aw, hspace=gap_y / ah, **kw)

    def colorbar(self, mappable, axes: Sequence[Axes], label: str, *, pad: float = 0.1, width: float = 0.12):
        """A vertical colour bar ``pad`` inches right of ``axes`` (their joint height)."""
        w = PAGE[0]
        boxes = [ax.get_position() for ax in axes]
        x = max(b.x1 for b in boxes) + pad / w
        y0, y1 = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
        cax = self.fig.add_axes((x, y0, width / w, y1 - y0))
        cax.grid(False)
        return self.fig.colorbar(mappable, cax=cax, label=label)


def stamp(pages: Sequence[Page], left: str, right_top: str) -> None:
    """Footers (``left`` · page i / N) and the run's name at the top right of every page."""
    n = len(pages)
    for i, page in enumerate(pages, 1):
        y = BOTTOM_BAND - 0.2
        page.fig.add_artist(_rule(page, y + 0.08))
        page.text(page.left, y, fit_width(left, page.width - 1.2, SIZE["tiny"]), size=SIZE["tiny"],
                  color=COLORS["muted"])
        page.text(page.right, y, f"page {i} / {n}", size=SIZE["tiny"], color=COLORS["muted"], ha="right")
        label = fit_width(right_top, 4.5, SIZE["small"])
        page.text(page.right, PAGE[1] - 0.38, label, size=SIZE["small"], color=COLORS["muted"], ha="right")


def _rule(page: Page, y: float):
    from matplotlib.lines import Line2D

    return Line2D([page.left, page.right], [y, y], transform=page.fig.dpi_scale_trans, color="#cccccc",
                  linewidth=0.6)


@dataclass(frozen=True)
class Column:
    """A table column: ``header``, ``width`` (inches), ``align`` (left | right), monospace or not."""

    header: str
    width: float
    align: str = "left"
    mono: bool = False


class TextFlow:
    """Writes text top to bottom; a full page continues on a new one (``make_page``), or, without
    ``make_page`` (a text band on a chart page), the rest is left out and ``full`` is set.

    ``pages`` collects every page the flow used. Coordinates are inches; ``x0``/``x1`` bound the
    lines (default: the page's content box).
    """

    def __init__(self, pages: list[Page], make_page: Callable[[], Page] | None, *, page: Page | None = None,
                 top: float | None = None, x0: float | None = None, x1: float | None = None,
                 bottom: float | None = None) -> None:
        self.pages = pages
        self.make_page = make_page
        self.page = page if page is not None else self._new()
        self.y = self.page.top if top is None else top
        self._x0, self._x1, self._bottom = x0, x1, bottom
        self.full = False

    def _new(self) -> Page:
        assert self.make_page is not None
        page = self.make_page()
        self.pages.append(page)
        return page

    @property
    def x0(self) -> float:
        return self.page.left if self._x0 is None else self._x0

    @property
    def x1(self) -> float:
        return self.page.right if self._x1 is None else self._x1

    @property
    def bottom(self) -> float:
        return self.page.bottom if self._bottom is None else self._bottom

    def room(self) -> float:
        """Inches left on the current page."""
        return self.y - self.bottom

    def ensure(self, height: float) -> bool:
        """Start a new page unless ``height`` inches fit on this one; False when they do not fit
        and the flow cannot continue (then nothing more is drawn)."""
        if self.y - height >= self.bottom:
            return not self.full
        if self.make_page is None:
            self.full = True
            return False
        self.page = self._new()
        self._bottom = None
        self.y = self.page.top
        return True

    def gap(self, height: float = 0.08) -> None:
        self.y -= height

    def line(self, text: str, *, size: float = SIZE["body"], indent: float = 0.0, mono: bool = False,
             **kw) -> Text | None:
        """One line (cut with ``…`` when too wide)."""
        if not self.ensure(line_height(size)):
            return None
        width = self.x1 - self.x0 - indent
        bold = kw.get("weight") == "bold"
        t = self.page.text(self.x0 + indent, self.y, fit_width(text, width, size, mono, bold), size=size, mono=mono,
                           **kw)
        self.y -= line_height(size)
        return t

    def para(self, text: str, *, size: float = SIZE["body"], indent: float = 0.0, hang: float = 0.0,
             mono: bool = False, keep: bool = False, max_lines: int | None = None, **kw) -> int:
        """``text`` (raw run text is made ``visible``) wrapped to the flow's width; ``hang``
        indents the lines after the first; ``keep`` keeps the paragraph on one page. Returns the
        number of lines drawn."""
        text = visible(text, mono)
        width = self.x1 - self.x0 - indent
        bold = kw.get("weight") == "bold"
        first = wrap(text, width, size, mono, bold)
        lines = [first[0]]
        if len(first) > 1:
            rest = " ".join(first[1:])
            lines += wrap(rest, width - hang, size, mono, bold)
        if max_lines is not None and len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = fit_width(lines[-1] + " …", width - (hang if max_lines > 1 else 0), size, mono, bold)
        if keep:
            self.ensure(len(lines) * line_height(size))
        for i, ln in enumerate(lines):
            self.line(ln, size=size, indent=indent + (hang if i else 0.0), mono=mono, **kw)
        return len(lines)

    def heading(self, text: str, *, size: float = SIZE["heading"], color: str | None = None,
                space_after: float = 0.04) -> None:
        """A bold heading, kept with at least two lines of what follows."""
        self.ensure(line_height(size) + 2 * line_height(SIZE["body"]))
        self.gap(0.06)
        self.line(visible(text), size=size, weight="bold", color=color or COLORS["text"])
        self.gap(space_after)

    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[str]], *, size: float = SIZE["small"],
              header: bool = True, row_colors: Sequence[str | None] | None = None, indent: float = 0.0,
              pad: float = 0.08) -> None:
        """Rows of cells (already ``visible``), one line each, cut to their column's width; the
        header repeats on a continuation page."""
        lh = line_height(size)

        def draw_header() -> None:
            if not header or self.full:
                return
            x = self.x0 + indent
            for col in columns:  # headers in the text font, also over monospace columns
                self._cell(x, Column(col.header, col.width, col.align), col.header, size, weight="bold",
                           color=COLORS["muted"], pad=pad)
                x += col.width
            self.y -= lh
            self.page.fig.add_artist(_hline(self.page, self.x0 + indent, x, self.y + 0.03))

        self.ensure(lh * (2 if header else 1) + 0.05)
        draw_header()
        for r, row in enumerate(rows):
            if self.full or self.y - lh < self.bottom:
                if not self.ensure(lh * 2 + 0.05):
                    return
                draw_header()
            x = self.x0 + indent
            color = row_colors[r] if row_colors and row_colors[r] else COLORS["text"]
            for col, cell in zip(columns, row):
                self._cell(x, col, cell, size, color=color, pad=pad)
                x += col.width
            self.y -= lh

    def _cell(self, x: float, col: Column, text: str, size: float, *, pad: float, **kw) -> None:
        text = fit_width(text, col.width - pad, size, col.mono, kw.get("weight") == "bold")
        if col.align == "right":
            self.page.text(x + col.width - pad, self.y, text, size=size, mono=col.mono, ha="right", **kw)
        else:
            self.page.text(x, self.y, text, size=size, mono=col.mono, **kw)


def _hline(page: Page, x0: float, x1: float, y: float):
    from matplotlib.lines import Line2D

    return Line2D([x0, x1], [y, y], transform=page.fig.dpi_scale_trans, color="#bbbbbb", linewidth=0.5)


__all__ = ["AX_BOTTOM", "AX_LEFT", "AX_TOP", "GAP_X", "GAP_Y", "LINE", "Column", "Page", "TextFlow", "line_height",
           "stamp"]
