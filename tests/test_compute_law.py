"""The compute-axis ceiling (analysis/compute_law.py): ScaleRL's sigmoid R(C) = R0 + (A − R0) /
(1 + (C_mid / C)^B) (arXiv 2510.13786) recovers known parameters, leaves out the start, refuses
where its premises fail, picks the compute axis, and is printed beside the law's ceiling."""

from __future__ import annotations

import io

import numpy as np
import pytest

from entrodiag.analysis.ceilings import asymptote_text, ceiling_text, ceilings_line
from entrodiag.analysis.compute_law import (
    MID_MAX,
    MIN_POINTS,
    START_FRAC,
    compute_axis,
    fit_compute_law,
    judge_compute,
    predict_final,
)
from entrodiag.analysis.runs import AnalysisError

TRUE = {"A": 0.62, "B": 1.8, "C_mid": 3.0e5, "R0": 0.12}


def sig(C, A=TRUE["A"], B=TRUE["B"], C_mid=TRUE["C_mid"], R0=TRUE["R0"]):
    """The sigmoid, written out here independently of the module."""
    C = np.asarray(C, dtype=float)
    with np.errstate(divide="ignore"):
        return R0 + (A - R0) / (1.0 + (C_mid / C) ** B)


C_GRID = np.linspace(0.0, 1.2e6, 41)  # the first point at C = 0: the performance before training


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_parameters_and_its_intervals_cover_them(seed):
    """Noise σ = 0.01 on 41 evaluations: A within 0.03, B within 25%, C_mid within 15%, R0 (the first
    evaluation, fixed) within 3σ; the 95% intervals hold A, B and C_mid; the fit is judged ``fits``."""
    rng = np.random.default_rng(seed)
    R = sig(C_GRID) + rng.normal(0.0, 0.01, len(C_GRID))
    fit = fit_compute_law((C_GRID, R))
    assert fit.r0_fixed and fit.R0 == pytest.approx(TRUE["R0"], abs=0.03)
    assert fit.A == pytest.approx(TRUE["A"], abs=0.03)
    assert fit.B == pytest.approx(TRUE["B"], rel=0.25)
    assert fit.C_mid == pytest.approx(TRUE["C_mid"], rel=0.15)
    for k in ("A", "B", "C_mid"):
        lo, hi = fit.ci[k]
        assert lo <= TRUE[k] <= hi, (k, fit.ci[k])
    assert judge_compute(fit).status == "fits"
    est, lo, hi = predict_final(fit, 2.4e6)  # twice the compute seen
    assert lo <= float(sig(2.4e6)) <= hi and lo < est < hi


def test_free_r0_when_the_first_evaluation_is_past_the_start():
    """No evaluation inside the left-out start: R0 is a free parameter, recovered from the curve."""
    C = np.linspace(2.0e5, 1.2e6, 30)
    fit = fit_compute_law((C, sig(C)), n_boot=0)
    assert not fit.r0_fixed and fit.n_cut == 0
    assert fit.R0 == pytest.approx(TRUE["R0"], abs=1e-3) and fit.A == pytest.approx(TRUE["A"], abs=1e-3)


def test_a_first_evaluation_after_training_started_is_not_pinned_as_r0():
    """Evaluations every 100 from step 100 (a TRL / imported run): the first lies in the cut start but is
    not the performance before training, so R0 stays free; noise-free, the truth comes back."""
    C = np.arange(100.0, 2001.0, 100.0)
    R = sig(C, A=0.6, B=1.0, C_mid=150.0, R0=0.1)
    fit = fit_compute_law((C, R), n_boot=0)
    assert not fit.r0_fixed and fit.n_cut == 1
    assert fit.A == pytest.approx(0.6, abs=2e-3) and fit.C_mid == pytest.approx(150.0, rel=0.02)


def test_the_noisy_start_is_left_out():
    """Points below START_FRAC of the largest compute are not fitted: wild values there change nothing."""
    R = sig(C_GRID)
    wild = R.copy()
    start = C_GRID < START_FRAC * C_GRID.max()
    wild[start & (C_GRID > 0)] = 0.95
    a, b = fit_compute_law((C_GRID, R), n_boot=0), fit_compute_law((C_GRID, wild), n_boot=0)
    assert a.n_cut == b.n_cut == int(start.sum()) and a.n == len(C_GRID) - int(start.sum())
    assert min(a.C) >= START_FRAC * C_GRID.max()
    assert b.A == pytest.approx(a.A, abs=1e-6) and b.C_mid == pytest.approx(a.C_mid, rel=1e-4)


