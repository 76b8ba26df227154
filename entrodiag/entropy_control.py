"""Closed-loop entropy control, registered by name: each controller is one small class.

A controller sees the rollout entropy of each step (the token mean over every valid response
token, all ranks) and sets the knobs that move entropy in the next step (:class:`Knobs`): the
entropy-bonus coefficient α (the loss gets −α·H_t per token, with gradient; α < 0 is an entropy
penalty), the PPO clip bounds ε_low and ε_high, and the share of tokens whose gradient is
detached by batch covariance (Clip-Cov style). The error is ``e = target − H``: positive when
entropy is below the target.

The target is ``entropy_target`` nats, or ``entropy_target_frac`` × the *initial entropy* (the
mean entropy of the first 10 steps, known from step 10 on), or follows a schedule
(``entropy_schedule``, :mod:`entrodiag.entropy_schedule`: constant, linear or cosine between two
fractions of the initial entropy, from the control start to an end step): the target is then a
function of the step, and so is the band (±20% around it unless ``entropy_band`` fixes it). The
controller acts from ``entropy_control_from`` on (and never before the target is known); before
that every knob keeps its configured value. Its state is a dict of floats
(:meth:`EntropyControl.state_dict`) stored in every checkpoint, so a resumed run continues exactly.

The guard (``entropy_guard``, default 1.5; 0 = off; Logics-STEM, arXiv 2601.01562, saw adaptive
entropy control blow entropy up) keeps the controller from driving entropy past ``entropy_guard`` ×
the initial entropy, the bound: the target is capped at bound / 1.2 (the band's top at the bound),
and while entropy is above the bound the output is clamped to at most the configured knob (no
entropy-raising push) and the integrator to at most 0. Logged as ``control/guard`` (1 on the steps
where it capped or clamped) and ``control/guard_bound``. Never silent: a target fraction above
guard / 1.2 is refused when the controller is built; a target in nats capped is logged once.

Per step it logs the step columns ``control/target``, ``control/band_low``,
``control/band_high``, ``control/error``, ``control/active``, ``control/coef``,
``control/clip_high``, ``control/clip_low``, ``control/detach`` and ``control/integral`` (the
knobs as applied in that step's update), and ``pi_clip`` its output ``control/effort``.

``none`` with a target only measures (so plain GRPO's time in band can be compared).

This module is torch-free and imports nothing of the project but :mod:`entrodiag.entropy_schedule`: the built-in trainer
(``entrodiag.trainer.controllers.from_config`` builds one from a ``TrainConfig``), the TRL drop-in
and the report share it. A new controller is one class here, registered with
``@register_controller("name")``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .entropy_schedule import Schedule, check_resume, check_targets, parse_schedule, schedule_end, target_spec

log = logging.getLogger(__name__)
#: Steps whose mean entropy is the initial entropy (``entropy_target_frac``, schedules, the guard).
BASELINE_STEPS = 10
#: The guard's default bound, as a multiple of the initial entropy (``entropy_guard``).
GUARD_DEFAULT = 1.5


@dataclass
class Knobs:
    """What a controller sets for the next update."""

    coef: float
    """Entropy-bonus coefficient α (loss −α·H_t); 0 = no bonus term."""
    clip_high: float
    """Upper PPO clip bound ε_high."""
    clip_low: float = 0.2
    """Lower PPO clip bound ε_low."""
    detach: float = 0.0
    """Signed share of the valid tokens whose loss is zeroed (gradient detached) by batch
    covariance (``losses.covariance_detach``): > 0 those with the largest covariance (their
    updates lower entropy), < 0 those with the smallest (their updates raise it); 0 = none."""


class Controller:
    """One control law. Subclasses set ``acts_on`` (``coef``, ``clip`` or ``""``), their
    default ``gains`` and ``bounds``, and implement :meth:`update`. ``self.u`` is the knob's
    value; ``self.integral`` the PI integrator (unused by the others)."""

    acts_on = ""
    default_gains: tuple[float, ...] = ()
    default_bounds: tuple[float, float] = (-math.inf, math.inf)
    #: Steps after the control start within which, with its default gains, the controller holds
    #: entropy within ±5% of the target for good on the synthetic plant of
    #: tests/test_entropy_control.py (ΔH = −0.003·H + 0.1·α + 0.01·(ε_high − 0.2) + 0.01·(0.2 − ε_low)
    #: + 0.05·detach per step; for ``pi_clip`` also on the same plant with clip bounds of no effect).
    settles_within = 0

    def __init__(self, u0: float, gains: tuple[float, ...] = (), bounds: tuple[float, float] | None = None):
        self.u0 = u0
        self.gains = tuple(gains) or self.default_gains
        if len(self.gains) != len(self.default_gains):
            raise ValueError(f"{type(self).__name__} takes {len(self.default_gains)} gain(s), got {self.gains}")
        self.lo, self.hi = bounds if bounds is not None else self.default_bounds
        if self.lo > self.hi:
            raise ValueError(f"control bounds must be LOW <= HIGH, got {self.lo}, {self.hi}")
        self.u = min(max(u0, self.lo), self.hi)
        self.integral = 0.0

    def update(self, error: float) -> None:  # pragma: no cover - abstract
        """Take the error ``target − H`` of the step just done; set ``self.u`` for the next."""
        raise NotImplementedError

    def applied(self) -> float:
        """The knob's value as applied in the next update."""
        return self.u

    def state_dict(self) -> dict[str, float]:
        return {"u": float(self.u), "integral": float(self.integral)}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.u, self.integral = float(d["u"]), float(d["integral"])

    def guard(self) -> None:
        """Entropy is above the guard's bound: no entropy-raising output (a larger knob raises
        entropy for every controller here), and no integrated push upward."""
        self.u = min(self.u, self.u0)
        self.integral = min(self.integral, 0.0)


