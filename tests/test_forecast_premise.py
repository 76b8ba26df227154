"""The entropy forecast checks its premise (falling entropy, below the floor now), says when a run
has ended, and the summary and verdict say nothing the analysis did not do."""

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from entrodiag.analysis import analyze_run, forecast_entropy
from entrodiag.analysis.render import render_summary
from entrodiag.importers import import_run
from entrodiag.report.data import ReportData
from entrodiag.report.summary_page import _forecast_line, _verdict
from entrodiag.store.reader import load_run
from entrodiag.store.writer import RunWriter

MADE = Path(__file__).parent / "data/wild/made-trl-tiny-addition-grpo-entropy-collapse/console.log"


def write_run(path, entropy, status="finished", reward=None):
    """A run of per-step entropy (and reward) rows, closed with ``status``."""
    steps = list(range(1, len(entropy) + 1))
    w = RunWriter(path, meta={"source": "test", "world_size": 1})
    cols = {"entropy_mean": [float(x) for x in entropy]}
    if reward is not None:
        cols["reward_mean"] = [float(x) for x in reward]
    w.append("steps", {"step": steps, "rank": [0] * len(steps), **cols})
    w.close(status)
    return load_run(path)


def report(summary) -> ReportData:
    return ReportData(run=SimpleNamespace(), summary=summary)


@pytest.fixture(scope="module")
def exploded(tmp_path_factory):
    """Entropy 0.5 → dips to 0.1 by step 20 → climbs to 2.4 at step 80 (cs336 no_baseline's shape)."""
    t = np.arange(80)
    h = np.where(t < 20, 0.5 * (0.2 ** (t / 19)), 0.1 * (24 ** ((t - 19) / 60)))
    return write_run(tmp_path_factory.mktemp("fc") / "exploded", h)


def test_an_exploding_entropy_gets_no_forecast_but_the_reason(exploded):
    fc = forecast_entropy(exploded)
    assert fc.current > 2 * fc.start  # the premise visibly fails: rising, far above half the start
    assert fc.reached_step is None and fc.predicted_step is None and fc.steps_left is None
    assert not fc.applies and fc.rate > 0
    assert fc.accuracy_at_floor is None
    assert "rising" in fc.reason and "climbed back" in fc.reason
    assert "does not apply" in fc.describe() and "reached at step" not in fc.describe()
    line = _forecast_line(report(analyze_run(exploded)))
    assert "does not apply" in line and "already fell" not in line


def test_a_falling_entropy_below_the_floor_now_is_still_reached(tmp_path):
    h = 0.8 * np.exp(-np.arange(60) / 20)  # half the start at step ~15, below it from then on
    fc = forecast_entropy(write_run(tmp_path / "r", h))
    assert fc.reached_step is not None and abs(fc.reached_step - 16) <= 4 and fc.steps_left == 0
    assert fc.applies


def test_an_ended_run_is_forecast_as_what_would_have_happened(tmp_path):
    h = 0.8 * np.exp(-np.arange(40) / 150)  # still above half its start when the run ended
    run = write_run(tmp_path / "r", h, status="finished")
    fc = forecast_entropy(run)
    assert fc.predicted_step is not None and fc.predicted_step > 40
    assert "after its end" in fc.describe() and "would have" in fc.describe()
    assert fc.ended and fc.applies
    line = _forecast_line(report(analyze_run(run)))
    assert "from now" not in line and "after its end" in line
    assert not forecast_entropy(run, upto_step=30).ended  # as of step 30 the run was still going


def test_the_missing_line_says_the_law_uses_the_training_reward(tmp_path):
    import_run(MADE, tmp_path / "made")
    s = analyze_run(tmp_path / "made")
    assert s["run"]["eval_metrics"] == [] and s["law"]["status"] == "ok"
    line = next(m for m in s["missing"] if m.startswith("no evaluations"))
    assert "need a held-out R" not in line and "training" in line and s["law"]["metric"] in line


def test_a_run_too_short_for_every_detector_is_not_judged(tmp_path):
    run = write_run(tmp_path / "r", [0.9, 0.5, 0.2, 0.1, 0.05], reward=[0.1, 0.2, 0.3, 0.3, 0.3])
    s = analyze_run(run)
    text, _ = _verdict(report(s))
    assert "not judged" in text and "No collapse detected" not in text
    assert s["flags"]["items"] == [] and s["flags"]["judged"] == 0
    out = io.StringIO()
    render_summary(s, file=out, width=200)
    assert "not judged yet" in out.getvalue() and "none raised" not in out.getvalue()


def test_the_dashboard_gives_no_steps_left_for_an_exploding_entropy(exploded, monkeypatch):
    pytest.importorskip("streamlit")
    from test_dashboard import app, metrics, texts

    at = app(exploded.path, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    shown = metrics(at)
    assert shown["Floor predicted at step"] == "—" and shown["Steps left"] == "—"
    assert "The forecast does not apply: the entropy is rising" in texts(at)


def test_the_dashboard_says_a_run_too_short_for_every_detector_is_not_judged(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from test_dashboard import app, page, texts

    run = write_run(tmp_path / "r", [0.9, 0.5, 0.2, 0.1, 0.05], reward=[0.1, 0.2, 0.3, 0.3, 0.3])
    text = texts(page(app(run.path, monkeypatch), "page_collapse.py"))
    assert "Not judged yet" in text and "No collapse flag raised" not in text
