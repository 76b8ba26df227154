"""The entropy forecast against trajectories whose crossing step is known by hand."""

import math

import numpy as np
import pytest
from analysis_runs import cached_run, healthy

from entrodiag.analysis import AnalysisError, analyze_run, fit_entropy_law, forecast_entropy

TAU = 150.0  # H(t) = 0.8·exp(−t/τ): half the start at t = τ·ln 2 ≈ 104


def _decay(noise: float, steps: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.8 * np.exp(-np.arange(steps) / TAU) * np.exp(rng.normal(0, noise, steps))


def test_an_exponential_decay_is_forecast_where_it_crosses(tmp_path_factory):
    run = cached_run(tmp_path_factory, "forecast-decay", steps=200, entropy=_decay(0.02), law=(0.4, 1.3))
    truth = TAU * math.log(2)  # ~104
    fc = forecast_entropy(run, upto_step=60)
    assert fc.reached_step is None and fc.current_step == 60
    assert abs(fc.floor - 0.5 * fc.start) < 1e-12 and abs(fc.start - 0.8) < 0.03
    assert abs(fc.predicted_step - truth) <= 0.1 * truth
    assert fc.predicted_low <= truth <= fc.predicted_high
    assert fc.steps_left == fc.predicted_step - 60
    assert abs(fc.rate + 1 / TAU) < 0.25 / TAU and abs(fc.half_life - truth) < 0.25 * truth
    # the law's accuracy at the floor is the fitted law evaluated there
    fit = fit_entropy_law(run)
    assert abs(fc.accuracy_at_floor - (1.3 - 0.4 * math.exp(fc.floor))) < 0.02
    assert abs(fit.predict(fc.floor) - fc.accuracy_at_floor) < 0.02
    # once it happened, the forecast says when (first smoothed value at or below the floor)
    done = forecast_entropy(run)
    assert done.reached_step is not None and abs(done.reached_step - truth) <= 6 and done.steps_left == 0
    assert "reached at step" in done.describe()


def test_the_interval_covers_the_truth_in_most_seeds(tmp_path):
    from analysis_runs import make_run

    covered = 0
    for seed in range(6):
        run = make_run(tmp_path / f"r{seed}", steps=100, entropy=_decay(0.05, steps=100, seed=seed), B=8, G=4,
                       T=4, token_sample=0, seed=seed)
        fc = forecast_entropy(run, upto_step=60, n_draws=2000)
        covered += fc.predicted_low <= TAU * math.log(2) <= (fc.predicted_high or math.inf)
    assert covered >= 5


def test_no_crossing_is_predicted_for_a_flat_or_rising_entropy(tmp_path_factory):
    wobble = 0.8 + 0.01 * np.sin(np.arange(60) / 3)
    for entropy in (0.8, wobble):  # exactly flat (no residuals at all), and flat with noise
        fc = forecast_entropy(cached_run(tmp_path_factory, f"forecast-flat-{np.ndim(entropy)}", steps=60,
                                         entropy=entropy, B=8, G=4, T=4, token_sample=0))
        assert fc.reached_step is None and fc.predicted_step is None and fc.steps_left is None
    slow = cached_run(tmp_path_factory, "healthy", **healthy())  # 0.9 -> 0.65 in 80 steps
    fc = forecast_entropy(slow, floor_frac=0.2)  # log-linear: 0.18 nats ~314 steps after step 79
    assert 79 + 0.8 * 314 < fc.predicted_step < 79 + 1.25 * 314
    fc = forecast_entropy(slow, floor_frac=0.01)  # beyond 10x the steps seen: not in sight
    assert fc.reached_step is None and fc.predicted_step is None and fc.steps_left is None
    assert "not falling fast enough" in fc.describe()
    rising = cached_run(tmp_path_factory, "forecast-rising", steps=40, entropy=lambda u: 0.5 + 0.3 * u)
    assert forecast_entropy(rising).predicted_step is None and forecast_entropy(rising).rate > 0


def test_bad_input_is_a_clear_error(tmp_path_factory):
    run = cached_run(tmp_path_factory, "forecast-decay", steps=200, entropy=_decay(0.02), law=(0.4, 1.3))
    with pytest.raises(AnalysisError, match="needs at least 10"):
        forecast_entropy(run, upto_step=5)
    with pytest.raises(AnalysisError, match="must be positive"):
        forecast_entropy(run, floor=0.0)
    with pytest.raises(ValueError, match="level"):
        forecast_entropy(run, level=1.5)
    # a floor in nats instead of a share
    fc = forecast_entropy(run, floor=0.2, upto_step=60)
    assert fc.floor == 0.2 and fc.floor_frac is None
    assert abs(fc.predicted_step - TAU * math.log(0.8 / 0.2)) <= 0.15 * TAU * math.log(4)


def test_analyze_includes_the_forecast(tmp_path_factory):
    run = cached_run(tmp_path_factory, "forecast-decay", steps=200, entropy=_decay(0.02), law=(0.4, 1.3))
    s = analyze_run(run)
    assert s["forecast"]["status"] == "ok" and s["forecast"]["reached_step"] == forecast_entropy(run).reached_step
    short = cached_run(tmp_path_factory, "forecast-short", steps=4)
    assert analyze_run(short)["forecast"]["status"] == "empty"