CONTROLLERS: dict[str, type[Controller]] = {}


def register_controller(name: str) -> Callable[[type[Controller]], type[Controller]]:
    """Register a :class:`Controller` subclass as ``--entropy-control name``."""

    def add(cls: type[Controller]) -> type[Controller]:
        CONTROLLERS[name] = cls
        return cls

    return add


@register_controller("none")
class NoControl(Controller):
    """No control: both knobs keep their configured values (with a target, the error and the
    band are still logged, so an uncontrolled run is measured against the same band)."""

    def update(self, error: float) -> None:
        pass


@register_controller("adaptive_coef")
class AdaptiveCoef(Controller):
    """The adaptive entropy coefficient of Skywork-OR1, as TRL's ``use_adaptive_entropy`` does it
    (``GRPOConfig.entropy_target``/``entropy_coef_delta``/``entropy_coef_min``/``_max``, defaults
    0.005 and [0, 1]): after each step α ← α + δ when H ≤ target, else α − δ, clamped to the
    bounds; the bonus is applied only while the last measured H is at or below the target.
    Gains: (δ,). A bang-bang integrator: it ramps at δ per step and then oscillates around the
    target, so its settling is slow unless δ matches the plant."""

    acts_on = "coef"
    default_gains = (0.005,)
    default_bounds = (0.0, 1.0)
    settles_within = 40

    def __init__(self, u0: float, gains=(), bounds=None):
        super().__init__(u0, gains, bounds)
        self.gate = 0.0  # 1 when the last H was <= target: TRL applies the coefficient only then

    def update(self, error: float) -> None:
        (delta,) = self.gains
        below = error >= 0  # H <= target
        self.u = min(max(self.u + (delta if below else -delta), self.lo), self.hi)
        self.gate = 1.0 if below else 0.0

    def applied(self) -> float:
        return self.u * self.gate

    def state_dict(self) -> dict[str, float]:
        return {**super().state_dict(), "gate": self.gate}

    def load_state_dict(self, d: dict[str, float]) -> None:
        super().load_state_dict(d)
        self.gate = float(d["gate"])


class _PI(Controller):
    """Proportional-integral law u = u0 + Kp·e + Ki·Σe, clamped to [lo, hi], with anti-windup by
    back-calculation: when the output saturates, the integrator is reset to the value that puts
    the unclamped output exactly on the bound, so it never winds up beyond it and the loop
    recovers as soon as the error changes sign (back-calculation: Åström & Hägglund, "Advanced
    PID Control", 2006, on integrator windup). EntroPIC (2025) steers entropy with a PI loop;
    this is such a loop on one knob."""

    def update(self, error: float) -> None:
        kp, ki = self.gains
        self.integral += error
        raw = self.u0 + kp * error + ki * self.integral
        self.u = min(max(raw, self.lo), self.hi)
        if raw != self.u and ki != 0:
            self.integral = (self.u - self.u0 - kp * error) / ki


