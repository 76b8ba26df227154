"""Collapse detectors: read a run's step rows and raise ``Flag``s with evidence and advice.

Thresholds are relative to the run's own start wherever the quantity has a natural scale there
(the literature gives no absolute collapse threshold; Cui et al. 2025's signals are relative, see
docs/decisions.md, "Collapse thresholds are relative to the run's own start"). Every
default lives in ``CollapseThresholds``; ``detect_collapse(run, name=value)`` overrides any of them.

Words used below:

- *start* / *end*: the median of a series over the first / last ``edge_frac`` of the recorded
  steps (at least 3 and at most a quarter of them, at most ``edge_max`` or a tenth of them,
  whichever is larger, so that a long noisy log's start is not a handful of points: few, because per-step
  aggregates over a whole batch are precise and a fast collapse would otherwise lower the start;
  never one point, so that one odd point of a sparse log does not set it); H0 is the start
  entropy. A log whose first step lies far after step 1 (a resumed run) is judged relative to
  its first logged step, and the start-relative flags say so.
- *early level*: the larger of H0 and the median of the first three points (``early_level``): a
  fast first fall inside a long log's start window counts against it; one odd first point does not.
- *smoothed*: trailing median over w = max(min(``smooth``, n/10), ``smooth_frac``·n) of the n
  recorded points (``series.effective_smooth``): a tenth of the series by default (40 points: 4;
  2,400: 240), so that the window grows with the series and one outlying step does not move it.
  The start-relative flags (``early_collapse``, ``entropy_explosion``) read the start value in
  place of the smoothed one until the first window is whole (``Context.settled``), so that a
  median of the first one or two noisy points is never read as a collapse or as the low before
  an explosion, while a change within the first window still shows against the start.
- *onset*: the step where a collapse or an explosion begins, a change-point estimate (the level
  until that step, a linear trend after it; ``series.change_point``), not the global high or low.
- *noise*: a series' own step-to-step noise, robustly (``series.step_noise``: the median absolute
  step change as a standard deviation); an explosion must rise beyond what that noise spans once
  smoothed, and hold (``CollapseThresholds``, ``explosion_noise`` and ``explosion_persist``).
- *reward*: ``sources.reward_series``: the task score where the logged reward holds a KL penalty;
  the total reward where a trainer logs several reward functions.
- *reward scale*: the within-batch reward spread at the start (mean ``reward_std`` over the start
  window); without it, |start reward|, else 1. Reward changes are measured in this unit, so the
  thresholds mean the same for 0/1 rewards and for rewards on another scale.
- *training length*: ``config["total_steps"|"max_steps"|"steps"]`` from run.json when larger than
  the recorded steps (a run in progress), else the recorded steps.

Severities: ``info`` is worth knowing (e.g. positive covariance, the default dynamics of GRPO);
``warning`` calls for an intervention at the next restart; ``critical`` means the run is unlikely
to improve as it is: stop or change it now (``entrodiag analyze --fail-on critical``).

Interventions named in the advice (docs/interventions.md; Cui et al. 2025 for Clip-Cov/KL-Cov and the entropy
bonus, DAPO for clip-higher, Wang et al. 2025 for forking tokens, EPO, COPO, Lp-Reg).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..store.reader import Run
from .collapse_context import (SEVERITIES, CollapseThresholds, Context, Flag, Skip, at_or_above,
                               severity_rank)
from .runs import AnalysisError, RunLike, as_run
from .series import MIN_EDGE, change_point, median_noise, step_noise
from .stats import binom_p_greater
from .template_collapse import template_collapse

KL_COV = "kl_cov (k=2e-3 for 7B-scale models, 2e-4 for 32B; β=1)"
CLIP_COV = "clip_cov (r=2e-4, 1<cov<5)"
CLIP_HIGHER = "clip_higher (ε_low=0.2, ε_high=0.28)"
ENTROPY_BONUS = "an entropy bonus of 0.005 (0.01 made entropy explode)"


def _tail(n: int, frac: float) -> int:
    return int(min(n, max(5, round(frac * n))))


def _window(n: int, frac: float) -> int:
    return int(min(n - 1, max(5, round(frac * n))))


# ------------------------------------------------------------------------------------ detectors
def _early_collapse(c: Context) -> Flag | None:
    steps, h, h0 = c.entropy()
    hs = c.settled(h)
    horizon = steps[0] + c.th.early_frac * c.total_steps(steps)
    early = steps <= horizon
    gone = 1.0 - hs / h0
    hit = np.nonzero(early & (gone >= c.th.early_drop))[0]
    if len(hit) == 0:
        return None
    i = int(hit[0])
    worst = float(gone[early].max())
    severity = "critical" if worst >= c.th.early_drop_critical else "warning"
    onset = change_point(steps[: i + 1], h[: i + 1])
    span = "of training" if not c.late() else "of the logged steps"
    return Flag(
        "early_collapse", severity, steps[onset], steps[i],
        {"entropy_start": h0, "entropy_at_step": hs[i], "share_gone": gone[i], "max_share_gone_early": worst,
         "step": steps[i], "onset_step": steps[onset],
         "training_frac": (steps[i] - steps[0]) / max(c.total_steps(steps), 1), "first_logged_step": steps[0]},
        f"switch to {KL_COV} or {CLIP_COV} to keep entropy from collapsing; {CLIP_HIGHER} is the "
        "milder option",
        f"{gone[i]:.0%} of the starting entropy ({h0:.3g} nats) was gone by step {steps[i]}, within the "
        f"first {c.th.early_frac:.0%} {span}; the fall begins at step {steps[onset]}{c.origin()}",
    )


def _entropy_decline(c: Context) -> Flag | None:
    """A steady relative collapse: most of the start entropy lost and still falling, whatever the
    reward does (the floor flag wants a reward plateau, early_collapse a fast fall); or a fall by an
    order of magnitude from the series' early level (``early_level``), whether or not it still falls."""
    if any(f.kind in ("early_collapse", "entropy_floor")
           or (f.kind == "positive_covariance" and f.severity != "info") for f in c.raised):
        return None  # the collapse is named already (fast, at a floor, or with its cause, positive covariance)
    steps, h, h0 = c.entropy()
    end = c.start_end(h)[1]
    lost = 1.0 - end / h0
    early = early_level(h, h0)
    deep = end <= c.th.decline_deep * early
    if lost < c.th.decline_drop and not deep:
        return None
    k = _tail(len(h), 0.25)
    slope = float(np.polyfit(steps[-k:].astype(np.float64), h[-k:], 1)[0])
    tail_change = slope * float(steps[-1] - steps[-k])
    if not deep and tail_change > -c.th.decline_tail * h0:
        return None  # no longer falling: a floor (entropy_floor judges it with the reward)
    onset = change_point(steps, h)
    half = np.nonzero(c.smooth(h) <= h0 - 0.5 * (h0 - end))[0]
    evidence = {"entropy_start": h0, "entropy_end": end, "share_lost": lost, "tail_change": tail_change,
                "tail_points": k, "onset_step": steps[onset],
                "half_lost_step": steps[half[0]] if len(half) else None, "first_logged_step": steps[0],
                "entropy_early": early, "end_over_early": end / early}
    if deep:
        return Flag(
            "entropy_decline", "warning", steps[onset], steps[-1], evidence,
            f"entropy has collapsed by an order of magnitude: restart from a checkpoint before the fall with "
            f"{KL_COV} or {CLIP_COV}, or add {CLIP_HIGHER}",
            f"the entropy fell from {early:.3g} nats (its first points) to {end:.3g} ({end / early:.1%} of it"
            + (f", {np.log10(early / end):.1f} orders of magnitude" if end > 0 else "")
            + f") from step {steps[onset]} on: a collapse whatever the {c.reward_label()} does{c.origin()}",
        )
    return Flag(
        "entropy_decline", "warning", steps[onset], steps[-1], evidence,
        f"entropy is still draining: add {CLIP_HIGHER} or {KL_COV} at the next restart, or stop before it "
        "reaches a floor (entrodiag forecast says when)",
        f"the entropy lost {lost:.0%} of its start ({h0:.3g} → {end:.3g} nats) from step {steps[onset]} on and is "
        f"still falling ({tail_change / h0:+.0%} of the start over the last {k} points){c.origin()}",
    )


