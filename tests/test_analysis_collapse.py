"""Collapse detectors: each has a run that must raise it and the healthy run that must not.

Runs are written through the public Recorder (``analysis_runs.make_run``)."""

import dataclasses
import json
import math

import numpy as np
import pytest
from analysis_runs import cached_run, healthy, make_run

from entrodiag import Flag, detect_collapse
from entrodiag.analysis import SEVERITIES, CollapseThresholds, run_detectors


def alternating(u):
    """0.6 nats, then ±0.2 nats every other step over the second half."""
    t = np.arange(len(u))
    return np.where(u > 0.5, 0.6 + 0.2 * (-1.0) ** t, 0.6)


# detector -> (run settings that must raise it, expected severity, words its advice must name)
CASES = {
    "early_collapse": (
        dict(steps=80, entropy=lambda u: 0.05 + 0.95 * np.exp(-20 * u), reward=lambda u: 0.3 + 0.3 * u),
        "critical", ["kl_cov (k=2e-3", "clip_cov (r=2e-4, 1<cov<5)"],
    ),
    "entropy_floor": (
        dict(steps=80, entropy=lambda u: np.maximum(0.1, 1.0 - 1.8 * u),
             reward=lambda u: 0.3 + 0.4 * np.minimum(u, 0.5) / 0.5),
        "critical", ["kl_cov", "clip_cov"],
    ),
    "entropy_explosion": (
        dict(steps=80, entropy=lambda u: np.where(u < 0.5, 0.5, 0.5 + 2.0 * (u - 0.5)),
             reward=lambda u: np.where(u < 0.5, 0.6, 0.6 - 0.6 * (u - 0.5))),
        "critical", ["entropy bonus to 0.005 (0.01 made entropy explode)"],
    ),
    "positive_covariance": (
        dict(steps=80, cov=0.05, entropy=lambda u: 0.9 - 0.6 * u),
        "warning", ["clip_cov (r=2e-4, 1<cov<5)", "kl_cov"],
    ),
    "vanishing_signal": (dict(steps=80, zero_adv=lambda u: 0.1 + 0.8 * u), "critical", ["dynamic sampling"]),
    "high_entropy_extinction": (
        dict(steps=80, entropy=0.5, high_frac=lambda u: 0.3 - 0.29 * u),
        "critical", ["clip_higher (ε_low=0.2, ε_high=0.28)"],
    ),
    "entropy_volatility": (dict(steps=80, entropy=alternating), "warning", ["EPO", "0.005"]),
    # a steady decline, 70% of the start gone and still falling, the reward noisy: no other entropy flag
    "entropy_decline": (
        dict(steps=80, entropy=lambda u: 1.0 - 0.7 * u, reward=lambda u: 0.4 + 0.1 * np.sin(40 * u)),
        "warning", ["clip_higher", "kl_cov"],
    ),
    "length_collapse": (dict(steps=80, resp_len=lambda u: 14 - 11 * u), "critical", ["token-mean"]),
    "ceiling_exhausted": (
        dict(steps=80, entropy=lambda u: 0.02 + 1.18 * np.exp(-8 * u), law=(0.3, 0.9), eval_every=2),
        "warning", ["kl_cov", "clip_cov"],
    ),
    # the MI proxy falls by 90% at half-time while entropy stays at 0.8 nats (RAGEN-2)
    "template_collapse": (
        dict(steps=80, entropy=0.8, extra={"mi_proxy": lambda u: np.where(u < 0.5, 1.0, 0.1)}),
        "critical", ["SNR-aware filtering", "dynamic sampling"],
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("collapse")
    out = {"healthy": cached_run(tmp_path_factory, "healthy", **healthy())}
    for kind, (settings, _, _) in CASES.items():
        out[kind] = make_run(root / kind, **healthy(**settings))
    return out


def test_healthy_run_is_judged_by_every_detector_and_flagged_by_none(runs):
    flags, skipped = run_detectors(runs["healthy"])
    assert skipped == {}
    assert flags == []


@pytest.mark.parametrize("kind", list(CASES))
def test_detector_raises_on_its_run(runs, kind):
    _, severity, advice_words = CASES[kind]
    flags = {f.kind: f for f in detect_collapse(runs[kind])}
    assert kind in flags, f"{kind} not raised; got {sorted(flags)}"
    flag = flags[kind]
    assert flag.severity == severity
    assert runs[kind].steps["step"].min() <= flag.first_step <= flag.last_step <= runs[kind].steps["step"].max()
    for word in advice_words:
        assert word in flag.advice
    assert flag.message and flag.evidence
    assert all(v is None or (isinstance(v, (int, float)) and math.isfinite(v)) for v in flag.evidence.values())
    assert json.loads(json.dumps(dataclasses.asdict(flag), allow_nan=False)) == flag.to_dict()


def test_detector_evidence_in_numbers(runs):
    early = next(f for f in detect_collapse(runs["early_collapse"]) if f.kind == "early_collapse")
    h = runs["early_collapse"].steps["entropy_mean"]
    # start: the first 3 of 80 steps (3% is 2 points, at least 3); they fall monotonically (a trend,
    # not noise), so the start is the point nearest the edge rather than their median
    first = h[:3].to_numpy()
    assert first[0] >= first[1] >= first[2]
    assert early.evidence["entropy_start"] == pytest.approx(first[0])
    assert early.evidence["share_gone"] >= 0.75 and early.evidence["training_frac"] <= 0.2
    cov = next(f for f in detect_collapse(runs["positive_covariance"]) if f.kind == "positive_covariance")
    assert cov.evidence["positive_share"] == 1.0 and cov.evidence["cov_mean"] == pytest.approx(0.05, rel=1e-3)
    length = next(f for f in detect_collapse(runs["length_collapse"]) if f.kind == "length_collapse")
    assert length.evidence["length_start"] == pytest.approx(14, abs=0.5)
    assert length.evidence["ratio"] == pytest.approx(3.3 / 14, abs=0.05)
    ceiling = next(f for f in detect_collapse(runs["ceiling_exhausted"]) if f.kind == "ceiling_exhausted")
    # (a is biased low here: the trailing 5-step mean of this fast-falling entropy lags the step's own)
    assert ceiling.evidence["r2"] > 0.95 and ceiling.evidence["gain_frac"] >= 0.9


def test_flags_are_sorted_worst_first(runs):
    flags = detect_collapse(runs["entropy_floor"])
    ranks = [SEVERITIES.index(f.severity) for f in flags]
    assert ranks == sorted(ranks, reverse=True)


def test_near_misses_stay_silent(tmp_path):
    # entropy at its floor but the reward still climbing: not a plateau
    climbing = make_run(tmp_path / "climbing", **healthy(
        entropy=lambda u: np.maximum(0.1, 1.0 - 1.8 * u), reward=lambda u: 0.2 + 0.6 * u))
    assert "entropy_floor" not in {f.kind for f in detect_collapse(climbing)}
    # entropy rising with the reward (an entropy bonus doing its job): no explosion
    rising = make_run(tmp_path / "rising", **healthy(entropy=lambda u: 0.5 + 0.8 * u, reward=lambda u: 0.3 + 0.3 * u))
    assert "entropy_explosion" not in {f.kind for f in detect_collapse(rising)}
    # positive covariance without an entropy drop is only information
    flat = make_run(tmp_path / "flat", **healthy(cov=0.05, entropy=0.8))
    cov = [f for f in detect_collapse(flat) if f.kind == "positive_covariance"]
    assert [f.severity for f in cov] == ["info"]


def test_thresholds_are_overridable_and_checked(runs):
    assert detect_collapse(runs["healthy"]) == []
    # the healthy run lost 28% of its entropy: flagged once early_drop is 0.2 over the whole run
    flags = detect_collapse(runs["healthy"], early_drop=0.2, early_frac=1.0)
    assert [f.kind for f in flags] == ["early_collapse"] and flags[0].severity == "warning"
    with pytest.raises(ValueError, match="unknown collapse threshold.*early_dorp.*valid names: .*early_drop"):
        detect_collapse(runs["healthy"], early_dorp=0.2)
    with pytest.raises(ValueError, match="non-negative"):
        detect_collapse(runs["healthy"], early_drop=-1)
    with pytest.raises(ValueError, match="positive integer"):
        CollapseThresholds(smooth=0)
    assert CollapseThresholds().early_drop == 0.75


def test_total_steps_from_config_makes_a_run_in_progress_early(tmp_path):
    # 40 recorded steps of a 400-step run: the whole drop happened in the first 10% of training
    run = make_run(tmp_path / "r", **healthy(steps=40, entropy=lambda u: 1.0 - 0.8 * u), config={"total_steps": 400})
    assert "early_collapse" in {f.kind for f in detect_collapse(run)}
    assert "early_collapse" not in {f.kind for f in detect_collapse(run, early_frac=0.05)}


def test_missing_inputs_are_skipped_with_a_reason(tmp_path):
    run = make_run(tmp_path / "short", steps=5)
    flags, skipped = run_detectors(run)
    assert flags == [] and set(skipped) == set(CASES)
    assert "5 step(s)" in skipped["early_collapse"] and "log_eval" in skipped["ceiling_exhausted"]


def test_flag_validates_severity():
    with pytest.raises(ValueError, match="severity"):
        Flag("x", "fatal", 0, 1, {}, "")
    f = Flag("x", "info", np.int64(3), 4, {"v": np.float32(0.5), "nan": float("nan")}, "advice")
    assert f.first_step == 3 and f.evidence == {"v": 0.5, "nan": None}


@pytest.mark.parametrize("meta, says, never", [
    ({}, "if the run has an entropy bonus, lower the entropy bonus to 0.005", None),  # cannot tell
    ({"source": "builtin", "intervention": "none"}, "the run has no entropy bonus, so anchor", "lower the entropy bonus"),
    ({"source": "builtin", "intervention": "entropy_bonus"}, "lower the entropy bonus to 0.005", "if the run has"),
    ({"source": "builtin", "entropy_control": "pi_coef"}, "lower the entropy bonus to 0.005", "if the run has"),
    ({"source": "trl", "config": {"entropy_coef": 0.0}}, "the run has no entropy bonus", "lower the entropy bonus"),
    ({"source": "verl", "config": {"entropy_coeff": 0.01}}, "lower the entropy bonus to 0.005", "if the run has"),
])
def test_explosion_advice_names_the_entropy_bonus_only_where_the_run_may_have_one(runs, meta, says, never):
    from entrodiag.store.reader import Run

    base = runs["entropy_explosion"]
    run = Run(path=base.path, meta={**base.meta, "source": "custom", "config": {}, **meta})
    flag = {f.kind: f for f in detect_collapse(run)}["entropy_explosion"]
    assert says in flag.advice and "kl_cov (k=2e-3, β=1)" in flag.advice
    assert never is None or never not in flag.advice
