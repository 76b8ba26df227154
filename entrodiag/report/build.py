"""``build_report``: analyse a run, lay out its pages, and write the PDF atomically."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from .data import RunLike, collect
from .layout import stamp
from .pages import render
from .style import RC


def build_report(
    run_dir: RunLike, pdf_path: str | os.PathLike, *, compare: Sequence[RunLike] | None = None,
    metric: str | None = None,
) -> Path:
    """Write the diagnostic report of a run as a PDF and return its path.

    Pages: summary (metadata, verdict, key numbers, the law, every flag with its advice, what is
    missing), dynamics, entropy control (only for a run trained with an entropy target), the
    entropy law, the entropy distribution and forking tokens, example
    responses, the mechanism check, a comparison page when ``compare`` names other runs, and an
    appendix with the configuration. A page whose data the run lacks (no evaluations, no token
    rows) is left out and the summary says what to log to get it.

    The PDF is written to a temporary file beside ``pdf_path`` and moved into place at the end, so
    a crash never leaves half a report; the folder is created when missing. No pyplot and no
    global matplotlib state is touched (figures are drawn under ``style.RC`` only).

    Args:
        run_dir: a run directory (or a folder holding exactly one run), or a ``Run``.
        pdf_path: where to write the PDF.
        compare: other runs (e.g. the same task under other interventions) for the comparison page.
        metric: R of the entropy law (as ``entrodiag analyze --metric``); default: a validation
            accuracy, else a training reward, named as such on every page.

    Raises:
        RunError: ``run_dir`` or a run in ``compare`` is not a run directory.

    Example:
        >>> build_report("runs/demo", "reports/demo.pdf", compare=["runs/kl_cov"])  # doctest: +SKIP
        PosixPath('reports/demo.pdf')
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    pdf_path = Path(pdf_path)
    with matplotlib.rc_context(RC):
        data = collect(run_dir, compare, metric)
        pages = render(data)
        run = data.run
        when = time.strftime("%Y-%m-%d %H:%M")
        stamp(pages, f"entrodiag {__version__} report · {run.run_id} · {run.path} · generated {when}",
              f"{run.run_id} · {data.summary['run']['status']}")
        pdf_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.tmp")
        try:
            with _lean_font_subsets(), PdfPages(tmp, metadata={"Title": f"entrodiag report: {run.run_id}",
                                         "Subject": "Entropy dynamics of an RL fine-tuning run",
                                         "Creator": f"entrodiag {__version__}"}) as pdf:
                for page in pages:
                    pdf.savefig(page.fig, dpi=150)  # the resolution of rasterised parts (the heatmap)
            os.replace(tmp, pdf_path)
        finally:
            tmp.unlink(missing_ok=True)
    return pdf_path


@contextmanager
def _lean_font_subsets() -> Iterator[None]:
    """Embed font subsets without their OpenType layout tables (GSUB, GPOS, GDEF, kern).

    A PDF places every glyph by index and position, so a viewer never reads these tables, but
    subsetting DejaVu's kerning tables was about a quarter of the time of the whole report (fontTools,
    when matplotlib writes the fonts). The change is limited to this block and to matplotlib's own
    reference to ``fontTools.subset``; where matplotlib no longer has it, nothing is changed.
    """
    try:
        from fontTools import subset
        from matplotlib.backends import _backend_pdf_ps as pdf_ps
    except ImportError:  # pragma: no cover - matplotlib always ships both
        yield
        return
    if getattr(pdf_ps, "subset", None) is not subset:
        yield
        return

    class LeanOptions(subset.Options):
        def __init__(self, **kw) -> None:
            super().__init__(**kw)
            self.drop_tables = [*self.drop_tables, "GSUB", "GPOS", "GDEF", "kern"]

    class LeanSubset:
        Options = LeanOptions

        def __getattr__(self, name: str):
            return getattr(subset, name)

    pdf_ps.subset = LeanSubset()
    try:
        yield
    finally:
        pdf_ps.subset = subset


__all__ = ["build_report"]