def early_level(h: np.ndarray, h0: float) -> float:
    """The series' early level: the larger of the start H0 (the start window's median) and the median
    of its first ``MIN_EDGE`` points. A long log's start window (up to a tenth of it) may already lie
    after most of a fast first fall; the median of the first three points sees that fall, and one odd
    first point does not set it (the median of three needs two high points)."""
    return max(h0, float(np.median(h[:MIN_EDGE])))


def _entropy_floor(c: Context) -> Flag | None:
    steps, h, h0 = c.entropy()
    rsteps, r, scale = c.reward()
    k = _tail(len(h), c.th.tail_frac)
    h_end = float(np.mean(h[-k:]))
    h_move = abs(float(np.polyfit(steps[-k:], h[-k:], 1)[0]) * (steps[-1] - steps[-k]))
    kr = _tail(len(r), c.th.tail_frac)
    r_gain = float(np.polyfit(rsteps[-kr:], r[-kr:], 1)[0]) * (rsteps[-1] - rsteps[-kr])
    if not (h_end <= c.th.floor_ratio * h0 and h_move <= c.th.floor_flat * h0
            and r_gain <= c.th.plateau_gain * scale):
        return None
    return Flag(
        "entropy_floor", "critical", steps[-k], steps[-1],
        {"entropy_start": h0, "entropy_end": h_end, "entropy_ratio": h_end / h0,
         "entropy_change_tail": h_move,
         "reward_gain_tail": r_gain, "reward_scale": scale, "reward_end": float(np.mean(r[-kr:])),
         "tail_steps": k},
        f"more steps of this recipe will not help: restart from a checkpoint before the collapse with "
        f"{KL_COV} or {CLIP_COV}",
        f"entropy sits at {h_end / h0:.0%} of its start and no longer moves, and the {c.reward_label()} has "
        f"plateaued (gain {r_gain:+.3g} over the last {k} steps){c.origin()}",
    )


