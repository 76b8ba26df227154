"""The entropy law R = −a·e^H + b: recovery, bootstrap intervals, pairing with a run's evaluations,
early prediction, and clear errors on degenerate input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from analysis_runs import make_run

from entrodiag import LawFit, fit_entropy_law
from entrodiag.analysis import AnalysisError, early_prediction, law_points, pick_eval_metric


def synthetic(seed: int, n: int = 50, a: float = 0.3, b: float = 0.9, sigma: float = 0.01):
    rng = np.random.default_rng(seed)
    H = np.linspace(1.2, 0.1, n)
    return H, b - a * np.exp(H) + rng.normal(0.0, sigma, n)


def test_fit_recovers_a_b_and_intervals_cover_the_truth():
    a, b = 0.3, 0.9
    covered = {"a": 0, "b": 0, "ceiling": 0}
    for seed in range(20):
        fit = fit_entropy_law(synthetic(seed), seed=seed)
        assert fit.a == pytest.approx(a, rel=0.05) and fit.b == pytest.approx(b, rel=0.05)
        assert fit.ceiling == pytest.approx(fit.b - fit.a) and fit.n == 50
        for name, truth in (("a", a), ("b", b), ("ceiling", b - a)):
            lo, hi = fit.ci[name]
            assert lo < getattr(fit, name) < hi
            covered[name] += lo <= truth <= hi
    assert min(covered.values()) >= 17, covered


def test_fit_statistics_predict_and_json():
    H, R = synthetic(0, sigma=0.0)
    fit = fit_entropy_law((H, R))
    assert fit.r2 == pytest.approx(1.0) and fit.rmse == pytest.approx(0.0, abs=1e-12)
    assert fit.predict(0.0) == pytest.approx(fit.ceiling)
    np.testing.assert_allclose(fit.predict(H), R, atol=1e-12)
    assert fit.r_last == pytest.approx(R[-1])
    assert fit.ceiling_frac == pytest.approx(R[-1] / 0.6)
    # gain realised from the first point to the ceiling: (e^1.2 − e^0.1) / (e^1.2 − 1)
    assert fit.gain_frac == pytest.approx((np.exp(1.2) - np.exp(0.1)) / (np.exp(1.2) - 1))
    assert fit.headroom == pytest.approx(0.6 - R[-1])
    d = json.loads(json.dumps(fit.to_dict(points=True), allow_nan=False))
    assert d["a"] == pytest.approx(0.3) and len(d["points"]["H"]) == 50 and set(d["ci"]) == {"a", "b", "ceiling"}


@pytest.mark.parametrize(
    "H, R, match",
    [
        ([1.0, 0.8, 0.5], [0.1, 0.2, 0.3], "at least 4"),
        ([0.5] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "does not change"),
        ([1.0, np.nan, 0.8, np.nan, 0.5], [0.1, 0.2, 0.2, 0.3, 0.4], "at least 4"),
    ],
)
def test_degenerate_pairs_raise_a_clear_error(H, R, match):
    with pytest.raises(AnalysisError, match=match) as e:
        fit_entropy_law((H, R))
    assert isinstance(e.value, ValueError)


def test_mismatched_pairs_raise():
    with pytest.raises(ValueError, match="differ in length"):
        fit_entropy_law(([1.0, 0.5], [0.1]))


def test_pick_eval_metric_prefers_sampled_accuracy():
    assert pick_eval_metric(["val/loss", "val/accuracy_greedy", "val/accuracy_sampled"]) == "val/accuracy_sampled"
    assert pick_eval_metric(["val/accuracy_greedy", "val/accuracy"]) == "val/accuracy"
    assert pick_eval_metric(["eval/pass@1", "test/accuracy_greedy"]) == "test/accuracy_greedy"
    assert pick_eval_metric(["eval/pass@1", "eval/score"]) == "eval/pass@1"
    assert pick_eval_metric([]) is None


@pytest.fixture(scope="module")
def law_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("law") / "run", steps=80, entropy=lambda u: 1.2 - 1.0 * u,
                    law=(0.3, 0.9), eval_noise=0.005, greedy=True, eval_every=2)


def test_fit_on_a_run_pairs_evals_with_smoothed_training_entropy(law_run):
    fit = fit_entropy_law(law_run)
    assert fit.metric == "val/accuracy_sampled" and fit.entropy == "entropy_mean" and fit.smooth == 5
    assert fit.a == pytest.approx(0.3, rel=0.05) and fit.b == pytest.approx(0.9, rel=0.05)
    assert fit.r2 > 0.99 and fit.n == 41
    steps, H, R, metric = law_points(law_run, smooth=1)
    H_steps = law_run.steps["entropy_mean"].to_numpy()
    np.testing.assert_allclose(H, H_steps[steps], rtol=1e-6)  # smooth=1: the step's own entropy
    _, H5, _, _ = law_points(law_run, smooth=5)
    np.testing.assert_allclose(H5[-1], H_steps[-5:].mean(), rtol=1e-6)  # trailing mean of 5 steps
    greedy = fit_entropy_law(law_run, metric="val/accuracy_greedy", n_boot=0)
    assert greedy.metric == "val/accuracy_greedy" and greedy.ci == {}


def test_run_errors_say_what_to_log(tmp_path, law_run):
    with pytest.raises(AnalysisError, match="no evaluation or step column named 'val/x'.*val/accuracy_sampled"):
        fit_entropy_law(law_run, metric="val/x")
    # no evaluations: R falls back to the training reward, and says so
    no_evals = make_run(tmp_path / "no_evals", steps=12, entropy=lambda u: 1 - 0.5 * u, reward=lambda u: 0.2 + 0.5 * u)
    fit = fit_entropy_law(no_evals)
    assert fit.metric == "reward_mean" and fit.metric_choice.is_training
    assert fit.metric_choice.label == "training reward" and "no validation metric" in fit.metric_choice.reason
    few = make_run(tmp_path / "few", steps=6, law=(0.3, 0.9), eval_every=3, entropy=lambda u: 1 - u)
    with pytest.raises(AnalysisError, match="only 3 evaluation point.*evaluate more often"):
        fit_entropy_law(few)
    flat = make_run(tmp_path / "flat", steps=12, law=(0.3, 0.9), entropy=0.5)
    with pytest.raises(AnalysisError, match="does not change"):
        fit_entropy_law(flat)


def test_early_prediction_on_an_exact_law_and_its_reasons():
    H, R = synthetic(0, n=40, sigma=0.0)
    rows = early_prediction((H, R))
    assert [r.frac for r in rows] == [0.15, 0.3, 0.5]
    assert [r.n_fit for r in rows] == [6, 12, 20] and [r.n_test for r in rows] == [34, 28, 20]
    for r in rows:
        assert r.rmse == pytest.approx(0.0, abs=1e-9) and r.predicted_final == pytest.approx(R[-1])
        assert r.a == pytest.approx(0.3) and r.reason is None
    noisy = early_prediction(fit_entropy_law(synthetic(1, n=40)))  # reuses the fit's points
    assert all(r.rmse < 0.03 and abs(r.final_error) < 0.03 for r in noisy)
    short = early_prediction(synthetic(0, n=10, sigma=0.0))
    assert short[0].reason and "needs 4" in short[0].reason and short[0].rmse is None
    assert short[2].rmse == pytest.approx(0.0, abs=1e-9)
    assert json.loads(json.dumps([r.to_dict() for r in short], allow_nan=False))[0]["rmse"] is None


def test_lazy_top_level_exports_and_no_torch():
    import entrodiag

    assert entrodiag.LawFit is LawFit and callable(entrodiag.detect_collapse)
    code = "import entrodiag.analysis, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_metric_ranking_never_picks_a_time_length_or_count():
    from entrodiag.analysis.metric import is_performance, rank_eval_metrics

    names = ["val/seconds", "val/reward", "val/format_accuracy", "val/answer_accuracy", "val/num_examples",
             "val/test_score/gsm8k", "eval/runtime", "val/mean_length"]
    assert rank_eval_metrics(names) == ["val/answer_accuracy", "val/test_score/gsm8k", "val/reward",
                                        "val/format_accuracy"]
    assert not any(is_performance(n) for n in ("timing/gen", "resp_len_mean", "learning_rate", "val/loss",
                                               "entropy_mean", "perf/mfu/actor", "clip_frac"))
    assert pick_eval_metric(["val/seconds", "val/loss"]) is None


def test_prediction_interval_is_exact_on_the_law_and_covers_noisy_runs():
    from entrodiag.analysis import prediction_interval

    H, R = synthetic(0, n=20, sigma=0.0)
    est, lo, hi = prediction_interval(H[:10], R[:10], float(H[-1]))
    assert est == pytest.approx(R[-1]) and lo < R[-1] < hi and hi - lo < 0.05  # only the trend's own spread
    covered = 0
    for seed in range(200):  # the law holds with noise: the 90% interval should cover ~90% or more
        H, R = synthetic(seed, n=30)
        est, lo, hi = prediction_interval(H[:15], R[:15], float(H[-1]))
        covered += lo <= R[-1] <= hi
    assert covered / 200 >= 0.85
