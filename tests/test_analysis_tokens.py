"""Token analyses: forking-token leaderboard, HWE span statistics, entropy distribution."""

import numpy as np
import polars as pl
import pytest
from analysis_runs import cached_run, healthy, make_run
from conftest import CharTokenizer

from entrodiag.analysis import entropy_distribution, forking_leaderboard, hwe_span_stats


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return cached_run(tmp_path_factory, "demo", **demo_settings())


def demo_settings():
    """A run shaped like the built-in trainer's demo (entropy 0.6 → 0.17 nats, positive covariance,
    sampled accuracy on the law, greedy accuracy beside it), with token text."""
    return healthy(
        steps=100, entropy=lambda u: 0.17 + 0.43 * np.exp(-4 * u), cov=lambda u: 0.02 + 0.01 * np.sin(20 * u),
        reward=lambda u: 0.26 + 0.43 * (1 - np.exp(-4 * u)), law=(0.3, 0.95), eval_noise=0.003, greedy=True,
        tokenizer=CharTokenizer(), token_sample=8, intervention="none",
    )


def test_forking_leaderboard_matches_the_token_rows(run):
    board = forking_leaderboard(run, top=6)
    tokens = run.tokens
    assert board.height == 4  # only ids 0-3 ("abcd") are forking tokens in this run
    assert set(board["token"]) == set("abcd") and board["forking_rate"].min() > 0.9
    assert board["forking"].to_list() == sorted(board["forking"].to_list(), reverse=True)
    for row in board.iter_rows(named=True):
        own = tokens.filter(pl.col("token_id") == row["token_id"])
        assert row["count"] == own.height and row["forking"] == own["is_forking"].sum()
        assert row["mean_entropy"] == pytest.approx(own["entropy"].mean(), rel=1e-5)
    assert board["forking_share"].sum() == pytest.approx(1.0)
    assert forking_leaderboard(run, top=2).height == 2
    by_rate = forking_leaderboard(run, by="forking_rate", min_count=1)
    assert by_rate["forking_rate"].to_list() == sorted(by_rate["forking_rate"].to_list(), reverse=True)
    with pytest.raises(ValueError, match="by must be one of"):
        forking_leaderboard(run, by="count")


def test_forking_leaderboard_without_text_uses_ids(tmp_path):
    board = forking_leaderboard(make_run(tmp_path / "r", steps=12, token_sample=4), top=3)
    assert board.height == 3 and all(t.startswith("#") for t in board["token"])


def test_hwe_span_stats(run):
    spans = run.spans
    s = hwe_span_stats(run, examples=4)
    assert s["n_spans"] == spans.height > 0
    assert s["mean_length"] == pytest.approx((spans["end"] - spans["start"]).mean())
    top = [e["mean_window_entropy"] for e in s["examples"]]
    assert len(top) == 4 and top == sorted(top, reverse=True)
    assert top[0] == pytest.approx(spans["mean_window_entropy"].max())
    assert all(isinstance(e["text"], str) and len(e["text"]) == e["end"] - e["start"] for e in s["examples"])
    assert s["spans_per_response"] == pytest.approx(spans.height / run.samples.height)
    assert 0 <= s["hwe_token_frac_end"] <= 1


def test_entropy_distribution_from_histograms(run):
    d = entropy_distribution(run, segments=4)
    assert len(d["segments"]) == 4 and len(d["edges"]) == len(d["segments"][0]["shares"]) + 1
    steps = run.steps
    for seg in d["segments"]:
        assert sum(seg["shares"]) == pytest.approx(1.0) and sum(seg["coarse"].values()) == pytest.approx(1.0)
        part = steps.filter(pl.col("step").is_between(seg["first_step"], seg["last_step"]))
        assert seg["n_tokens"] == part["n_tokens"].sum()
        assert seg["coarse"]["≥ 0.672"] == pytest.approx(part["high_entropy_frac"].mean(), abs=1e-9)
        assert seg["entropy_p50"] == pytest.approx(part["entropy_p50"].mean())
    first, last = d["segments"][0]["coarse"]["≥ 0.672"], d["segments"][-1]["coarse"]["≥ 0.672"]
    assert last < first  # the high-entropy share shrinks as entropy falls


def test_token_analyses_on_a_run_without_token_rows(tmp_path):
    run = make_run(tmp_path / "r", steps=12, token_sample=0)
    board = forking_leaderboard(run)
    assert board.is_empty() and board.columns[:3] == ["token", "token_id", "count"]
    s = hwe_span_stats(run)
    assert s["n_spans"] == 0 and "hwe_token_frac_start" in s
    assert len(entropy_distribution(run)["segments"]) == 5  # histograms cover every token anyway


def test_a_space_token_is_shown_not_blank():
    from entrodiag.analysis.tokens import shown_token

    assert [shown_token(t) for t in (" ", "   ", " the", "a ", "", "\n")] == ["␣", "␣␣␣", " the", "a ", "", "\n"]
