"""Whether the entropy law describes a run: the one decision that analyze (text and JSON), report,
dashboard, compare and watch all take from here, and what may be printed after it.

The law R = −a·e^H + b (Cui et al. 2025, arXiv 2505.22617) describes entropy *traded* for
performance: as the policy's entropy falls, performance rises (a > 0). A fit says nothing where
that premise fails, however high its R². ``judge_law`` checks, in order:

1. ``not applicable``: a flag says the entropy rose or swung (``LAW_BREAKING_FLAGS``);
2. ``not applicable``: the premise positively fails: a < 0 beyond its interval (the one-sided
   upper bound of a at ``PREMISE_LEVEL``, from the fit's bootstrap interval, is below 0), whatever
   R² (a noisy score that moves with the entropy still refutes the trade-off: an entropy bonus or
   DAPO's clip-higher raising entropy as the score improves). With entropy falling, performance fell
   with entropy: degeneration, not the entropy–performance trade-off;
3. ``poor fit``: R² < ``min_r2`` (the points do not follow the curve);
4. ``poor fit`` (too few or too noisy evaluations): a > 0 is not established either (its one-sided
   lower bound is not above 0, or the fit has too few points for an interval). This is missing
   evidence, not evidence against the law: six evaluations of a run whose score rose as its
   entropy fell do not make it "not applicable";
5. ``poor fit``: the fitted ceiling b − a lies above the most R can be, beyond its interval: R is a
   share (every value within [0, 1]: an accuracy, a pass rate, the mean of a 0/1 reward), and a
   ceiling whose whole interval is above 1 says the curve does not hold down to H = 0
   (``SHARE_MAX``); the law's numbers would promise the impossible;
6. else ``fits`` (said of the training batches when R is a training series).

``not applicable`` therefore always rests on positive evidence that the premise fails (a flag, or a
significantly below 0); too little evidence to tell reads ``poor fit``.

Under ``poor fit`` and ``not applicable`` no ceiling, share of the attainable gain, fraction of
the ceiling, headroom, R̂ at the last step or early prediction is given as a number anywhere:
``withhold_law`` and ``withhold_early`` null them in the analysis dict (JSON gives ``null`` and the
verdict), and every renderer prints the verdict instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import stats
from .collapse_context import CollapseThresholds
from .law import LawFit

#: flags that mean the entropy did not fall steadily, so the law (entropy spent for performance)
#: does not describe the run, whatever its R²
LAW_BREAKING_FLAGS = ("entropy_explosion", "entropy_volatility")

#: one-sided confidence that a > 0 (the premise is one-sided: performance rises as entropy falls)
PREMISE_LEVEL = 0.95

#: the most a share can be (an accuracy, a pass rate, the mean of a 0/1 reward): R is read as a share
#: when every value of it lies within [0, SHARE_MAX]
SHARE_MAX = 1.0

#: the law section's numbers that are predictions from the law (withheld unless it fits)
LAW_NUMBERS = ("ceiling", "ceiling_frac", "gain_frac", "headroom", "r_last")

#: an early-prediction row's numbers (withheld unless the law fits)
EARLY_NUMBERS = ("a", "b", "ceiling", "rmse", "predicted_final", "final_error", "estimate", "lo", "hi",
                 "covered", "estimate_error")


@dataclass(frozen=True)
class LawVerdict:
    """``status`` (``fits`` | ``poor fit`` | ``not applicable``), a one-sentence ``text`` for the
    reader and the bare ``reason`` (empty when the law fits)."""

    status: str
    text: str
    reason: str = ""

    @property
    def fits(self) -> bool:
        """Whether the law's ceiling, gain share and early prediction may be shown as numbers."""
        return self.status == "fits"

    def sentence(self) -> str:
        """``the law fits poorly (...)`` / ``the law is not applicable (...)``, for a reason line."""
        verb = {"fits": "fits", "poor fit": "fits poorly"}.get(self.status, f"is {self.status}")
        return f"the law {verb}" + (f" ({self.reason})" if self.reason else "")

    def withheld(self) -> str:
        """What a renderer prints in place of a withheld number."""
        return withheld_text(self.to_dict())

    def to_dict(self) -> dict:
        return {"status": self.status, "text": self.text, "reason": self.reason, "numbers_shown": self.fits}


