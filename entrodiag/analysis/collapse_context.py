"""What the collapse detectors work with: their thresholds (``CollapseThresholds``), the ``Flag``
they raise and its severities, and ``Context``, the run as the detectors read it (cached step
series, start/end windows, H0, the reward scale; the words are defined in ``analysis.collapse``'s
docstring). ``Skip`` is how a detector says it cannot judge a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..store.reader import Run
from .jsonable import clean
from .series import edge_size, edge_values, effective_smooth, late_start, step_series, trailing_median
from .sources import reward_series

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")


@dataclass(frozen=True)
class CollapseThresholds:
    """Defaults of every collapse detector (override with ``detect_collapse(run, name=value)``).

    General:
        min_steps: recorded steps a detector needs before it judges (10).
        edge_frac, edge_max: size of the start/end windows: 3% of the steps, at most 10 steps or a
            tenth of the steps, whichever is larger (``series.edge_size``).
        smooth, smooth_frac: the smoothed series is a trailing median over
            max(min(smooth, n/10), smooth_frac·n) of its n points (5; 0.1): a tenth of the series,
            so that the window grows with a long, noisy log (``series.effective_smooth``).
    early_collapse (Cui et al.: 73% of the entropy is consumed in the first 1/12 of training):
        early_frac: "the first part of training" = the first 20% of the training length.
        early_drop: warning when the smoothed entropy has lost this share of H0 by then (0.75).
        early_drop_critical: critical at this share (0.9, i.e. H/H0 < 0.1, the literature note's
            example criterion).
    entropy_floor (entropy floor reached with a reward plateau):
        floor_ratio: end entropy at most this share of H0 (0.2).
        tail_frac: the tail examined: the last 20% of the recorded steps (at least 5 steps).
        floor_flat: entropy moved by at most this share of H0 over the tail (0.05).
        plateau_gain: the reward's fitted gain over the tail at most this many reward scales (0.05).
    entropy_explosion (entropy rising while reward falls, and staying up):
        explosion_rise: the smoothed entropy rises above its lowest point so far by at least this
            share of H0 (0.5),
        explosion_noise: and by at least this many standard deviations of a smoothed value (4),
            the series' own step-to-step noise (``series.step_noise``) through the smoothing window
            (``series.median_noise``): with about ten independent windows in a series, noise alone
            spans about three of them,
        explosion_reward_drop: while the smoothed reward falls, over the same steps, by at least
            this many reward scales (0.1);
        explosion_persist: and the rise holds (the smoothed entropy stays that far above the low)
            for at least this many smoothing windows, or to the last logged step (2). A rise that
            qualified but fell back sooner is a recovered transient: ``entropy_spike``, info only.
    positive_covariance (Cui et al.: positive covariance drains entropy):
        cov_pos_share: share of steps with ``cov_mean`` > 0 (0.8). Info on its own (it is the
            default dynamics of GRPO); a warning when entropy has also dropped by
        cov_entropy_drop: this share of H0 (0.5).
    vanishing_signal (zero-advantage groups, COPO):
        zero_adv_warning, zero_adv_critical: end share of groups with all-equal rewards (0.5, 0.8).
    high_entropy_extinction (share of tokens above 0.672 nats; Wang et al. 2025, Lp-Reg):
        spark_ratio, spark_ratio_critical: end share over start share at most (0.25, 0.05).
        spark_min_start: start share needed to judge at all (0.01).
    entropy_volatility (EPO): step-to-step relative change |ΔH|/max(H, H0) (the level, taken no
        lower than the start entropy: at a low level the batch noise of a token mean is a large
        share of it, so a steady fall would read as volatile), median over a window of
        window_frac: 10% of the steps (at least 5), at least
        volatility: this (0.15) and
        volatility_ratio: at least this multiple of the start's (3),
        volatility_alpha: in enough of the window's changes that a one-sided sign test says the
            window's median is above that limit at this level (0.2; 5 points: 4 of them; 18: 12),
            so that a short flat series whose noise touches the limit in a few points is not volatile.
    entropy_decline (a steady relative collapse, whatever the reward does):
        decline_drop: the end entropy has lost at least this share of H0 (0.6),
        decline_tail: and it still falls: the fitted change over the last quarter of the points is
            a loss of at least this share of H0 (0.02);
        decline_deep: or, whether or not it still falls and whatever the reward does, the end entropy
            is at most this share of the series' early level (0.1: an order of magnitude below it;
            the early level is the larger of H0 and the median of the first three points, so that a
            fast fall inside a long log's start window counts and one odd first point does not).
    length_collapse:
        length_ratio, length_ratio_critical: end mean response length over start (0.5, 0.25).
    ceiling_exhausted (the fitted law says little performance is left at the current entropy):
        ceiling_gain: share of the law's attainable gain already realised (0.9), with a fit of
        ceiling_min_r2: at least this R² (0.5).
    template_collapse (RAGEN-2: answers stop depending on their prompts while entropy holds; the
    ``mi_proxy`` column, its start/end windows over the steps that logged it):
        template_mi_drop: the MI proxy's end is at most (1 − this) × its start (0.5), and so are
        template_persist: its last this many points (3): the fall holds;
        template_mi_drop_critical: critical at this fall (0.8);
        template_entropy_band: while the end entropy stays within this share of H0 (0.2: 0.8-1.2 × H0);
        template_mi_min_start: the start MI proxy needed to judge at all (0.01 nats).
    """

    min_steps: int = 10
    edge_frac: float = 0.03
    edge_max: int = 10
    smooth: int = 5
    smooth_frac: float = 0.1
    early_frac: float = 0.2
    early_drop: float = 0.75
    early_drop_critical: float = 0.9
    floor_ratio: float = 0.2
    tail_frac: float = 0.2
    floor_flat: float = 0.05
    plateau_gain: float = 0.05
    explosion_rise: float = 0.5
    explosion_noise: float = 4.0
    explosion_reward_drop: float = 0.1
    explosion_persist: float = 2.0
    cov_pos_share: float = 0.8
    cov_entropy_drop: float = 0.5
    zero_adv_warning: float = 0.5
    zero_adv_critical: float = 0.8
    spark_ratio: float = 0.25
    spark_ratio_critical: float = 0.05
    spark_min_start: float = 0.01
    window_frac: float = 0.1
    volatility: float = 0.15
    volatility_ratio: float = 3.0
    volatility_alpha: float = 0.2
    decline_drop: float = 0.6
    decline_tail: float = 0.02
    decline_deep: float = 0.1
    length_ratio: float = 0.5
    length_ratio_critical: float = 0.25
    ceiling_gain: float = 0.9
    ceiling_min_r2: float = 0.5
    template_mi_drop: float = 0.5
    template_persist: int = 3
    template_mi_drop_critical: float = 0.8
    template_entropy_band: float = 0.2
    template_mi_min_start: float = 0.01

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"threshold {f.name} must be a non-negative number, got {v!r}")
        for name in ("min_steps", "edge_max", "smooth", "template_persist"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"threshold {name} must be a positive integer, got {getattr(self, name)!r}")

    @classmethod
    def with_overrides(cls, **overrides: Any) -> CollapseThresholds:
        """Defaults with ``overrides``; an unknown name raises ``ValueError`` listing the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown collapse threshold(s) {', '.join(unknown)}; valid names: {', '.join(sorted(names))}"
            )
        return cls(**overrides)


