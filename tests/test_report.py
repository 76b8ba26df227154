"""`entrodiag report`: the PDF's pages and the numbers printed on them, a run with missing data,
hostile token text, the comparison page, a real run of the built-in trainer, and the atomic write.

Runs come from ``analysis_runs`` (shared with the analysis tests) and the session's ``tiny_run``.
The PDF's text is read with ``pdftotext`` (poppler-utils) or ``pypdf``; without either, the text
checks skip and say so.
"""

import re
import shutil
import subprocess
import sys
import warnings

import matplotlib
import pytest
from analysis_runs import cached_run, healthy, make_run
from test_analysis_tokens import demo_settings

from entrodiag import detect_collapse, fit_entropy_law
from entrodiag.analysis.verdicts import judge_law
from entrodiag.analysis import analyze_run
from entrodiag.cli import main
from entrodiag.report import build_report
from entrodiag.store import event_row, write_events


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return cached_run(tmp_path_factory, "demo", **demo_settings())


def page_count(pdf) -> int:
    """Pages of a PDF written by matplotlib (its page objects are plain dictionaries)."""
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))


def pdf_text(pdf) -> str:
    """The PDF's text (pdftotext, else pypdf); skips the calling test when neither exists."""
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True,
                              text=True, encoding="utf-8").stdout
    try:
        from pypdf import PdfReader
    except ImportError:
        pytest.skip("cannot read the PDF's text: neither pdftotext (poppler-utils) nor pypdf is installed")
    return "\n".join(page.extract_text() for page in PdfReader(str(pdf)).pages)