def _entropy_bonus(run: Run) -> bool | None:
    """Whether the run trained with an entropy bonus: True or False when run.json says (the
    built-in trainer's intervention or a coefficient controller, an explicit ``entropy_coef`` /
    ``entropy_coeff`` in the config), None when it cannot tell (most imported runs)."""
    meta = run.meta or {}
    cfg = meta.get("config") or {}
    if meta.get("intervention") == "entropy_bonus" or meta.get("entropy_control") in ("pi_coef", "adaptive_coef"):
        return True
    if meta.get("source") == "builtin":
        return False
    coef = next((cfg[k] for k in ("entropy_coeff", "entropy_coef") if isinstance(cfg.get(k), (int, float))), None)
    return None if coef is None else coef > 0


def _explosion_advice(bonus: bool | None) -> str:
    anchor = ("anchor the policy with a KL term or kl_cov (k=2e-3, β=1); check clip_low_frac (low-side "
              "clipping raises entropy) and the learning rate")
    if bonus is False:
        return f"the run has no entropy bonus, so {anchor}"
    lower = "lower the entropy bonus to 0.005 (0.01 made entropy explode) or drop it, and "
    return lower + anchor if bonus else f"if the run has an entropy bonus, {lower}{anchor}"


def _held(above: np.ndarray, i: int) -> int:
    """How many consecutive points from ``i`` on ``above`` holds (0 when it does not hold at ``i``)."""
    off = np.nonzero(~above[i:])[0]
    return int(off[0]) if len(off) else len(above) - i


