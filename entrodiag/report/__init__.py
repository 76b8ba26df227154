"""PDF diagnostic reports of entrodiag runs (matplotlib, no browser).

    from entrodiag.report import build_report
    build_report("runs/demo", "reports/demo.pdf")                        # one run
    build_report("runs/grpo", "reports/cmp.pdf", compare=["runs/kl_cov"])  # with a comparison page

The numbers come from ``entrodiag.analysis``; this package only lays them out: ``data`` gathers
them, ``figures`` has one function per plot, ``examples`` draws responses token by token,
``pages`` one builder per page, ``layout`` places text and charts, ``style`` holds the colours
(one per quantity, the same on every page), fonts and formats. Never imports torch.
"""

from .build import build_report

__all__ = ["build_report"]