@register_controller("pi_coef")
class PICoef(_PI):
    """PI on the entropy-bonus coefficient α (EntroPIC-style; Cui et al. 2025 found a fixed α
    either does nothing, 0.005, or explodes, 0.01). Gains (Kp, Ki) = (1, 0.05) per nat of error;
    bounds [−0.05, 0.3]: a negative α is an entropy penalty, so the loop can also push entropy
    down. Tuned on tiny-arith, where a fixed α = 0.1 raised entropy by ~0.01 nats/step at first and
    then ran away (0.67 → 1.08 nats in 25 steps; α = 0.3 reached 2.8), so the loop gain is kept
    low (≈0.1 per step) against the lag of Adam's momentum; the upper bound is nevertheless 0.3,
    because entropy answers α about ten times less once the policy has sharpened, and with 0.1
    the loop saturated late in training and lost the band (benchmarks/README.md)."""

    acts_on = "coef"
    default_gains = (1.0, 0.05)
    default_bounds = (-0.05, 0.3)
    settles_within = 15


@register_controller("pi_clip")
class PIClip(_PI):
    """PI on the clipping, with no entropy gradient: one output, the *effort* u ∈ [−1, 1]
    (``control/effort``), split over two actuators in range order (split-range control).

    1. ``|u| ≤ CLIP_SPAN`` (0.25) moves both PPO clip bounds. Clipping at the high side lowers
       entropy and clipping at the low side raises it (Park et al. 2025): the tokens that reach a
       bound first are the low-probability ones, whose logit moves most; a high-side clip stops a
       rare token with A > 0 from growing (an entropy-raising update), a low-side clip stops a rare
       token with A < 0 from shrinking further (an entropy-lowering one). So u > 0 raises ε_high
       toward ``EPS_MAX`` (0.5; clip-higher, DAPO) and tightens ε_low toward ``EPS_MIN`` (0.02);
       u < 0 does the opposite. This is the least intrusive knob (it only touches tokens whose
       ratio has left the trust region), but it has authority only when the ratio moves: not at
       all in an on-policy epoch (r = 1), little when Adam's steps are small. On tiny-arith, where
       the first of 2 epochs is on-policy, 2.4% of tokens clip even at ε = 0.02 and ε_high 0.02
       and 2.0 give the same entropy curve (benchmarks/README.md).
    2. When the bounds saturate (``|u| > CLIP_SPAN``), the rest of the effort sets the covariance
       clip: a share ``sign(u)·DETACH_MAX·(|u| − CLIP_SPAN)/(1 − CLIP_SPAN)`` (``DETACH_MAX`` 0.5)
       of the valid tokens not already ratio-clipped get their loss zeroed, gradient detached,
       as in Clip-Cov (Cui et al. 2025), chosen by the batch covariance (log π − mean)·(A − mean)
       instead of at random: entropy moves by −Cov(log π, A) (their Theorem 2), so with u > 0 the
       tokens with the largest covariance (confident tokens reinforced, rare ones pushed down:
       the updates that lower entropy) are detached, and with u < 0 those with the smallest (the
       updates that raise it). It acts in every epoch, on-policy ones included, so it keeps
       authority where the ratio clip has none, and the share is a direct dose of the
       entropy-lowering force removed, not an ε whose effect depends on how far ratios move,
       so its authority scales with the drift it opposes.

    By default u ≥ −0.4 (bounds ``(-0.4, 1)``): entropy above the target is lowered through the
    clip bounds and then, once they saturate, by detaching up to 10% of the valid tokens, those
    with the smallest covariance (u < −0.25). They are the rare tokens that a positive advantage
    is teaching, so the share is kept small: on tiny-arith a probe with bounds (−1, 1) detached 40%
    of them at the control start and the batch reward fell from 0.25 to 0.04 within 30 steps,
    while with (−0.25, 1) nothing strong pushed entropy down and seed 2 stayed above the band
    (63% of steps in band on the shipped loop; benchmarks/README.md). ``--control-bounds -1,1``
    allows the full range.

    Unlike ``pi_coef`` it never adds an entropy-gradient term, and with small efforts it changes
    nothing but the clip bounds; the issue's "acting on the upper clip bound" became this (both
    bounds, then the covariance clip) because the upper bound alone could not hold the band.
    Through TRL's drop-in, which exposes only ε_low/ε_high, it runs with ``detach=False``: the
    whole effort range then moves the clip bounds (segment 1 stretched to |u| ≤ 1).

    Gains (Kp, Ki) in effort per nat of error, (2, 0.5): a 0.1-nat error asks for 0.2 of effort
    at once and integrates 0.05 per step, so the clip segment is crossed within a few steps when
    the bounds cannot hold entropy. On tiny-arith (seed 0, 250 steps) both (2, 0.5) and (4, 1)
    held the band on ≥ 98% of steps 100-249 with a detached share of 0.05-0.28; with the defaults
    over the preset's 450 steps, 93 / 100 / 91% of steps 100-449 on seeds 0 / 1 / 2 (plain GRPO:
    38 / 50 / 18%), no explosion (benchmarks/README.md). Bounds: the
    range of u, within [−1, 1] (``-0.25,0.25`` keeps it to the clip bounds, ``0,1`` lets it only
    raise entropy)."""

    acts_on = "clip"
    default_gains = (2.0, 0.5)
    default_bounds = (-0.4, 1.0)
    settles_within = 120
    CLIP_SPAN = 0.25
    EPS_MIN, EPS_MAX = 0.02, 0.5
    DETACH_MAX = 0.5

    def __init__(self, u0: float = 0.0, gains: tuple[float, ...] = (), bounds: tuple[float, float] | None = None,
                 *, detach: bool = True):
        super().__init__(0.0, gains, bounds)  # the effort starts at 0: the configured clip bounds
        if self.lo < -1.0 or self.hi > 1.0:
            raise ValueError(f"pi_clip's bounds are on its effort u in [-1, 1] (|u| <= {self.CLIP_SPAN}: the clip "
                             f"bounds, beyond: the detached share), got {self.lo}, {self.hi}")
        self.detach = bool(detach)

    def load_state_dict(self, d: dict[str, float]) -> None:
        super().load_state_dict(d)
        # a checkpoint of the first pi_clip (whose state was ε_high itself, up to 2.0) stays in range
        self.u = min(max(self.u, self.lo), self.hi)

    def split(self, base: Knobs, u: float | None = None) -> Knobs:
        """The knobs for effort ``u`` (default: the current one) around the configured ``base``."""
        u = self.u if u is None else u
        span = self.CLIP_SPAN if self.detach else 1.0
        s = min(max(u / span, -1.0), 1.0)
        hi_up, lo_down = max(base.clip_high, self.EPS_MAX), min(base.clip_low, self.EPS_MIN)
        hi_down, lo_up = min(base.clip_high, self.EPS_MIN), max(base.clip_low, self.EPS_MAX)
        if s >= 0:
            clip_high = base.clip_high + s * (hi_up - base.clip_high)
            clip_low = base.clip_low + s * (lo_down - base.clip_low)
        else:
            clip_high = base.clip_high - s * (hi_down - base.clip_high)
            clip_low = base.clip_low - s * (lo_up - base.clip_low)
        detach = 0.0
        if self.detach and abs(u) > span:
            detach = math.copysign(self.DETACH_MAX * (abs(u) - span) / (1.0 - span), u)
        return Knobs(coef=base.coef, clip_high=clip_high, clip_low=clip_low, detach=detach)