def _entropy_explosion(c: Context) -> Flag | None:
    """Entropy that rises far above its low while the reward falls, and stays up (``CollapseThresholds``:
    a rise beyond the start-relative share and the series' own noise, held for ``explosion_persist``
    smoothing windows or to the last step). A rise that qualified and fell back sooner is reported
    as an ``entropy_spike`` (info): a recovered transient, not an explosion."""
    steps, h, h0 = c.entropy()
    rsteps, r, scale = c.reward()
    if len(rsteps) != len(steps) or not np.array_equal(rsteps, steps):
        common, ih, ir = np.intersect1d(steps, rsteps, return_indices=True)
        steps, h, r = common, h[ih], r[ir]
        if len(steps) < c.th.min_steps:
            raise Skip("entropy and reward share too few steps")
    hs, rs = c.settled(h), c.settled(r)
    w = c.window(len(h))
    # the rise needed: a share of the start, and beyond what the series' own noise spans once smoothed
    noise = step_noise(h)
    need = max(c.th.explosion_rise * h0, c.th.explosion_noise * median_noise(noise, w))
    idx = np.arange(len(hs))  # index of the lowest smoothed entropy so far, at each step
    trough = np.maximum.accumulate(np.where(hs <= np.minimum.accumulate(hs), idx, 0))
    dh = hs - hs[trough]
    dr = rs - rs[trough]
    qualifies = (dh >= need) & (dr <= -c.th.explosion_reward_drop * scale)
    hit = np.nonzero(qualifies)[0]
    if len(hit) == 0:
        return None
    persist = max(1, int(np.ceil(c.th.explosion_persist * w)))
    spans: list[tuple[int, int, int]] = []  # (first qualifying point, its low, points the rise held from there)
    for i in hit:
        if spans and i < spans[-1][0] + spans[-1][2]:
            continue  # within a rise already measured
        low = int(trough[i])
        spans.append((int(i), low, _held(hs - hs[low] >= need, int(i))))
    lasting = [sp for sp in spans if sp[2] >= persist or sp[0] + sp[2] == len(hs)]
    first_hit, low, held = (lasting or spans)[0]
    span = np.arange(first_hit, first_hit + held)
    peak = int(span[np.argmax(np.where(qualifies[span], hs[span] - hs[low], -np.inf))])
    # the onset of the rise: where the level turns upwards between the low and the first step that
    # meets the criterion (the low itself may lie long before)
    first = low + change_point(steps[low: first_hit + 1], h[low: first_hit + 1])
    last = first_hit + held - 1
    evidence = {"entropy_start": h0, "entropy_low": float(hs[low]), "low_step": steps[low], "onset_step": steps[first],
                "peak_step": steps[peak], "entropy_peak": float(hs[peak]), "entropy_max": float(hs.max()),
                "max_rise": float(dh[peak]), "max_rise_ratio": float(dh[peak] / h0), "rise_needed": need,
                "step_noise": noise, "held_points": held, "persist_points": persist,
                "reward_at_low": float(rs[low]), "reward_at_peak": float(rs[peak]),
                "reward_drop": float(dr[peak]), "reward_scale": scale}
    rise = (f"the smoothed entropy rose from {hs[low]:.3g} (step {steps[low]}, its low) to {hs[peak]:.3g} at step "
            f"{steps[peak]} (+{dh[peak] / h0:.0%} of its start {h0:.3g}) while the {c.reward_label()} fell from "
            f"{rs[low]:.3g} to {rs[peak]:.3g}; the rise begins at step {steps[first]}")
    if not lasting:
        back = steps[min(last + 1, len(steps) - 1)]
        return Flag(
            "entropy_spike", "info", steps[first], steps[last], evidence,
            "a recovered transient needs no intervention; if it recurs, look at what changed at that step (a "
            "data shard, the learning rate schedule, a reward bug)",
            f"{rise}, and it fell back by step {back} (held {held} point(s), fewer than the {persist} an "
            f"explosion holds): a transient the run recovered from{c.origin()}",
        )
    still = " and is still up at the last step" if last == len(hs) - 1 else f" and held to step {steps[last]}"
    return Flag(
        "entropy_explosion", "critical", steps[first], steps[last], evidence,
        _explosion_advice(_entropy_bonus(c.run)),
        f"{rise}{still}{c.origin()}",
    )


