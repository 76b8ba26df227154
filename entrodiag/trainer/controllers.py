"""Closed-loop entropy control, registered by name: each controller is one small class.

A controller sees the rollout entropy of each step (the token mean over every valid response
token, all ranks) and sets the two knobs that move entropy in the next step: the entropy-bonus
coefficient α (the loss gets −α·H_t per token, with gradient; α < 0 is an entropy penalty) and
the PPO clip's upper bound ε_high (clip-higher: tokens clipped at the high side lower entropy,
Park et al. 2025, so a larger ε_high lets entropy last). The error is ``e = target − H``:
positive when entropy is below the target.

The target is ``entropy_target`` nats, or ``entropy_target_frac`` × the mean entropy of the first
10 steps (known from step 10 on). The controller acts from ``entropy_control_from`` on (and never
before the target is known); before that both knobs keep their configured values. Its state is a
dict of floats (:meth:`EntropyControl.state_dict`) stored in every checkpoint, so a resumed run
continues exactly. Per step it logs the step columns ``control/target``, ``control/band_low``,
``control/band_high``, ``control/error``, ``control/active``, ``control/coef``,
``control/clip_high`` and ``control/integral`` (the knobs as applied in that step's update).

``none`` with a target only measures (so plain GRPO's time in band can be compared).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Steps whose mean entropy defines the target under ``entropy_target_frac``.
BASELINE_STEPS = 10


@dataclass
class Knobs:
    """What a controller sets for the next update."""

    coef: float
    """Entropy-bonus coefficient α (loss −α·H_t); 0 = no bonus term."""
    clip_high: float
    """Upper PPO clip bound ε_high."""


class Controller:
    """One control law. Subclasses set ``acts_on`` (``coef``, ``clip_high`` or ``""``), their
    default ``gains`` and ``bounds``, and implement :meth:`update`. ``self.u`` is the knob's
    value; ``self.integral`` the PI integrator (unused by the others)."""

    acts_on = ""
    default_gains: tuple[float, ...] = ()
    default_bounds: tuple[float, float] = (-math.inf, math.inf)
    #: Steps after the control start within which, with its default gains, the controller holds
    #: entropy within ±5% of the target for good on the synthetic plant of
    #: tests/test_entropy_control.py (ΔH = −0.003·H + 0.1·α + 0.01·(ε_high − 0.2) per step).
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
    """PI on the upper clip bound ε_high (clip-higher style, DAPO; Park et al. 2025: clipping at
    the high side lowers entropy, so a larger ε_high raises it, a smaller one lowers it). Needs no
    entropy gradient. Gains (Kp, Ki) in ε per nat; u0 is the configured ``clip_high``; bounds
    [0.02, 2.0]."""

    acts_on = "clip_high"
    default_gains = (2.0, 0.2)
    default_bounds = (0.02, 2.0)
    settles_within = 90


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
        >>> c = EntropyControl("pi_clip", target=0.5, control_from=0, clip_high=0.2, coef=0.0)
        >>> cols = c.observe(0, 0.4)        # entropy 0.1 below the target: ε_high rises
        >>> round(c.knobs(1).clip_high, 3)  # 0.2 + Kp·0.1 + Ki·0.1 with (Kp, Ki) = (2, 0.2)
        0.42
    """

    def __init__(self, mode: str, *, target: float = 0.0, target_frac: float = 0.0,
                 band: tuple[float, float] | None = None, control_from: int = 0, clip_high: float = 0.2,
                 coef: float = 0.0, gains: tuple[float, ...] = (), bounds: tuple[float, float] | None = None) -> None:
        if mode not in CONTROLLERS:
            raise ValueError(f"entropy_control {mode!r} is not one of {', '.join(CONTROLLERS)}")
        if target and target_frac:
            raise ValueError("give entropy_target or entropy_target_frac, not both")
        if mode != "none" and not (target or target_frac):
            raise ValueError(f"entropy_control {mode} needs a target: entropy_target NATS or entropy_target_frac F")
        self.mode, self.frac, self.control_from = mode, float(target_frac), int(control_from)
        self.target = float(target) if target else math.nan
        self.band_arg = band
        self.base = Knobs(coef=coef, clip_high=clip_high)
        cls = CONTROLLERS[mode]
        self.ctl = cls({"coef": coef, "clip_high": clip_high}.get(cls.acts_on, 0.0), gains, bounds)
        self.baseline: list[float] = []  # entropies of the first BASELINE_STEPS steps (for target_frac)
        self.last_error = math.nan

    @property
    def measuring(self) -> bool:
        """True when there is a target (given or to be derived), i.e. columns are logged."""
        return bool(self.frac) or not math.isnan(self.target)

    @property
    def band(self) -> tuple[float, float]:
        if self.band_arg is not None:
            return self.band_arg
        return 0.8 * self.target, 1.2 * self.target

    def active(self, step: int) -> bool:
        return self.mode != "none" and step >= self.control_from and not math.isnan(self.target)

    def knobs(self, step: int) -> Knobs:
        """The coefficient and ε_high for the update of ``step``."""
        if not self.active(step):
            return self.base
        c = self.ctl
        if c.acts_on == "coef":
            return Knobs(coef=c.applied(), clip_high=self.base.clip_high)
        if c.acts_on == "clip_high":
            return Knobs(coef=self.base.coef, clip_high=c.u)
        return self.base

    def observe(self, step: int, entropy: float) -> dict[str, float]:
        """Feed the rollout entropy of ``step`` (its update done); returns that step's columns
        (the knobs it used, its error) and updates the controller for the next step."""
        entropy = float(entropy)
        used, was_active = self.knobs(step), self.active(step)
        if self.frac and math.isnan(self.target):  # the first 10 steps seen (TRL counts from 1)
            self.baseline.append(entropy)
            if len(self.baseline) == BASELINE_STEPS:
                self.target = self.frac * sum(self.baseline) / len(self.baseline)
        error = self.target - entropy if not math.isnan(self.target) else math.nan
        self.last_error = error
        if math.isfinite(error) and self.active(step + 1):
            self.ctl.update(error)
        if not self.measuring:
            return {}
        lo, hi = self.band if not math.isnan(self.target) else (math.nan, math.nan)
        return {
            "control/target": self.target, "control/band_low": lo, "control/band_high": hi,
            "control/error": error, "control/active": float(was_active),
            "control/coef": used.coef, "control/clip_high": used.clip_high,
            "control/integral": self.ctl.integral,
        }

    def hand_over(self, new: EntropyControl, from_step: int) -> EntropyControl:
        """``new`` taking over from ``from_step`` on (``--on-collapse``), with this one's target."""
        new.target, new.baseline, new.last_error = self.target, list(self.baseline), self.last_error
        new.control_from = max(new.control_from, from_step)
        return new

    def state_dict(self) -> dict[str, Any]:
        """Plain floats and lists (checkpoint-safe under ``torch.load(weights_only=True)``)."""
        return {"mode": self.mode, "control_from": self.control_from, "target": self.target,
                "baseline": list(self.baseline), "last_error": self.last_error, "controller": self.ctl.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("mode") != self.mode:
            raise ValueError(f"the checkpoint's entropy controller is {d.get('mode')!r}, this one {self.mode!r}")
        self.control_from = int(d["control_from"])
        self.target = float(d["target"])
        self.baseline = [float(x) for x in d["baseline"]]
        self.last_error = float(d["last_error"])
        self.ctl.load_state_dict(d["controller"])


def from_config(cfg, mode: str | None = None) -> EntropyControl:
    """The :class:`EntropyControl` a :class:`TrainConfig` asks for (``mode`` overrides
    ``cfg.entropy_control``, as ``--on-collapse`` does when it switches a controller on)."""
    return EntropyControl(
        mode or cfg.entropy_control, target=cfg.entropy_target, target_frac=cfg.entropy_target_frac,
        band=parse_pair(cfg.entropy_band, "entropy_band"), control_from=cfg.entropy_control_from,
        clip_high=cfg.clip_higher if cfg.intervention == "clip_higher" else cfg.clip_high,
        coef=cfg.entropy_coef if cfg.intervention == "entropy_bonus" else 0.0,
        gains=parse_gains(cfg.control_gains), bounds=parse_pair(cfg.control_bounds, "control_bounds"),
    )
