"""The dashboard as a reader sees it on a run the entropy law does not describe, and on a run that
logged only a few series: what is withheld says so and why, and an empty panel says what is
missing (``streamlit.testing.v1.AppTest``; the runs are written directly, a few kB each).
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from test_dashboard import app, figures, page
from test_report_pages import degenerate_run

from entrodiag.analysis import analyze_run, fit_entropy_law


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    """The law is not applicable (``degenerate_run``); no covariance, shares or entropy quantiles
    logged; three evaluation names, two long ones."""
    return degenerate_run(tmp_path_factory.mktemp("degen") / "run", {
        "val/format_accuracy_of_the_answers": 0.1, "val/reward_from_the_grader_model": -0.05})


@pytest.fixture(scope="module")
def summary(degenerate) -> dict:
    s = analyze_run(degenerate)
    assert s["law"]["verdict"]["status"] == "not applicable" and s["law"]["metric"] == "val/accuracy"
    return s


def test_runs_page_says_why_the_ceiling_is_missing(degenerate, summary, monkeypatch):
    at = app(degenerate.path, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    shown = {m.label: m for m in at.metric}
    assert shown["Ceiling b − a"].value == "—"
    assert shown["Ceiling b − a"].delta == "withheld (not applicable)"  # not "95% CI —–—"
    fc = summary.get("forecast") or {}
    if fc.get("status") == "ok":
        assert shown["Accuracy at the floor (law)"].delta == "withheld (not applicable)"
    table = at.dataframe[0].value
    assert table["law"].tolist() == ["not applicable"]
    assert table["ceiling"].tolist() == ["withheld (not applicable)"]  # not "None"


def test_dynamics_page_says_what_an_empty_panel_lacks(degenerate, summary, monkeypatch):
    at = page(app(degenerate.path, monkeypatch), "page_dynamics.py")
    entropy, panels = figures(at)[:2]
    # no legend entry for a series the run never logged (the store keeps the column, all null)
    assert {t.get("name") for t in entropy["data"]} == {"mean"}
    notes = [a["text"].replace("<br>", " ") for a in panels["layout"]["annotations"]]
    empty = ("cov_mean or entropy_pressure", "resp_len_mean", "zero_adv_group_frac", "high_entropy_frac")
    for column in empty:
        assert any(f"no {column} in the step rows" in n for n in notes), (column, notes)
    # the panels with data say nothing
    assert not any("reward_mean" in n or "evaluations" in n for n in notes)
    # the evaluation panel's title is broken into lines instead of running off its panel
    title = next(a["text"] for a in panels["layout"]["annotations"] if a["text"].startswith("Evaluation"))
    assert title.count("<br>") >= 1
    assert all(len(re.sub(r"<[^>]+>", "", line)) <= 60 for line in title.split("<br>")), title


def test_law_page_draws_no_early_fit_and_no_curve_to_zero(degenerate, summary, monkeypatch):
    at = page(app(degenerate.path, monkeypatch), "page_law.py")
    fig = figures(at)[0]
    names = [t.get("name") for t in fig["data"]]
    assert "evaluations" in names and not any("early fit" in (n or "") for n in names)
    fit = fit_entropy_law(degenerate)
    curve = next(t for t in fig["data"] if (t.get("name") or "").startswith("fit: "))
    # the curve covers the points' entropy; its value at H = 0 (the withheld ceiling) is not drawn
    assert min(curve["x"]) >= 0.95 * min(fit.H) - 1e-9 and min(curve["x"]) > 0
    assert json.dumps(fig).count(f"{fit.ceiling:.3f}") == 0


def test_compare_page_says_what_an_empty_panel_lacks(degenerate, monkeypatch):
    at = page(app(degenerate.path, monkeypatch), "page_compare.py")
    overlay = figures(at)[0]
    notes = [a["text"].replace("<br>", " ") for a in overlay["layout"].get("annotations", [])
             if "selected run" in a["text"].replace("<br>", " ")]
    assert notes == ["no cov_mean in the step rows of any selected run"], notes  # the other three have data