def _positive_covariance(c: Context) -> Flag | None:
    steps, cov = c.get("cov_mean", "pass logprobs (or logits) to record_batch")
    pos = cov > 0
    share = float(pos.mean())
    if share < c.th.cov_pos_share:
        return None
    runs = np.diff(np.concatenate([[0], pos.astype(np.int8), [0]]))
    longest = int((np.nonzero(runs == -1)[0] - np.nonzero(runs == 1)[0]).max())
    evidence = {"positive_share": share, "cov_mean": float(cov.mean()), "cov_median": float(np.median(cov)),
                "longest_positive_run": longest}
    severity = "info"
    try:
        _, h, h0 = c.entropy()
        ratio = c.start_end(h)[1] / h0
        evidence["entropy_ratio"] = ratio
        if ratio <= 1.0 - c.th.cov_entropy_drop:
            severity = "warning"
    except Skip:
        pass
    idx = np.nonzero(pos)[0]
    return Flag(
        "positive_covariance", severity, steps[idx[0]], steps[idx[-1]], evidence,
        f"{CLIP_COV} or {KL_COV} act on exactly the high-covariance tokens that drain entropy",
        f"covariance between log-prob and advantage was positive in {share:.0%} of steps: each update "
        "lowers entropy (Cui et al. 2025)",
    )


def _vanishing_signal(c: Context) -> Flag | None:
    steps, z = c.get("zero_adv_group_frac", "pass rewards= and group_ids= to record_batch")
    zs = c.smooth(z)
    start, end = c.start_end(z)
    if end < c.th.zero_adv_warning:
        return None
    severity = "critical" if end >= c.th.zero_adv_critical else "warning"
    above = np.nonzero(zs >= c.th.zero_adv_warning)[0]
    return Flag(
        "vanishing_signal", severity, steps[above[0]] if len(above) else steps[-1], steps[-1],
        {"zero_adv_start": start, "zero_adv_end": end, "zero_adv_max": float(zs.max())},
        "drop groups whose rewards are all equal and resample (DAPO dynamic sampling; RAGEN-2's SNR-aware "
        "filtering keeps the groups of highest reward std), raise the samples per prompt (e.g. 8 → 16), or "
        "add COPO's global consistency reward; re-balance task difficulty",
        f"{end:.0%} of the groups have all-equal rewards and give no gradient (start: {start:.0%})",
    )


def _high_entropy_extinction(c: Context) -> Flag | None:
    steps, s = c.get("high_entropy_frac", "record rollouts with Recorder.record_batch")
    start, end = c.start_end(s)
    if start < c.th.spark_min_start:
        raise Skip(f"only {start:.2%} of tokens were above 0.672 nats at the start; nothing to lose")
    ratio = end / start
    if ratio > c.th.spark_ratio:
        return None
    ss = c.smooth(s)
    below = np.nonzero(ss <= c.th.spark_ratio * start)[0]
    return Flag(
        "high_entropy_extinction", "critical" if ratio <= c.th.spark_ratio_critical else "warning",
        steps[below[0]] if len(below) else steps[-1], steps[-1],
        {"high_entropy_start": start, "high_entropy_end": end, "ratio": ratio},
        f"the forking tokens are dying out: {CLIP_HIGHER} lets low-probability tokens grow; Lp-Reg "
        f"protects them; {KL_COV} keeps entropy where it matters",
        f"the share of tokens above 0.672 nats fell from {start:.1%} to {end:.1%}{c.origin()}",
    )