def interval(fit: LawFit, name: str) -> tuple[tuple[float, float], float] | None:
    """``(interval, level)`` of the fit's coefficient ``name`` (``a``, ``b``, ``ceiling``): the fit's
    own bootstrap interval, recomputed with ``fit_entropy_law``'s defaults when the fit has none (a
    fit made with ``n_boot=0``), so that every caller judges by the same interval; ``None`` when the
    fit has too few points for one."""
    ci = fit.ci.get(name)
    if ci is not None and all(map(math.isfinite, ci)):
        return (float(ci[0]), float(ci[1])), fit.level
    if len(fit.H) < 3:
        return None
    from .law import fit_arrays

    ref = fit_arrays(np.asarray(fit.H), np.asarray(fit.R), n_boot=1000, level=0.95, seed=0)
    ci = ref.ci.get(name)
    if ci is None or not all(map(math.isfinite, ci)):
        return None
    return (float(ci[0]), float(ci[1])), ref.level


def a_bounds(fit: LawFit, level: float = PREMISE_LEVEL) -> tuple[float, float] | None:
    """One-sided ``level`` lower and upper bounds of a: a ∓ t(level, n−2)·se, se from the fit's
    bootstrap interval of a (recomputed with ``fit_entropy_law``'s defaults when the fit has
    none); ``None`` when the fit has too few points for an interval."""
    found = interval(fit, "a")
    if found is None:
        return None
    ci, fit_level = found
    df = max(fit.n - 2, 1)
    se = (ci[1] - ci[0]) / 2 / stats.t_ppf(0.5 + fit_level / 2, df)
    half = stats.t_ppf(level, df) * se
    return float(fit.a - half), float(fit.a + half)


def _on(fit: LawFit) -> str:
    choice = fit.metric_choice
    if choice is not None:
        return f"the {choice.label} {fit.metric}"
    return str(fit.metric) if fit.metric else "R"


def judge_law(fit: LawFit, flag_kinds: Iterable[str] = (), min_r2: float | None = None) -> LawVerdict:
    """The verdict on ``fit`` given the flags raised on its run (see the module docstring);
    ``min_r2`` defaults to ``CollapseThresholds.ceiling_min_r2``, the one threshold every caller reads."""
    if min_r2 is None:
        min_r2 = CollapseThresholds.ceiling_min_r2
    kinds = set(flag_kinds)
    broken = [k for k in LAW_BREAKING_FLAGS if k in kinds]
    on = _on(fit)
    if broken:
        what = " and ".join(k.replace("_", " ") for k in broken)
        reason = f"the entropy did not fall steadily ({what})"
        return LawVerdict("not applicable", f"not applicable: {reason}; the law describes entropy traded for "
                          "performance as it falls, so this fit, its ceiling and its early prediction do not "
                          "describe the run", reason)
    bounds = a_bounds(fit)
    lower, upper = bounds if bounds is not None else (None, None)
    if upper is not None and upper < 0:  # positive evidence: performance moved with entropy, not against it
        H = np.asarray(fit.H)
        fell = len(H) > 1 and H[-1] < H[0]
        bound = f", its one-sided {PREMISE_LEVEL:.0%} upper bound {upper:.3g} < 0"
        if fell:
            reason = (f"performance fell with entropy (a = {fit.a:.3g}{bound}): degeneration, not the "
                      "entropy–performance trade-off")
        else:
            reason = (f"performance moved with entropy (a = {fit.a:.3g}{bound}), not against it: not the "
                      "entropy–performance trade-off")
        return LawVerdict("not applicable", f"not applicable to {on}: {reason}; the law's ceiling and early "
                          "prediction are not given", reason)
    r2 = fit.r2
    if r2 is None or not math.isfinite(r2) or r2 < min_r2:
        r2s = "—" if r2 is None or not math.isfinite(r2) else f"{r2:.2f}"
        reason = f"R² = {r2s} < {min_r2}"
        return LawVerdict("poor fit", f"poor fit ({reason}): {on} does not follow R = −a·e^H + b here; no "
                          "ceiling or early prediction is given", reason)
    if lower is None or lower <= 0:  # no evidence either way: too few or too noisy evaluations
        bound = ("too few points for an interval of a" if lower is None
                 else f"a = {fit.a:.3g}, its one-sided {PREMISE_LEVEL:.0%} lower bound {lower:.3g} ≤ 0")
        reason = (f"too few evaluations to establish the premise ({fit.n} points: {bound}); performance rising "
                  "as entropy falls is neither shown nor refuted")
        return LawVerdict("poor fit", f"poor fit: {reason}; no ceiling or early prediction is given", reason)
    above = ceiling_above_bound(fit)
    if above:
        reason = (f"the fitted ceiling b − a = {fit.ceiling:.3g}{above} lies above {SHARE_MAX:g}, the most {on} can "
                  f"be (its values are all within [0, {SHARE_MAX:g}]: a share): the curve does not hold down to "
                  "H = 0")
        return LawVerdict("poor fit", f"poor fit: {reason}; no ceiling or early prediction is given", reason)
    text = f"fits {on} (R² = {r2:.2f})"
    if fit.metric_choice is not None and fit.metric_choice.is_training:
        text += ", but on the training batches: it says nothing of accuracy on unseen problems"
    return LawVerdict("fits", text)