#: What each controller output column is, as the dashboard and the report label it.
KNOB_LABELS = {"control/coef": "entropy-bonus coefficient α", "control/clip_high": "upper clip bound ε_high",
               "control/effort": "clip effort u"}
#: What pi_clip's effort sets, drawn beside it (|u| <= ``PIClip.CLIP_SPAN``: the clip bounds; beyond:
#: the detached share).
EFFORT_LABELS = {"control/clip_high": "ε_high", "control/clip_low": "ε_low", "control/detach": "detached share"}


def parse_pair(text: str, what: str) -> tuple[float, float] | None:
    """``"LOW,HIGH"`` -> (LOW, HIGH); empty -> None; anything else: ValueError naming ``what``."""
    if isinstance(text, (list, tuple)):
        text = ",".join(str(x) for x in text)
    if not str(text).strip():
        return None
    parts = str(text).split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{what} must be two numbers LOW,HIGH (e.g. 0.4,0.6), got {text!r}") from None
    if not lo <= hi:
        raise ValueError(f"{what} must have LOW <= HIGH, got {text!r}")
    return lo, hi


def parse_gains(text: str) -> tuple[float, ...]:
    """``"KP,KI"`` (or ``"DELTA"``) -> floats; empty -> () (the controller's defaults)."""
    if isinstance(text, (list, tuple)):
        return tuple(float(x) for x in text)
    if not str(text).strip():
        return ()
    try:
        return tuple(float(p) for p in str(text).split(","))
    except ValueError:
        raise ValueError(f"control_gains must be comma-separated numbers (e.g. 0.5,0.05), got {text!r}") from None