def _entropy_volatility(c: Context) -> Flag | None:
    steps, h, h0 = c.entropy()
    # a change's share of its level, the level taken no lower than the start entropy H0: once the
    # entropy has fallen, the batch noise of a token mean is a large share of the low level (a steady
    # fall from 0.08 to 0.03 nats changes by a fifth of the level from step to step), and a swing that
    # is small against the run's own start is not the instability EPO smooths; above H0 (an
    # explosion, a rise) the level itself is the scale, as before
    mid = (h[1:] + h[:-1]) / 2
    rel = np.abs(np.diff(h)) / np.maximum(mid, h0)
    w = _window(len(h), c.th.window_frac)
    if len(rel) < w:
        raise Skip("too few steps for a volatility window")
    windows = np.lib.stride_tricks.sliding_window_view(rel, w)
    med = np.median(windows, axis=1)
    v0 = float(med[0])
    limit = max(c.th.volatility, c.th.volatility_ratio * v0)
    # the premise "the window's median change is above the limit", judged with the few points a
    # window has: a one-sided sign test, so that a short flat noisy series whose median of 5 changes
    # touches the limit by chance is not volatile (5 points: 4 of them at or above the limit)
    above = (windows >= limit).sum(axis=1)
    hit = np.nonzero([binom_p_greater(int(k), w, 0.5) <= c.th.volatility_alpha for k in above])[0]
    if len(hit) == 0:
        return None
    return Flag(
        "entropy_volatility", "warning", steps[hit[0] + 1], steps[hit[-1] + w],
        {"volatility_max": float(med[hit].max()), "volatility_start": v0, "limit": limit, "window_steps": w,
         "window_share_above": float(above[hit].max() / w)},
        f"smooth the entropy: an EPO-style regulariser (penalise tokens outside [0.8, 1.2]× the historical "
        f"mean entropy), {ENTROPY_BONUS}, or a lower learning rate",
        f"entropy changes by a median {med[hit].max():.0%} of its level (or of the start entropy, where "
        f"below it) from one step to the next (start: {v0:.0%})",
    )


def _length_collapse(c: Context) -> Flag | None:
    steps, L = c.get("resp_len_mean", "record rollouts with Recorder.record_batch")
    start, end = c.start_end(L)
    if start <= 0:
        raise Skip("responses were empty at the start")
    ratio = end / start
    if ratio > c.th.length_ratio:
        return None
    below = np.nonzero(c.smooth(L) <= c.th.length_ratio * start)[0]
    return Flag(
        "length_collapse", "critical" if ratio <= c.th.length_ratio_critical else "warning",
        steps[below[0]] if len(below) else steps[-1], steps[-1],
        {"length_start": start, "length_end": end, "ratio": ratio},
        "check the reward for a shortcut that short answers exploit; use token-mean loss aggregation "
        f"(DAPO) rather than per-sequence means; if entropy fell with it, {KL_COV}",
        f"mean response length fell from {start:.3g} to {end:.3g} tokens ({ratio:.0%}){c.origin()}",
    )