def test_premises_refuse():
    rng = np.random.default_rng(3)
    C = np.linspace(0.0, 1.0e6, 30)
    with pytest.raises(AnalysisError, match=f"at least {MIN_POINTS}"):
        fit_compute_law((C[:6], sig(C[:6])))  # five points after the cut
    # falling with compute: not applicable
    falling = fit_compute_law((C, 0.7 - (sig(C) - 0.12) + rng.normal(0, 0.005, len(C))))
    assert judge_compute(falling).status == "not applicable"
    # noise around a constant: no better than a constant
    flat = fit_compute_law((C, 0.4 + rng.normal(0, 0.02, len(C))))
    v = judge_compute(flat)
    assert v.status == "poor fit" and "constant" in v.reason and not v.fits
    # a straight rise of a share: the asymptote lies above 1
    line = fit_compute_law((C, 0.2 + 0.7 * C / C.max() + rng.normal(0, 0.01, len(C))))
    v = judge_compute(line)
    assert v.status == "poor fit" and "outside [0, 1]" in v.reason, v
    # only the early rise of a far sigmoid: the half-way point lies beyond MID_MAX × the compute seen
    early = fit_compute_law((C, sig(C, C_mid=5.0e6, B=1.0, A=0.6)))
    v = judge_compute(early)
    assert early.C_mid > MID_MAX * C.max() and v.status == "poor fit" and "half-way" in v.reason, v


def _run(path, cols, evals):
    from entrodiag import load_run
    from entrodiag.store.writer import RunWriter

    n = len(next(iter(cols.values())))
    w = RunWriter(path, meta={"source": "test", "world_size": 1})
    w.append("steps", {"step": list(range(1, n + 1)), "rank": [0] * n,
                       **{k: [None if x is None else float(x) for x in v] for k, v in cols.items()}})
    steps = sorted(evals)
    w.append("evals", {"step": steps, "rank": [0] * len(steps), "name": ["val/accuracy"] * len(steps),
                       "value": [float(evals[s]) for s in steps], "n": [200] * len(steps)})
    w.close("finished")
    return load_run(path)


N = 60
TOKENS = [1000.0 + 10 * i for i in range(N)]  # generated tokens per step, growing (longer answers)


@pytest.fixture(scope="module")
def token_run(tmp_path_factory):
    """60 steps with generated tokens per step, evaluations every 3 steps on the sigmoid in tokens."""
    cum = np.cumsum(TOKENS)
    cmid = float(cum[20])
    evals = {0: 0.1, **{s: float(sig(cum[s - 1], A=0.7, B=2.0, C_mid=cmid, R0=0.1)) for s in range(3, N + 1, 3)}}
    run = _run(tmp_path_factory.mktemp("ctok") / "run",
               {"entropy_mean": np.linspace(1.0, 0.4, N), "n_tokens": TOKENS,
                "flops": [5.0] * N, "gpu_hours": np.linspace(0.1, 6.0, N)}, evals)
    return run, cmid


def test_axis_choice(token_run, tmp_path):
    """tokens > FLOPs > GPU-hours > steps, as present; a column missing on too many steps is passed over."""
    run, cmid = token_run
    ax = compute_axis(run)
    assert ax.axis == "tokens" and "n_tokens" in ax.source
    assert ax.C[-1] == pytest.approx(sum(TOKENS)) and ax.at([3])[0] == pytest.approx(sum(TOKENS[:3]))
    fit = fit_compute_law(run)
    assert fit.axis == "tokens" and fit.C_mid == pytest.approx(cmid, rel=0.02) and fit.A == pytest.approx(0.7, abs=0.01)
    assert fit.mid_step == pytest.approx(21, abs=0.5)  # the cumulative tokens reach C_mid at step 21
    gappy = [None if i % 3 else t for i, t in enumerate(TOKENS)]  # tokens on a third of the steps only
    ev = {5: 0.2, 10: 0.3}
    assert compute_axis(_run(tmp_path / "f", {"n_tokens": gappy, "flops": [5.0] * N}, ev)).axis == "flops"
    g = compute_axis(_run(tmp_path / "g", {"gpu_hours": np.linspace(0.1, 6.0, N)}, ev))
    assert g.axis == "gpu_hours" and g.C[-1] == pytest.approx(6.0)
    s = compute_axis(_run(tmp_path / "s", {"entropy_mean": [1.0] * N}, ev))
    assert s.axis == "steps" and s.C[-1] == N


def test_ceilings_line_in_analyze_text(token_run):
    """analyze's text carries both ceilings on one line, in the issue's form; withheld → no number."""
    from entrodiag.analysis import analyze_run, render_summary

    run, _ = token_run
    s = analyze_run(run)
    comp = s["compute"]
    assert comp["verdict"]["status"] == "fits" and comp["axis"] == "tokens"
    buf = io.StringIO()
    render_summary(s, file=buf, width=400)
    lo, hi = comp["ci"]["A"]
    want = (f"compute asymptote {comp['A']:.3g} [{lo:.3g}, {hi:.3g}], half-way at step "
            f"{comp['mid_step']:.0f}")
    text = buf.getvalue()
    assert "Ceilings: entropy-law ceiling" in text and want in text
    assert ceilings_line(s).endswith(want)
    assert asymptote_text(None, status="poor fit") == "compute asymptote — (poor fit)"
    assert ceiling_text(0.62, [0.58, 0.66]) == "entropy-law ceiling 0.62 [0.58, 0.66]"


