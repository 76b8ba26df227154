"""What a reader sees on the report's pages, read back from the PDF's text: the law's numbers
withheld in full words and in the same rows on the summary and the law page where the law does not
describe the run; the law page's words for a training-reward R; an imported run's pages (what to
log in its framework, its entropy temperature said once, run.json values as JSON); and a paragraph
that never breaks across two pages.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_analysis_premises import verl_log, wiggle, write_run
from test_report import build, pdf_text

from entrodiag.analysis import analyze_run
from entrodiag.analysis.verdicts import LAW_NUMBERS
from entrodiag.importers import import_run
from entrodiag.report.layout import Page, TextFlow, line_height
from entrodiag.report.style import SIZE
from entrodiag.report.summary_page import LAW_ROWS

WILD = Path(__file__).resolve().parent / "data" / "wild" / "made-trl-tiny-addition-grpo-entropy-collapse"


def degenerate_run(path: Path, more_evals: dict[str, float] | None = None):
    """Entropy falls 1.0 -> 0.3 and the validation accuracy falls with it (a < 0 on a clean fit):
    the law is not applicable. Only entropy, reward and evaluations are logged; ``more_evals``:
    more evaluation names, each val/accuracy plus its offset."""
    n = 60
    steps = np.arange(1, n + 1)
    H = np.linspace(1.0, 0.3, n)
    ev = steps[::3]
    R = 0.1 + 0.25 * np.exp(H[ev]) + wiggle(len(ev), 0.004, 3)
    evals = {"val/accuracy": (ev, R), **{k: (ev, R + dv) for k, dv in (more_evals or {}).items()}}
    return write_run(path, steps, {"entropy_mean": H, "reward_mean": 0.2 + wiggle(n, 0.02, 4)}, evals)


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    return degenerate_run(tmp_path_factory.mktemp("degen") / "run")


@pytest.fixture(scope="module")
def degenerate_text(degenerate, tmp_path_factory) -> str:
    return pdf_text(build(degenerate.path, tmp_path_factory.mktemp("degen-pdf") / "d.pdf"))


@pytest.fixture(scope="module")
def trl(tmp_path_factory):
    """The made-here TRL run (trainer_state.json: no evaluations, temperature not in the log)."""
    out = tmp_path_factory.mktemp("trl") / "run"
    import_run(WILD / "trainer_state.json", out)
    return out


@pytest.fixture(scope="module")
def trl_text(trl, tmp_path_factory) -> str:
    return pdf_text(build(trl, tmp_path_factory.mktemp("trl-pdf") / "trl.pdf"))


def test_withheld_law_numbers_are_shown_whole_in_the_same_rows_on_both_pages(degenerate, degenerate_text):
    law = analyze_run(degenerate)["law"]
    assert law["verdict"]["status"] == "not applicable"
    text = degenerate_text
    # each prediction of the law, on the summary and on the law page, in full words
    # (never cut to "withheld (no…")
    predictions = [key for _, key, _ in LAW_ROWS if key in LAW_NUMBERS]
    assert len(predictions) >= 4 and text.count("withheld (not applicable)") == 2 * len(predictions)
    assert not re.search(r"withheld \([^)]*…", text)
    for row in ("share of the attainable gain realised", "the law's R at the last step",
                "fraction of the ceiling reached"):
        assert text.count(row) == 2, row  # the same words on both pages
    assert format(law["a"], ".4g") in text and format(law["b"], ".4g") in text  # the fit itself is shown
    # no prediction drawn by step, and the withholding said once, not once per fraction
    assert "law (all points)" not in text and "Measured, by step" in text
    assert "f = 0.15" not in text and text.count("no early prediction") == 1


def test_law_page_of_a_training_reward_speaks_of_steps(trl, trl_text):
    law = analyze_run(trl)["law"]
    assert (law["metric_choice"] or {}).get("training") and law["metric"] == "reward_mean"
    text = " ".join(trl_text.split())
    assert f"Fitted on all {law['n']} steps" in text and "fit the first f of the steps" in text
    assert "evaluations and predict" not in text and "Fitted on all evaluations" not in text
    assert "validation performance" not in text


def test_an_imported_run_is_told_what_to_log_in_its_framework(trl_text):
    text = " ".join(trl_text.split())
    assert "eval_dataset" in text  # TRL's way to get evaluations, in the empty Evaluation panel too
    assert "Recorder.log_eval" not in text  # not the Recorder's, which this run never used


def test_an_imported_run_states_its_temperature_once_and_run_json_as_json(trl_text):
    text = " ".join(trl_text.split())
    assert "T unknown" in text  # the entropy line of the summary says the temperature ...
    assert "entropy temperature" not in text  # ... and no second row says "—" beside it
    appendix = text.split("Appendix: configuration", 1)[1]
    assert not re.search(r"\b(None|True|False)\b", appendix), "Python reprs in the appendix"
    assert "null" in appendix  # entropy_temperature, model, task: as run.json has them


class _Flags:
    """Just what ``_flags`` reads of a ``ReportData``."""

    def __init__(self, skipped: dict[str, str]) -> None:
        self.skipped = skipped

    def section(self, name: str) -> dict:
        assert name == "flags"
        return {"items": [], "skipped": self.skipped}


def test_a_paragraph_is_not_split_across_pages():
    from entrodiag.report.summary_page import _flags

    why = "no cov_mean in the step rows " + "(log a column named cov_mean in the metrics file) " * 4
    pages = [Page("first")]
    make = lambda: Page("continued")
    lh = line_height(SIZE["small"])
    heading = 0.06 + line_height(SIZE["heading"]) + 0.04  # TextFlow.heading: gap, line, gap
    # room for the heading, the "no flag" line and one line and a half of the two-line paragraph
    top = pages[0].bottom + heading + line_height(SIZE["body"]) + 1.5 * lh
    flow = TextFlow(pages, make, page=pages[0], top=top)
    _flags(_Flags({"positive_covariance": why}), flow)

    def lines(page: Page) -> list[str]:
        return [t.get_text() for t in page.fig.texts]

    assert len(pages) == 2
    assert not any("Not judged" in t or "metrics file" in t for t in lines(pages[0]))
    assert sum("metrics file" in t for t in lines(pages[1])) >= 2  # the whole paragraph, on the next page


def test_the_reward_panel_draws_the_series_the_analysis_reads(tmp_path):
    """verl's logged reward holds a KL penalty: the analysis reads the task score, and so does the
    Dynamics page's reward panel (not the penalised reward the detectors ignore)."""
    n = 40
    steps = np.arange(1, n + 1)
    u = np.linspace(0, 1, n)
    score = 0.2 + 0.5 * u + wiggle(n, 0.01, 1)
    penalty = 0.3 * (1 - u)
    log = verl_log(tmp_path / "verl.jsonl", steps, {
        "actor/entropy": 0.8 - 0.4 * u, "critic/score/mean": score, "critic/rewards/mean": score - penalty,
        "actor/reward_kl_penalty": penalty, "actor/reward_kl_penalty_coeff": np.full(n, 0.05),
        "response_length/mean": np.full(n, 100.0)})
    import_run(log, tmp_path / "run")
    reward = analyze_run(tmp_path / "run")["reward"]
    assert reward["column"] == "score_mean" and reward["label"] == "task score"
    text = " ".join(pdf_text(build(tmp_path / "run", tmp_path / "kl.pdf")).split())
    assert "Training task score" in text and "mean task score" in text
    assert "Training reward" not in text
