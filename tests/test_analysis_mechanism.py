"""Mechanism check (ΔH against −cov, Cui et al. 2025) and side-by-side run comparison."""

import json

import numpy as np
import pytest
from analysis_runs import cached_run, healthy, make_run

from entrodiag.analysis import compare_runs, fit_entropy_law, mechanism_check


def walk(n: int, seed: int = 0):
    """Entropy H with H[t+1] − H[t] = d[t] (a random walk around 0.8 nats) and the steps d."""
    d = 0.02 * np.random.default_rng(seed).standard_normal(n)
    return 0.8 + np.concatenate([[0.0], np.cumsum(d[:-1])]), d


def test_agrees_when_the_next_step_change_follows_minus_cov(tmp_path):
    H, d = walk(60)
    m = mechanism_check(make_run(tmp_path / "r", steps=60, entropy=H, cov=-d))
    assert m.verdict == "agrees" and m.n == 59 and m.delta_source.startswith("next recorded step")
    assert m.pearson > 0.99 and m.spearman > 0.99 and m.sign_agreement == 1.0 and m.pearson_p < 1e-6
    assert json.loads(json.dumps(m.to_dict(), allow_nan=False))["verdict"] == "agrees"


def test_disagrees_when_entropy_moves_against_minus_cov(tmp_path):
    H, d = walk(60, seed=1)
    m = mechanism_check(make_run(tmp_path / "r", steps=60, entropy=H, cov=d))
    assert m.verdict == "disagrees" and m.pearson < -0.99


def test_no_agreement_when_cov_is_unrelated(tmp_path):
    H, _ = walk(60, seed=2)
    cov = 0.02 * np.random.default_rng(3).standard_normal(60)
    m = mechanism_check(make_run(tmp_path / "r", steps=60, entropy=H, cov=cov))
    assert m.verdict == "no agreement" and abs(m.pearson) < 0.3


def test_uses_the_after_update_entropy_when_logged(tmp_path):
    rng = np.random.default_rng(4)
    H = 0.8 + 0.05 * rng.standard_normal(40)  # next-step differences carry no signal
    cov = 0.02 * rng.standard_normal(40)
    run = make_run(tmp_path / "r", steps=40, entropy=H, cov=cov, extra={"entropy_after": H - cov})
    m = mechanism_check(run)
    assert m.delta_source.startswith("entropy_after") and m.n == 40
    assert m.verdict == "agrees" and m.pearson > 0.99


def test_positive_cov_with_falling_entropy_is_consistent_in_direction_only(tmp_path):
    rng = np.random.default_rng(5)
    H = 0.9 - 0.6 * np.linspace(0, 1, 80) + 0.003 * rng.standard_normal(80)
    cov = 0.05 + 0.01 * rng.standard_normal(80)
    m = mechanism_check(make_run(tmp_path / "r", steps=80, entropy=H, cov=cov))
    assert m.verdict == "consistent in direction", m
    assert m.mean_delta < 0 and m.mean_neg_cov < 0 and m.sign_agreement > 0.8


def test_too_few_steps_is_insufficient_data(tmp_path):
    m = mechanism_check(make_run(tmp_path / "r", steps=5, entropy=lambda u: 1 - 0.5 * u, cov=0.01))
    assert m.verdict == "insufficient data" and m.n == 4 and "needs 8" in m.explanation


def test_compare_runs_side_by_side(tmp_path_factory):
    base = cached_run(tmp_path_factory, "healthy", **healthy())
    collapsed = cached_run(
        tmp_path_factory, "collapsed",
        **healthy(entropy=lambda u: 0.05 + 0.95 * np.exp(-20 * u), cov=0.05, intervention="none"),
    )
    kept = cached_run(tmp_path_factory, "kl_cov", **healthy(entropy=lambda u: 0.9 - 0.1 * u, intervention="kl_cov"))
    table = compare_runs([base, collapsed, kept.path])
    assert table.height == 3 and table["intervention"].to_list() == ["none", "none", "kl_cov"]
    rows = table.to_dicts()
    assert rows[0]["n_critical"] == rows[0]["n_warning"] == 0 and rows[0]["flags"] == ""
    assert rows[1]["n_critical"] >= 1 and "early_collapse" in rows[1]["flags"]
    assert rows[0]["ceiling"] == pytest.approx(fit_entropy_law(base, n_boot=0).ceiling)
    assert rows[2]["entropy_ratio"] == pytest.approx(0.8 / 0.9, abs=0.02)
    assert rows[1]["cov_pos_share"] == 1.0 and rows[0]["metric"] == "val/accuracy_sampled"
    assert {"law_a", "law_b", "law_r2", "gain_frac", "eval_final", "eval_best", "mechanism"} <= set(table.columns)


def test_light_statistics_match_scipy_stats():
    from scipy import stats

    from entrodiag.analysis import stats as _stats  # scipy.stats is `stats` here

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 0.3 * x + rng.normal(size=40)
    y_ties = np.round(y, 1)
    ref = stats.linregress(x, y)
    assert _stats.linregress(x, y) == pytest.approx((ref.slope, ref.intercept))
    assert _stats.t_ppf(0.975, 17) == pytest.approx(stats.t.ppf(0.975, 17))
    r, p = _stats.pearson(x, y)
    assert (r, p) == pytest.approx(tuple(stats.pearsonr(x, y)))
    assert _stats.spearman(x, y_ties) == pytest.approx(stats.spearmanr(x, y_ties).statistic)
    np.testing.assert_allclose(_stats.rank(y_ties), stats.rankdata(y_ties))
    for k, n, q in ((30, 40, 0.6), (12, 40, 0.5), (40, 40, 0.99), (0, 5, 0.5)):
        assert _stats.binom_p_greater(k, n, q) == pytest.approx(
            stats.binomtest(k, n, q, alternative="greater").pvalue, rel=1e-9)
    assert _stats.ttest_1samp_p(y) == pytest.approx(stats.ttest_1samp(y, 0.0).pvalue)
    import subprocess
    import sys

    code = "import sys, entrodiag.analysis; assert 'scipy.stats' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