def build(*args, **kw):
    """``build_report`` with every warning recorded; fails on a font or mathtext warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = build_report(*args, **kw)
    bad = [str(w.message) for w in caught if "glyph" in str(w.message).lower() or "math" in str(w.message).lower()]
    assert not bad, bad
    return out


class HostileTokenizer:
    """Decodes ids to text that breaks naive rendering: mathtext, markup, escapes, control
    characters, newlines, tabs, CJK, Arabic and emoji."""

    TOKENS = ("$x$", "<b>", "&amp;", "\\frac{1}{2}", "\n", "\t", "中文", "مرحبا", "😀", "a_b^c", " ", "x\ny",
              "%", "{}", "#", "\x00", "日本語", "$$\\alpha$$", "ok", "\r\n")

    def decode(self, ids):
        return "".join(self.TOKENS[i % len(self.TOKENS)] for i in ids)


def test_report_of_the_demo_shaped_run(demo, tmp_path, capsys):
    pdf = tmp_path / "out" / "demo.pdf"
    assert main(["report", str(demo.path), "-o", str(pdf)]) == 0
    assert f"report written to {pdf}" in capsys.readouterr().out
    # summary, dynamics, law, distribution + forking tokens, examples, mechanism, appendix
    assert page_count(pdf) == 7
    text = pdf_text(pdf)
    fit = fit_entropy_law(demo)
    for value in (fit.a, fit.b, fit.ceiling):  # printed as `entrodiag analyze` prints them
        assert format(value, ".4g") in text
    flags = detect_collapse(demo)
    assert flags
    for f in flags:
        assert f.kind in text and f.severity.upper() in text
    for title in ("Entropy diagnostic report", "Verdict", "Dynamics", "The entropy law", "Early prediction",
                  "Forking-token leaderboard", "Example responses", "Mechanism check", "Appendix: configuration"):
        assert title in text, title
    fc = analyze_run(demo).get("forecast") or {}
    if fc.get("status") == "ok":
        assert "half its start" in text
    assert not list(pdf.parent.glob(".*.tmp"))


def test_a_run_without_evaluations_or_token_rows_gets_a_shorter_report(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "bare", steps=14, token_sample=0, entropy=lambda u: 0.9 - 0.4 * u)
    assert run.evals.is_empty() and not run.parts("tokens")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(run.path)]) == 0  # default: reports/<run_id>.pdf
    pdf = tmp_path / "reports" / f"{run.run_id}.pdf"
    # summary, dynamics, the law (on the training reward: no evaluations), distribution (histograms
    # cover every token), mechanism, appendix
    assert page_count(pdf) == 6
    text = " ".join(pdf_text(pdf).split())
    assert "no evaluations" in text and "Recorder.log_eval" in text
    assert "R = reward_mean (training reward" in text
    assert "no token rows" in text and "token_sample" in text
    assert "Example responses page left out" in text
    assert "Not shown: no token rows" in text  # the leaderboard's place on the distribution page


def test_hostile_token_text_renders(tmp_path):
    settings = demo_settings()
    settings.update(steps=16, tokenizer=HostileTokenizer(), token_sample=6)
    run = make_run(tmp_path / "hostile", **settings)
    write_events(run.path, [
        event_row(5, "flag", "early_collapse", severity="warning", first_step=0, last_step=5, message="entropy $fell$"),
        event_row(8, "switch", "kl_cov", message="switched"),
        event_row(12, "stop", "entropy_floor", message="stopped"),
    ])
    pdf = build(run.path, tmp_path / "hostile.pdf")
    assert page_count(pdf) == 7
    text = pdf_text(pdf)
    assert "Ceilings: entropy-law ceiling" in text and "compute asymptote" in text  # both ceilings (issue 28)
    for shown in ("$x$", "<b>", "&amp;", "\\frac{1}{2}", "a_b^c", "$$\\alpha$$", "⏎", "□"):
        assert shown in text, shown
    assert "\x00" not in text
    assert "switch → kl_cov" in text and "entropy $fell$" in text  # events, listed under the plots


def test_comparison_page(demo, tmp_path_factory, tmp_path):
    other = cached_run(tmp_path_factory, "healthy", **healthy())
    pdf = build(demo.path, tmp_path / "cmp.pdf", compare=[other.path])
    assert page_count(pdf) == 8
    text = pdf_text(pdf)
    assert "Comparison" in text and "compare_runs" in text
    assert demo.run_id in text and other.run_id in text


def test_report_of_a_builtin_trainer_run(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    pdf = build(run_dir, tmp_path / "tiny.pdf")
    assert page_count(pdf) >= 7
    text = pdf_text(pdf)
    fit = fit_entropy_law(run_dir)
    flags = detect_collapse(run_dir)
    verdict = judge_law(fit, [f.kind for f in flags])
    if verdict.fits:  # the law's numbers are shown only where the law fits (analysis.verdicts)
        for value in (fit.a, fit.b, fit.ceiling):
            assert format(value, ".4g") in text
    else:
        assert verdict.status in text and format(fit.ceiling, ".4g") not in text
    for f in flags:
        assert f.kind in text
    assert "val/accuracy_sampled" in text and "lr" in text  # the law's metric and the configuration


def test_not_a_run_exits_2_and_a_crash_leaves_no_half_pdf(tmp_path, demo, monkeypatch, capsys):
    assert main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "x.pdf")]) == 2
    assert "no such file" in capsys.readouterr().err and not (tmp_path / "x.pdf").exists()
    pdf = tmp_path / "keep.pdf"
    pdf.write_bytes(b"%PDF-1.4 an older report\n%%EOF\n")
    from matplotlib.backends.backend_pdf import PdfPages

    calls = []
    real = PdfPages.savefig

    def failing(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(self, *a, **kw)

    monkeypatch.setattr(PdfPages, "savefig", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(demo.path, pdf)
    assert pdf.read_bytes().startswith(b"%PDF-1.4 an older report")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert matplotlib.get_backend()  # pyplot was never needed


def test_report_imports_neither_torch_nor_pyplot():
    code = ("import sys, entrodiag.cli, entrodiag.report; "
            "print(sorted(m for m in ('torch', 'matplotlib.pyplot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