@dataclass(frozen=True)
class Flag:
    """A diagnosis: ``kind`` (detector), ``severity`` (info | warning | critical), the step range
    where it holds, the evidence in numbers, a one-line ``message`` and ``advice`` naming the
    intervention and its settings. JSON-serialisable through ``to_dict`` (or ``dataclasses.asdict``).
    """

    kind: str
    severity: str
    first_step: int
    last_step: int
    evidence: dict[str, float | int | None]
    advice: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        object.__setattr__(self, "first_step", int(self.first_step))
        object.__setattr__(self, "last_step", int(self.last_step))
        object.__setattr__(self, "evidence", clean(dict(self.evidence)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return SEVERITIES.index(severity)


def at_or_above(flags: list[Flag], severity: str) -> list[Flag]:
    """The flags of ``severity`` or worse, in their order."""
    floor = severity_rank(severity)
    return [f for f in flags if severity_rank(f.severity) >= floor]


class Skip(Exception):
    """A detector cannot judge this run; the message says why."""


@dataclass
class Context:
    """What every detector reads: the run, the thresholds, its step series (read once, cached) and
    the flags raised so far; ``entropy``/``reward`` give H0 and the reward scale (the collapse
    module's docstring defines them) or raise ``Skip``."""

    run: Run
    th: CollapseThresholds
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    raised: list[Flag] = field(default_factory=list)  # flags raised so far (ceiling_exhausted, entropy_decline)
    _late: dict | None | bool = False

    def late(self) -> dict | None:
        """``series.late_start`` of the run's steps (cached)."""
        if self._late is False:
            steps = self.run.steps
            self._late = late_start(steps["step"].to_numpy()) if not steps.is_empty() else None
        return self._late  # type: ignore[return-value]

    def origin(self) -> str:
        """What the start-relative flags are relative to: '' for a log that starts at the start."""
        late = self.late()
        if late is None:
            return ""
        return (f" (relative to step {late['first_step']}, the first logged step: the first {late['missing']} "
                "steps are missing)")

    def get(self, column: str, what: str) -> tuple[np.ndarray, np.ndarray]:
        if column not in self.series:
            self.series[column] = step_series(self.run, column)
        steps, values = self.series[column]
        if len(values) == 0:
            from .sources import log_hint

            raise Skip(f"no {column} in the step rows ({log_hint(self.run, column) or what})")
        if len(values) < self.th.min_steps:
            raise Skip(f"{len(values)} step(s) with {column}; needs {self.th.min_steps}")
        return steps, values

    def window(self, n: int) -> int:
        """The smoothing window of an ``n``-point series (``series.effective_smooth``)."""
        return effective_smooth(n, self.th.smooth, self.th.smooth_frac)

    def smooth(self, values: np.ndarray) -> np.ndarray:
        """The trailing median of ``values`` over ``window(len(values))`` points (fewer at the start)."""
        return trailing_median(values, self.window(len(values)))

    def settled(self, values: np.ndarray) -> np.ndarray:
        """``smooth(values)`` where a whole window lies behind a position; before that (the first
        ``window − 1`` positions, medians of one or two noisy points) the start value
        (``start_end``), so that a single early step is never read as a low or a collapse, while a
        change within the first window still shows against the start."""
        s = self.smooth(values)
        s[: self.window(len(values)) - 1] = self.start_end(values)[0]
        return s

    def edge(self, n: int) -> int:
        return edge_size(n, self.th.edge_frac, self.th.edge_max)

    def start_end(self, values: np.ndarray) -> tuple[float, float]:
        return edge_values(values, self.edge(len(values)))

    def total_steps(self, steps: np.ndarray) -> int:
        recorded = int(steps[-1] - steps[0] + 1)
        cfg = self.run.meta.get("config") or {}
        for key in ("total_steps", "max_steps", "steps"):
            v = cfg.get(key) if isinstance(cfg, dict) else None
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > recorded:
                return int(v)
        return recorded

    def entropy(self) -> tuple[np.ndarray, np.ndarray, float]:
        steps, h = self.get("entropy_mean", "record rollouts with Recorder.record_batch")
        h0 = self.start_end(h)[0]
        if h0 <= 0:
            raise Skip(f"start entropy is {h0:.3g} nats: nothing to lose")
        return steps, h, h0

    def reward_label(self) -> str:
        chosen = reward_series(self.run)
        return chosen.label if chosen is not None else "reward"

    def reward(self) -> tuple[np.ndarray, np.ndarray, float]:
        chosen = reward_series(self.run)
        steps, r = self.get(chosen.column if chosen else "reward_mean", "pass rewards= to record_batch")
        scale = None
        if chosen is None or chosen.column == "reward_mean":
            try:
                _, rstd = self.get("reward_std", "")
                scale = self.start_end(rstd)[0]
            except Skip:
                pass
        if not scale or scale <= 1e-9:
            scale = abs(self.start_end(r)[0]) or 1.0
        return steps, r, float(scale)


__all__ = ["SEVERITIES", "CollapseThresholds", "Context", "Flag", "Skip", "at_or_above", "severity_rank"]
