"""Mechanism check: does the measured entropy change follow −covariance?

Cui et al. 2025 (arXiv 2505.22617, Theorem 2): under natural policy gradient the entropy change of
a step is ΔH ≈ −η·Cov(log π, A); the batch-level ``cov_mean`` (their Eq. 10) is the toolkit's
estimate of that covariance. Wang et al. 2026 (arXiv 2602.03392) give a per-token first-order
prediction, ``entropy_pressure`` = mean of −A·S*, which predicts ΔH with the same sign.

Measured ΔH: when the step rows carry the entropy of the same batch after the update (a column in
``AFTER_UPDATE_COLUMNS``, e.g. ``entropy_after`` logged with ``Recorder.log_scalars``), ΔH =
after − ``entropy_mean``; otherwise the difference to the next recorded step,
ΔH_t = H_{t+1} − H_t, which also carries the batch-to-batch sampling noise.

Verdict, from ``n`` steps, the Pearson r between ΔH and −cov (p its p-value), the share of steps
where their signs agree, and the share expected by chance from the two sign frequencies alone:

- ``insufficient data``: n < 8, or ΔH or cov constant;
- ``agrees``: r ≥ 0.3, p < 0.05 and signs agree in ≥ 60% of steps (ΔH tracks −cov step by step);
- ``agrees in sign``: signs agree in ≥ 60% of steps, more often than chance (binomial test,
  p < 0.05), but the size of ΔH does not follow (r < 0.3 or not significant);
- ``consistent in direction``: the mean ΔH has the sign of the mean −cov (both non-zero by a
  t-test, p < 0.01) and the signs agree in ≥ 60% of steps, but no more than chance: typical of
  GRPO, where cov stays positive and entropy falls throughout (Cui et al. Fig. 8), which a trend
  alone would also explain;
- ``weak agreement``: r > 0 with p < 0.05 otherwise;
- ``disagrees``: r ≤ −0.3 with p < 0.05, or the mean ΔH opposes the mean −cov (both non-zero by a
  t-test, p < 0.01) with signs agreeing in under half of the steps: something else drives entropy
  (an entropy bonus, KL, clipping, off-policy data);
- ``no agreement``: anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stats
from .jsonable import clean
from .runs import RunLike, as_run
from .series import step_series

#: Step columns read as the entropy of the same batch after the update, in order of preference.
AFTER_UPDATE_COLUMNS: tuple[str, ...] = ("entropy_after", "entropy_after_update")
MIN_STEPS = 8


@dataclass(frozen=True)
class MechanismCheck:
    """Agreement between measured ΔH and −cov (and ``entropy_pressure``) over ``n`` steps.

    ``sign_chance`` is the share of agreeing signs expected from the two sign frequencies alone;
    ``sign_p`` the one-sided binomial p-value of the observed agreement against it.
    """

    n: int
    delta_source: str
    pearson: float | None
    pearson_p: float | None
    spearman: float | None
    sign_agreement: float | None
    sign_chance: float | None
    sign_p: float | None
    mean_delta: float | None
    mean_neg_cov: float | None
    pressure_pearson: float | None
    pressure_sign_agreement: float | None
    verdict: str
    explanation: str

    def to_dict(self) -> dict:
        return clean(self.__dict__.copy())


def _corr(x: np.ndarray, y: np.ndarray) -> dict:
    """Pearson r and p, Spearman ρ, sign agreement, chance agreement and its binomial p-value."""
    out: dict = dict.fromkeys(("pearson", "pearson_p", "spearman", "sign_agreement", "sign_chance", "sign_p"))
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    r, p = stats.pearson(x, y)
    out.update(pearson=r, pearson_p=p, spearman=stats.spearman(x, y))
    nz = (x != 0) & (y != 0)
    if nz.any():
        sx, sy = np.sign(x[nz]) > 0, np.sign(y[nz]) > 0
        agree = int((sx == sy).sum())
        px, py = float(sx.mean()), float(sy.mean())
        chance = px * py + (1 - px) * (1 - py)
        out.update(sign_agreement=agree / len(sx), sign_chance=chance,
                   sign_p=stats.binom_p_greater(agree, len(sx), min(max(chance, 1e-12), 1.0)))
    return out


def _nonzero_mean(x: np.ndarray) -> bool:
    """The mean of ``x`` differs from 0 (one-sample t-test, p < 0.01)."""
    if len(x) < 3 or np.ptp(x) == 0:
        return bool(len(x) and x[0] != 0)
    return bool(stats.ttest_1samp_p(x) < 0.01)


def _verdict(n: int, c: dict, dh: np.ndarray, neg_cov: np.ndarray) -> tuple[str, str]:
    mean_dh = float(dh.mean()) if len(dh) else 0.0
    r, p, sign = c["pearson"], c["pearson_p"], c["sign_agreement"]
    if n < MIN_STEPS:
        return "insufficient data", f"{n} usable step(s); the check needs {MIN_STEPS}"
    if r is None:
        return "insufficient data", "ΔH or the covariance is constant over the run"
    significant = p is not None and p < 0.05
    sign = sign if sign is not None else 0.0
    beyond_chance = c["sign_p"] is not None and c["sign_p"] < 0.05
    directed = _nonzero_mean(dh) and _nonzero_mean(neg_cov)
    same_direction = directed and mean_dh * float(neg_cov.mean()) > 0
    opposite = directed and mean_dh * float(neg_cov.mean()) < 0
    if r >= 0.3 and significant and sign >= 0.6:
        return "agrees", (f"ΔH tracks −cov (r = {r:.2f}, same sign in {sign:.0%} of steps), as Cui et al. "
                          "predict")
    if sign >= 0.6 and beyond_chance:
        return "agrees in sign", (
            f"ΔH has the sign of −cov in {sign:.0%} of steps (chance {c['sign_chance']:.0%}), but its "
            f"size does not follow (r = {r:.2f})")
    if sign >= 0.6 and same_direction:
        return "consistent in direction", (
            f"entropy moved the way −cov points on average (mean ΔH {mean_dh:+.3g}, signs agree in "
            f"{sign:.0%} of steps), but no more often than chance ({c['sign_chance']:.0%}) and "
            f"r = {r:.2f}: a trend alone would look the same")
    if r > 0 and significant:
        return "weak agreement", f"r = {r:.2f} is positive, but the signs agree in only {sign:.0%} of steps"
    if (r <= -0.3 and significant) or (opposite and sign < 0.5):
        return "disagrees", (
            f"ΔH moves against −cov (r = {r:.2f}, mean ΔH {mean_dh:+.3g}): something else drives "
            "entropy (an entropy bonus, KL, clipping, off-policy data)")
    return "no agreement", f"no relation between ΔH and −cov (r = {r:.2f}, signs agree in {sign:.0%})"


def mechanism_check(run: RunLike) -> MechanismCheck:
    """Check the entropy mechanism (Cui et al. 2025, Theorem 2: ΔH ≈ −η·Cov(log π, A)) on a run.

    Correlates the measured entropy change with −``cov_mean`` (and with ``entropy_pressure``,
    Wang et al. 2026) step by step: Pearson and Spearman correlation, the share of steps where
    the signs agree, and a verdict (rules in the module docstring). Never raises for missing
    data: the verdict is then ``insufficient data`` and ``explanation`` says what to log.

    Example:
        >>> m = mechanism_check("runs/demo")      # doctest: +SKIP
        >>> m.verdict, m.pearson, m.sign_agreement  # doctest: +SKIP
    """
    run = as_run(run)
    steps, h = step_series(run, "entropy_mean")
    cov_steps, cov = step_series(run, "cov_mean")
    if len(h) == 0 or len(cov) == 0:
        missing = "entropy" if len(h) == 0 else "covariance (pass logprobs or logits to record_batch)"
        return MechanismCheck(0, "none", None, None, None, None, None, None, None, None, None, None,
                              "insufficient data", f"no {missing} in the step rows")
    source = None
    for col in AFTER_UPDATE_COLUMNS:
        a_steps, after = step_series(run, col)
        if len(after) >= MIN_STEPS:
            common, ia, ih = np.intersect1d(a_steps, steps, return_indices=True)
            d_steps, delta = common, after[ia] - h[ih]
            source = f"{col} − entropy_mean (same batch)"
            break
    if source is None:
        d_steps, delta = steps[:-1], np.diff(h)
        source = "next recorded step (H[t+1] − H[t])"
    common, i_d, i_c = np.intersect1d(d_steps, cov_steps, return_indices=True)
    dh, neg_cov = delta[i_d], -cov[i_c]
    c = _corr(dh, neg_cov)
    p_steps, pressure = step_series(run, "entropy_pressure")
    _, j_d, j_p = np.intersect1d(d_steps, p_steps, return_indices=True)
    pc = _corr(delta[j_d], pressure[j_p])
    mean_dh = float(dh.mean()) if len(dh) else 0.0
    mean_nc = float(neg_cov.mean()) if len(dh) else 0.0
    verdict, why = _verdict(len(common), c, dh, neg_cov)
    return MechanismCheck(
        n=len(common), delta_source=source, **c, mean_delta=mean_dh, mean_neg_cov=mean_nc,
        pressure_pearson=pc["pearson"], pressure_sign_agreement=pc["sign_agreement"],
        verdict=verdict, explanation=why,
    )


__all__ = ["AFTER_UPDATE_COLUMNS", "MechanismCheck", "mechanism_check"]