def ceiling_above_bound(fit: LawFit) -> str | None:
    """Where R is a share (every fitted value within [0, ``SHARE_MAX``]) and the fitted ceiling lies
    above ``SHARE_MAX`` beyond its interval (``interval``'s lower end; the ceiling itself where the
    fit has too few points for one): the interval as text (``""`` without one) for the verdict's
    reason; else ``None``."""
    R = np.asarray(fit.R, dtype=np.float64)
    if len(R) == 0 or not math.isfinite(fit.ceiling) or R.min() < 0.0 or R.max() > SHARE_MAX:
        return None
    found = interval(fit, "ceiling")
    if (found[0][0] if found else fit.ceiling) <= SHARE_MAX:
        return None
    return f" ({found[1]:.0%} interval {found[0][0]:.3g}–{found[0][1]:.3g})" if found else ""


def withhold_law(law: dict, verdict: LawVerdict) -> dict:
    """The law section with ``verdict`` (``law["verdict"]``) and, unless it fits, its predictions
    (``LAW_NUMBERS``) set to ``None`` and the ceiling's interval left out."""
    out = {**law, "verdict": verdict.to_dict()}
    if not verdict.fits:
        out.update({k: None for k in LAW_NUMBERS if k in out})
        if isinstance(out.get("ci"), dict):  # the ceiling's interval goes with it
            out["ci"] = {k: v for k, v in out["ci"].items() if k != "ceiling"}
    return out


def withheld_text(verdict: dict | None) -> str:
    """``withheld (<status>)``: what a renderer prints in place of a number the verdict (a
    ``LawVerdict.to_dict()``, as the analysis's JSON holds it) withholds."""
    return f"withheld ({(verdict or {}).get('status', 'no verdict')})"


def withhold_early(section: dict, verdict: LawVerdict) -> dict:
    """The early-prediction section; unless the law fits, every row's numbers are ``None`` and the
    section is ``empty`` with the verdict as its reason."""
    if verdict.fits or section.get("status") != "ok":
        return section
    rows = [{**r, **{k: None for k in EARLY_NUMBERS if k in r}, "reason": verdict.withheld()}
            for r in section.get("rows", [])]
    return {"status": "empty", "reason": f"no early prediction: {verdict.sentence()}", "rows": rows,
            "verdict": verdict.to_dict()}


__all__ = ["EARLY_NUMBERS", "LAW_BREAKING_FLAGS", "LAW_NUMBERS", "PREMISE_LEVEL", "SHARE_MAX", "LawVerdict",
           "a_bounds", "ceiling_above_bound", "interval", "judge_law", "withheld_text", "withhold_early", "withhold_law"]