class EntropyControl:
    """The loop's side of entropy control: target, band, start step, the controller and the
    columns it logs. ``knobs(step)`` before the update of ``step``; ``observe(step, H)`` after it
    with the step's rollout entropy.

    Example:
        >>> c = EntropyControl("pi_clip", target=0.5, control_from=0, clip_high=0.2, clip_low=0.2)
        >>> cols = c.observe(0, 0.45)       # 0.05 below the target: effort Kp·0.05 + Ki·0.05 = 0.125
        >>> k = c.knobs(1)                  # half the clip span: each bound half way to its limit
        >>> round(k.clip_high, 3), round(k.clip_low, 3), k.detach
        (0.35, 0.11, 0.0)
    """

    def __init__(self, mode: str, *, target: float = 0.0, target_frac: float = 0.0,
                 band: tuple[float, float] | None = None, control_from: int = 0, clip_high: float = 0.2,
                 coef: float = 0.0, gains: tuple[float, ...] = (), bounds: tuple[float, float] | None = None,
                 clip_low: float = 0.2, detach: bool = True, schedule: str | Schedule | None = None,
                 end_step: int | None = None, guard: float = GUARD_DEFAULT) -> None:
        if mode not in CONTROLLERS:
            raise ValueError(f"entropy_control {mode!r} is not one of {', '.join(CONTROLLERS)}")
        if target and target_frac:
            raise ValueError("give entropy_target or entropy_target_frac, not both")
        self.schedule = parse_schedule(schedule)
        check_targets(mode, self.schedule, target=target, target_frac=target_frac, control_from=control_from,
                      end_step=end_step, guard=guard)
        self.mode, self.frac, self.control_from = mode, float(target_frac), int(control_from)
        self.schedule_from = self.control_from  # the schedule's start (kept when another controller takes over)
        self.nats = float(target) if target else math.nan  # a fixed target in nats
        self.end_step, self.guard = end_step, float(guard)
        self.target = self.nats  # the target of the last observed step
        self.band_arg = band
        self.base = Knobs(coef=coef, clip_high=clip_high, clip_low=clip_low)
        cls = CONTROLLERS[mode]
        if cls is PIClip:  # ``detach``: False where the covariance clip cannot be applied (TRL)
            self.ctl: Controller = PIClip(0.0, gains, bounds, detach=detach)
        else:
            self.ctl = cls(coef if cls.acts_on == "coef" else 0.0, gains, bounds)
        self.baseline: list[float] = []  # entropies of the first BASELINE_STEPS steps (the initial entropy)
        self.cap_warned = False  # a target in nats above the guard's cap: warned once
        self.last_error = math.nan

    @property
    def measuring(self) -> bool:
        """True when there is a target (given or to be derived), i.e. columns are logged."""
        return bool(self.frac) or not math.isnan(self.nats) or (
            self.schedule is not None and self.schedule.has_fractions)

    @property
    def initial_entropy(self) -> float:
        """The mean entropy of the first ``BASELINE_STEPS`` observed steps (NaN before)."""
        b = self.baseline
        return sum(b) / len(b) if len(b) == BASELINE_STEPS else math.nan

    def target_at(self, step: int) -> float:
        """The target at ``step`` in nats (NaN while the initial entropy is not known).

        Example:
            >>> c = EntropyControl("pi_coef", schedule="linear:1.0,0.5@20", control_from=10)
            >>> for s in range(10):
            ...     _ = c.observe(s, 0.6)
            >>> round(c.target_at(10), 3), round(c.target_at(15), 3), round(c.target_at(99), 3)
            (0.6, 0.45, 0.3)
        """
        if not math.isnan(self.nats):
            return self.nats
        h0 = self.initial_entropy
        if math.isnan(h0):
            return math.nan
        if self.schedule is not None and self.schedule.has_fractions:
            return h0 * self.schedule.frac(step, self.schedule_from, self.end_step)
        return self.frac * h0 if self.frac else math.nan

    @property
    def guard_bound(self) -> float:
        """Entropy above which the controller may not push it further up (nats; NaN: off or not known)."""
        h0 = self.initial_entropy
        return self.guard * h0 if self.guard and not math.isnan(h0) else math.nan

    def active(self, step: int) -> bool:
        return self.mode != "none" and step >= self.control_from and not math.isnan(self.target_at(step))

    def knobs(self, step: int) -> Knobs:
        """The knobs for the update of ``step``."""
        if not self.active(step):
            return self.base
        c = self.ctl
        if c.acts_on == "coef":
            return dataclasses.replace(self.base, coef=c.applied())
        if isinstance(c, PIClip):
            return c.split(self.base)
        return self.base

    def observe(self, step: int, entropy: float) -> dict[str, float]:
        """Feed the rollout entropy of ``step`` (its update done); returns that step's columns
        (the knobs it used, its error) and updates the controller for the next step."""
        entropy = float(entropy)
        used, was_active, effort = self.knobs(step), self.active(step), self.ctl.u
        if len(self.baseline) < BASELINE_STEPS:  # the first 10 steps seen (TRL counts from 1)
            self.baseline.append(entropy)
        self.target, bound = self.target_at(step), self.guard_bound
        capped = self.mode != "none" and self.target > bound / 1.2  # False while either is NaN
        if capped and not self.cap_warned:
            self.cap_warned = True
            log.warning("entropy control: the target %.4g nats is above the guard's cap %.4g (bound %.4g = %g × the "
                        "initial entropy, / 1.2) and is capped there: lower entropy_target or raise/disable "
                        "--entropy-guard", self.target, bound / 1.2, bound, self.guard)
        self.target = bound / 1.2 if capped else self.target
        error = self.target - entropy if not math.isnan(self.target) else math.nan
        self.last_error = error
        clamped = self.mode != "none" and entropy > bound
        if math.isfinite(error) and self.active(step + 1):
            self.ctl.update(error)
        if clamped:
            self.ctl.guard()
        if not self.measuring:
            return {}
        lo, hi = ((self.band_arg or (0.8 * self.target, 1.2 * self.target)) if not math.isnan(self.target)
                  else (math.nan, math.nan))  # entropy_band as given, else ±20% around this step's target
        cols = {
            "control/target": self.target, "control/band_low": lo, "control/band_high": hi,
            "control/error": error, "control/active": float(was_active),
            "control/coef": used.coef, "control/clip_high": used.clip_high, "control/clip_low": used.clip_low,
            "control/detach": used.detach, "control/integral": self.ctl.integral,
        }
        if isinstance(self.ctl, PIClip):
            cols["control/effort"] = effort if was_active else 0.0
        if self.guard and self.mode != "none":
            cols["control/guard"], cols["control/guard_bound"] = float(capped or clamped), bound
        return cols

    def hand_over(self, new: EntropyControl, from_step: int) -> EntropyControl:
        """``new`` taking over from ``from_step`` on (``--on-collapse``), with this one's target."""
        new.target, new.baseline, new.last_error = self.target, list(self.baseline), self.last_error
        new.control_from, new.schedule_from = max(new.control_from, from_step), self.schedule_from
        return new

    def state_dict(self) -> dict[str, Any]:
        """Plain floats and lists (checkpoint-safe under ``torch.load(weights_only=True)``)."""
        return {"mode": self.mode, "control_from": self.control_from, "schedule_from": self.schedule_from,
                "schedule": str(self.schedule or ""), "end_step": schedule_end(self.schedule, self.end_step),
                "target": self.target, "target_spec": target_spec(self.schedule, self.nats, self.frac),
                "baseline": list(self.baseline), "last_error": self.last_error, "controller": self.ctl.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Continue from ``d``; a schedule or end step that differs from the checkpoint's: a one-line ValueError."""
        if d.get("mode") != self.mode:
            raise ValueError(f"the checkpoint's entropy controller is {d.get('mode')!r}, this one {self.mode!r}")
        check_resume(d, self.schedule, self.end_step, nats=self.nats, frac=self.frac)
        self.control_from = int(d["control_from"])
        self.schedule_from = int(d.get("schedule_from", self.control_from))  # older checkpoints: the same
        self.target = float(d["target"])
        self.baseline = [float(x) for x in d["baseline"]]
        self.last_error = float(d["last_error"])
        self.ctl.load_state_dict(d["controller"])
        if not self.baseline and math.isfinite(self.last_error) and self.guard:  # an old checkpoint, past step 0
            log.warning("entropy control: the checkpoint holds no initial entropy (an older version's), so the "
                        "guard is off for the rest of this run (the steps after a resume are not the initial ones)")
            self.guard = 0.0