def _ceiling_exhausted(c: Context) -> Flag | None:
    from .law import LOG_EVALS, choose_metric_or_explain, fit_entropy_law
    from .sources import log_hint
    from .verdicts import judge_law

    try:
        choice = choose_metric_or_explain(c.run, None)
        if choice.is_training:
            raise AnalysisError(f"no validation metric (R would be the {choice.label} {choice.name}, and the "
                                f"ceiling is judged on held-out accuracy only): {log_hint(c.run, 'evals') or LOG_EVALS}")
        fit = fit_entropy_law(c.run, metric=choice, smooth=c.th.smooth, n_boot=0)
    except AnalysisError as e:
        raise Skip(str(e)) from None
    verdict = judge_law(fit, [f.kind for f in c.raised], c.th.ceiling_min_r2)
    if not verdict.fits:
        raise Skip(verdict.sentence())
    if fit.gain_frac is None:
        raise Skip("the law leaves no gain to share (its ceiling equals its first prediction)")
    if fit.gain_frac < c.th.ceiling_gain:
        return None
    return Flag(
        "ceiling_exhausted", "warning", fit.steps[0], fit.steps[-1],
        {"a": fit.a, "b": fit.b, "ceiling": fit.ceiling, "r_last": fit.r_last, "headroom": fit.headroom,
         "gain_frac": fit.gain_frac, "r2": fit.r2, "entropy_last": fit.H[-1]},
        f"the law leaves at most {fit.headroom:.3g} ({fit.metric}) even at zero entropy: stop this recipe, "
        f"or change it to one that keeps entropy ({KL_COV}, {CLIP_COV}; Cui et al. gained +2 points on 7B)",
        f"{fit.gain_frac:.0%} of the gain the fitted law allows is already realised "
        f"(ceiling b − a = {fit.ceiling:.3g}, now {fit.r_last:.3g})",
    )


DETECTORS: dict[str, Callable[[Context], Flag | None]] = {
    "early_collapse": _early_collapse,
    "entropy_floor": _entropy_floor,
    "entropy_explosion": _entropy_explosion,
    "positive_covariance": _positive_covariance,
    "vanishing_signal": _vanishing_signal,
    "high_entropy_extinction": _high_entropy_extinction,
    "entropy_volatility": _entropy_volatility,
    "entropy_decline": _entropy_decline,
    "length_collapse": _length_collapse,
    "ceiling_exhausted": _ceiling_exhausted,
    "template_collapse": template_collapse,  # analysis/template_collapse.py (RAGEN-2)
}


def run_detectors(
    run: RunLike, thresholds: CollapseThresholds | None = None
) -> tuple[list[Flag], dict[str, str]]:
    """Every detector on ``run``: ``(flags, skipped)``, ``skipped`` mapping a detector that could
    not judge the run to the reason (missing column, too few steps, ...)."""
    ctx = Context(as_run(run), thresholds or CollapseThresholds())
    skipped = {}
    for kind, detector in DETECTORS.items():
        try:
            flag = detector(ctx)
        except Skip as e:
            skipped[kind] = str(e)
            continue
        if flag is not None:
            ctx.raised.append(flag)  # later detectors read the flags raised so far
    return sorted(ctx.raised, key=lambda f: (-severity_rank(f.severity), f.first_step)), skipped


def detect_collapse(run: RunLike, **thresholds: float) -> list[Flag]:
    """Collapse flags of a run, worst first (docs/definitions.md; thresholds in ``CollapseThresholds``).

    Detectors: early collapse, a steady relative decline still under way, entropy floor with a
    reward plateau, entropy explosion, persistently
    positive covariance (Cui et al. 2025), vanishing learning signal (zero-advantage groups, COPO),
    extinction of high-entropy tokens (share above 0.672 nats; Wang et al. 2025), entropy
    volatility (EPO), response-length collapse, ceiling exhaustion (the fitted law), and template
    collapse (the MI proxy falls while entropy holds; RAGEN-2). A detector
    whose inputs are missing stays silent (``run_detectors`` says why).

    Args:
        run: a ``Run`` or a run directory.
        **thresholds: overrides of ``CollapseThresholds`` fields, e.g. ``early_drop=0.5``.

    Raises:
        ValueError: an unknown threshold name (the message lists the valid ones) or a bad value.

    Example:
        >>> flags = detect_collapse("runs/demo", early_frac=0.1)   # doctest: +SKIP
        >>> [(f.kind, f.severity, f.advice) for f in flags]      # doctest: +SKIP
    """
    flags, _ = run_detectors(run, CollapseThresholds.with_overrides(**thresholds))
    return flags


__all__ = ["DETECTORS", "SEVERITIES", "CollapseThresholds", "Flag", "at_or_above", "detect_collapse", "run_detectors",
           "severity_rank"]