def test_a_long_series_is_averaged_in_blocks():
    """More than MAX_POINTS points after the cut (a training reward every step): block means, the
    parameters still recovered."""
    from entrodiag.analysis.compute_law import MAX_POINTS

    C = np.linspace(0.0, 1.2e6, 1001)
    fit = fit_compute_law((C, sig(C)), n_boot=0)
    assert fit.n == MAX_POINTS == len(fit.C) and fit.n_cut == int((C < START_FRAC * C.max()).sum())
    assert fit.A == pytest.approx(TRUE["A"], abs=0.01) and fit.C_mid == pytest.approx(TRUE["C_mid"], rel=0.03)


def test_a_smoothed_training_series_is_bootstrapped_in_blocks_of_its_window(tmp_path):
    """A trailing mean of 5 makes neighbouring residuals correlated: resampled in moving blocks of 5
    (consecutive residuals from random starts), the mean of a resample varies about as the smoothed
    noise's mean does, not as independent draws would; the fit's intervals widen accordingly."""
    from entrodiag.analysis.compute_law import fit_arrays
    from entrodiag.analysis.series import trailing_mean
    from entrodiag.analysis.stats import resample_residuals

    rng = np.random.default_rng(0)
    idx = resample_residuals(np.arange(40.0), 50, rng, block=5)
    assert idx.shape == (50, 40) and (np.diff(idx.reshape(50, 8, 5), axis=2) == 1).all()
    e = trailing_mean(rng.normal(0.0, 1.0, 2000), 5)[4:124]  # a smoothed series' residuals (n = 120)
    var = {b: resample_residuals(e - e.mean(), 4000, np.random.default_rng(1), b).mean(1).var() for b in (1, 5)}
    assert var[5] > 2.0 * var[1]  # MA(5): the mean's variance is ~5× the independent one, blocks see ~3.4×
    C = np.arange(1.0, 121.0) * 1e4
    R = sig(C) + 0.02 * e
    widths = {b: np.subtract(*fit_arrays(C, R, n_boot=200, block=b).ci["A"][::-1]) for b in (1, 5)}
    assert widths[5] > 1.2 * widths[1] > 0
    # a run without evaluations: its training reward (a trailing mean of DEFAULT_SMOOTH) gets the blocks
    from wild import steps_run

    from entrodiag.analysis.compute_law import compute_axis, metric_points
    from entrodiag.analysis.series import DEFAULT_SMOOTH

    run = steps_run(tmp_path / "r", {"reward_mean": sig(np.arange(1.0, 61.0) * 2e4) + 0.05 * rng.normal(size=60)})
    fit = fit_compute_law(run, n_boot=50)
    steps, RR = metric_points(run, fit.metric_choice)
    assert fit.metric_choice.is_training and fit.ci == fit_arrays(
        compute_axis(run).at(steps), RR, n_boot=50, steps=steps, block=DEFAULT_SMOOTH).ci


def test_the_bootstrap_block_of_an_averaged_smoothed_series_and_its_r0(monkeypatch):
    """A trailing mean of w = 5 over 600 points averaged to 120 means: neighbouring means still share
    w − 1 smoothed points, so the bootstrap's block stays above 1 (1 + ⌈4·120/600⌉ = 2); a block never
    exceeds a third of the points; a smoothed training series's R0 at step 0 is left free (its smoothed
    residuals would understate the noise of the one raw value), an evaluation series's is pinned."""
    from entrodiag.analysis import stats
    from entrodiag.analysis.compute_law import fit_arrays

    seen, draw = [], stats.resample_residuals
    monkeypatch.setattr(stats, "resample_residuals",
                        lambda e, k, rng, block=1: seen.append(block) or draw(e, k, rng, block))
    noise = 0.01 * np.random.default_rng(3).normal(size=600)
    C = np.linspace(2e5, 1.2e6, 600)
    fit_arrays(C, sig(C) + noise, n_boot=5, block=5)
    C12 = np.linspace(2e5, 1.2e6, 12)
    fit_arrays(C12, sig(C12) + noise[:12], n_boot=5, block=5)
    assert seen == [2, 12 // 3]
    C = np.arange(0.0, 61.0) * 2e4
    r0_fixed = {b: fit_arrays(C, sig(C) + noise[:61], n_boot=0, steps=np.arange(61.0), block=b).r0_fixed
                for b in (1, 5)}
    assert r0_fixed == {1: True, 5: False}
