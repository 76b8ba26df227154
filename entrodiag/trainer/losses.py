"""Policy-loss modes, registered by name: each entropy intervention is one small function; and
:func:`compose`, the whole objective of an update built on the mode in use.

A mode maps a :class:`PolicyBatch` to a per-token loss ``[B, T]`` (zero where ``mask`` is False)
and a few statistics. :func:`compose` adds what the entropy controller and the configuration ask
for on top of it (the covariance detach, the entropy bonus, the reference KL) and takes the token
mean over the valid tokens of the whole batch; the loop only runs the optimizer on it.
Exact semantics: docs/interventions.md (Cui et al. 2025, arXiv 2505.22617; verl's
``core_algos.py``): the covariance and the token selections are local to the batch the loss sees
(a micro-batch under gradient accumulation, one rank under DDP), as in verl.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..metrics import forking_mask


@dataclass
class PolicyBatch:
    """What a policy loss sees. All tensors are ``[B, T]`` over response positions."""

    logp: torch.Tensor
    """Log-probabilities of the sampled tokens under the current policy (with gradient)."""
    old_logp: torch.Tensor
    """The same under the policy that sampled them (from the rollout; no gradient)."""
    advantages: torch.Tensor
    mask: torch.Tensor
    """True at valid response tokens."""
    old_entropy: torch.Tensor
    """Token entropy at sampling time (no gradient): selects forking tokens."""
    entropy: torch.Tensor | None = None
    """Token entropy under the current policy, with gradient (only for ``entropy_bonus``)."""
    n_valid: int | None = None
    """The number of valid tokens (``mask``'s true entries) when the caller knows it on the host
    (the update counts them from the rollout's response lengths); None: read from ``mask``, a
    host sync on an accelerator. The top-k choices of Clip-Cov, KL-Cov and the detach need it."""


def valid_count(b: PolicyBatch) -> int:
    """The valid tokens of ``b`` as a host integer: ``b.n_valid``, else counted from the mask."""
    return b.n_valid if b.n_valid is not None else int(b.mask.sum())


@dataclass
class LossOut:
    loss: torch.Tensor
    """Per-token loss ``[B, T]``, zero outside the mask."""
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    """Shares of valid tokens (``clip_low_frac``, ``clip_high_frac``, ``selected_frac``)."""
    selected: torch.Tensor | None = None
    """Tokens the intervention acted on (Clip-Cov: detached; KL-Cov: penalised; forking: kept)."""


LossFn = Callable[[PolicyBatch, "TrainConfig"], LossOut]  # noqa: F821
LOSSES: dict[str, LossFn] = {}
NEEDS_ENTROPY_GRAD = {"entropy_bonus"}


def register_policy_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Register ``fn(batch, cfg) -> LossOut`` as the loss of ``--intervention name``."""

    def add(fn: LossFn) -> LossFn:
        LOSSES[name] = fn
        return fn

    return add


def _take_top(keys: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
    """A flat boolean mask of the ``k`` largest ``keys`` that are ``allowed`` (fewer when fewer
    are), without a host sync: the top ``k`` of all keys (those not allowed must rank below the
    allowed ones), then the not-allowed among them dropped."""
    chosen = torch.zeros_like(allowed)
    top = torch.topk(keys, k).indices
    chosen[top] = allowed[top]
    return chosen


def _frac(selected: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (selected & mask).sum() / mask.sum().clamp(min=1)


def ppo_clip(b: PolicyBatch, eps_low: float, eps_high: float) -> LossOut:
    """Token-level PPO clip: max(−A·r, −A·clip(r, 1 − ε_low, 1 + ε_high)), r = π/π_old.

    A token is clipped where the clipped term is the larger (it then has no gradient); those at
    the low bound push entropy up, those at the high bound push it down (Park et al. 2025), so
    the two shares are reported apart.
    """
    ratio = torch.exp(b.logp - b.old_logp)
    l1 = -b.advantages * ratio
    l2 = -b.advantages * ratio.clamp(1 - eps_low, 1 + eps_high)
    clipped = (l2 > l1) & b.mask
    stats = {
        "clip_low_frac": _frac(clipped & (ratio < 1 - eps_low), b.mask),
        "clip_high_frac": _frac(clipped & (ratio > 1 + eps_high), b.mask),
    }
    return LossOut(torch.where(b.mask, torch.maximum(l1, l2), 0.0), stats, clipped)


def batch_covariance(b: PolicyBatch) -> torch.Tensor:
    """Cui et al. 2025 Eq. 10 per valid token: (logp − mean logp)·(A − mean A), detached; NaN
    outside the mask. Means are over the valid tokens of this batch; logp is the current one."""
    logp, adv = b.logp.detach(), b.advantages.detach()
    n = b.mask.sum().clamp(min=1)
    lm = torch.where(b.mask, logp, 0.0).sum() / n
    am = torch.where(b.mask, adv, 0.0).sum() / n
    return torch.where(b.mask, (logp - lm) * (adv - am), float("nan"))


@register_policy_loss("none")
def plain_grpo(b: PolicyBatch, cfg) -> LossOut:
    """GRPO: token-level PPO clip with symmetric ε (``clip_low``, ``clip_high``, both 0.2)."""
    return ppo_clip(b, cfg.clip_low, cfg.clip_high)


@register_policy_loss("clip_higher")
def clip_higher(b: PolicyBatch, cfg) -> LossOut:
    """DAPO's clip-higher: asymmetric bounds 1 − ε_low, 1 + ε_high with ε_low 0.2, ε_high 0.28
    (``clip_low``, ``clip_higher``), so low-probability tokens can gain more and entropy lasts."""
    return ppo_clip(b, cfg.clip_low, cfg.clip_higher)


@register_policy_loss("entropy_bonus")
def entropy_bonus(b: PolicyBatch, cfg) -> LossOut:
    """PPO clip minus ``entropy_coef``·H_t (current entropy, with gradient). Cui et al. 2025
    §4.1: 0.01 made entropy explode, 0.005 stabilised it without beating the baselines."""
    if b.entropy is None:
        raise ValueError("entropy_bonus needs the current entropy with gradient (PolicyBatch.entropy)")
    out = ppo_clip(b, cfg.clip_low, cfg.clip_high)
    out.loss = torch.where(b.mask, out.loss - cfg.entropy_coef * b.entropy, 0.0)
    return out


@register_policy_loss("clip_cov")
def clip_cov(b: PolicyBatch, cfg) -> LossOut:
    """Clip-Cov (Cui et al. 2025; verl ``compute_policy_loss_clip_cov``): among valid tokens not
    already clipped by PPO with ``clip_cov_lb < cov < clip_cov_ub`` (1 and 5), pick
    max(int(``clip_cov_ratio``·N), 1) (r = 2e-4) uniformly at random (all of them when fewer) and
    zero their loss, which detaches their gradient."""
    out = ppo_clip(b, cfg.clip_low, cfg.clip_high)
    cov = batch_covariance(b)
    candidates = (b.mask & ~out.selected & (cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub)).flatten()
    k = min(max(int(cfg.clip_cov_ratio * valid_count(b)), 1), candidates.numel())
    # a uniform random choice without counting the candidates on the host: the k largest of
    # independent uniform keys, every other token keyed below them and dropped if it is picked
    keys = torch.where(candidates, torch.rand(candidates.shape, device=candidates.device), -1.0)
    selected = _take_top(keys, k, candidates).view_as(b.mask)
    out.loss = torch.where(selected, 0.0, out.loss)
    out.stats["selected_frac"] = _frac(selected, b.mask)
    out.selected = selected
    return out


def covariance_detach(b: PolicyBatch, out: LossOut, share: float) -> LossOut:
    """Zero the loss (detach the gradient) of round(|share|·N) of the N valid tokens, chosen by
    :func:`batch_covariance` among those the loss has not already selected (ratio-clipped):
    the largest covariance when ``share`` > 0, the smallest when < 0. ``pi_clip``'s covariance
    clip: Clip-Cov's detaching, with a top-k choice instead of a random one inside a window, so
    the share is a monotone dose (entropy moves by −Cov(log π, A), Cui et al. 2025). Adds the
    statistic ``detach_frac``; ``out.selected`` becomes the union."""
    n_valid = valid_count(b)
    k = min(int(round(abs(share) * n_valid)), n_valid)
    if k == 0:  # nothing to detach (pi_clip's usual case): skip the covariance, log the zero share
        out.stats["detach_frac"] = b.mask.new_zeros((), dtype=torch.float32)
        return out
    free = b.mask if out.selected is None else b.mask & ~out.selected
    cov = batch_covariance(b)
    cov = torch.where(free, cov if share > 0 else -cov, float("-inf")).flatten()
    chosen = _take_top(cov, min(k, cov.numel()), free.flatten()).view_as(b.mask)
    out.loss = torch.where(chosen, 0.0, out.loss)
    out.stats["detach_frac"] = _frac(chosen, b.mask)
    out.selected = chosen if out.selected is None else out.selected | chosen
    return out


@register_policy_loss("kl_cov")
def kl_cov(b: PolicyBatch, cfg) -> LossOut:
    """KL-Cov (Cui et al. 2025; verl ``compute_policy_loss_kl_cov``): no ratio clipping, loss
    −A·r, plus ``kl_cov_coef``·|logp − logp_old| (β = 1) on the top max(int(``kl_cov_ratio``·N), 1)
    valid tokens by covariance (k = 2e-3 as for 7B models; 2e-4 for 32B)."""
    ratio = torch.exp(b.logp - b.old_logp)
    cov = batch_covariance(b).nan_to_num(nan=float("-inf"))
    n_valid = valid_count(b)
    k = min(max(int(cfg.kl_cov_ratio * n_valid), 1), n_valid)
    selected = _take_top(cov.flatten(), k, b.mask.flatten()).view_as(b.mask)
    loss = -b.advantages * ratio + torch.where(selected, cfg.kl_cov_coef * (b.logp - b.old_logp).abs(), 0.0)
    stats = {"selected_frac": _frac(selected, b.mask)}
    return LossOut(torch.where(b.mask, loss, 0.0), stats, selected)


@register_policy_loss("forking_only")
def forking_only(b: PolicyBatch, cfg) -> LossOut:
    """Train on forking tokens only (Wang et al. 2025, "Beyond the 80/20 rule"): the PPO-clip
    loss is kept where the sampling-time entropy is at or above the batch's ``forking_quantile``
    (0.8) and zeroed elsewhere; the token mean still divides by all valid tokens."""
    out = ppo_clip(b, cfg.clip_low, cfg.clip_high)
    fork, _ = forking_mask(b.old_entropy, b.mask, cfg.forking_quantile)
    out.loss = torch.where(fork, out.loss, 0.0)
    out.stats["selected_frac"] = _frac(fork, b.mask)
    out.selected = fork
    return out


LOSSES["grpo"] = plain_grpo  # the same loss under its algorithm's name


@dataclass
class ObjectiveOut:
    """One micro-batch's share of the objective."""

    loss: torch.Tensor
    """The scalar to back-propagate: the per-token objective summed over the micro-batch's valid
    tokens and divided by the valid tokens of the whole batch."""
    stats: dict[str, torch.Tensor]
    """The loss mode's statistics (shares of valid tokens), ``detach_frac`` with the detach."""
    selected: torch.Tensor | None
    """Tokens the intervention and the detach acted on."""
    kl: torch.Tensor | None = None
    """The reference KL's part (k3, summed the same way as ``loss``); None without a reference."""


@dataclass(frozen=True)
class Objective:
    """The whole objective of one update; call it on each micro-batch.

    Per valid token: the registered loss of ``intervention`` under ``cfg``; then the loss of the
    ``detach`` share of tokens zeroed by covariance (:func:`covariance_detach`, ``pi_clip``; with
    ``log_detach`` its ``detach_frac`` is logged at a zero share too); minus ``bonus``·H_t (the
    controlled entropy bonus, as in :func:`entropy_bonus`); plus ``kl_coef`` times the k3
    estimate of KL(π‖π_ref), exp(d) − d − 1 with d = log π_ref − log π (Schulman 2020).
    """

    cfg: Any
    """The ``TrainConfig``, with the controller's clip bounds and entropy coefficient."""
    intervention: str
    detach: float = 0.0
    log_detach: bool = False
    bonus: float = 0.0
    kl_coef: float = 0.0

    @property
    def needs_entropy(self) -> bool:
        """Whether the batch must carry the current entropy with gradient (``PolicyBatch.entropy``)."""
        return self.intervention in NEEDS_ENTROPY_GRAD or self.bonus != 0

    def __call__(self, b: PolicyBatch, n_tokens: torch.Tensor, ref_logp: torch.Tensor | None = None) -> ObjectiveOut:
        """The objective on micro-batch ``b``; ``n_tokens``: the valid tokens of the whole batch;
        ``ref_logp``: log-probabilities of the sampled tokens under the reference policy (needed
        when ``kl_coef`` > 0)."""
        out = LOSSES[self.intervention](b, self.cfg)
        if self.detach or self.log_detach:
            out = covariance_detach(b, out, self.detach)
        loss_tok = out.loss
        if self.bonus:
            loss_tok = torch.where(b.mask, loss_tok - self.bonus * b.entropy, 0.0)
        kl = None
        if self.kl_coef > 0:
            if ref_logp is None:
                raise ValueError("an objective with kl_coef > 0 needs the reference log-probabilities (ref_logp)")
            d = ref_logp - b.logp
            kl_tok = torch.where(b.mask, torch.exp(d) - d - 1, 0.0)  # k3 estimator
            loss_tok = loss_tok + self.kl_coef * kl_tok
            kl = kl_tok.sum() / n_tokens
        return ObjectiveOut(loss_tok.sum() / n_tokens, out.stats, out.selected, kl)


def compose(cfg, intervention: str, knobs=None, *, base=None, log_detach: bool = False) -> Objective:
    """The objective of an update with loss mode ``intervention``, set by the entropy
    controller's ``knobs`` (``controllers.Knobs``: entropy-bonus coefficient, clip bounds,
    covariance-detach share; ``None``: the configuration's own).

    Knobs other than the controller's ``base`` replace the configuration's clip bounds and
    entropy coefficient; the coefficient is a bonus term on top of any loss but
    ``entropy_bonus`` (which has its own); ``log_detach`` (``pi_clip``) logs the detached share
    every step. The reference KL's coefficient is ``cfg.kl_coef``.
    """
    if knobs is not None and knobs != base:
        # a shallow copy with four numbers set (every step while a controller moves them):
        # dataclasses.replace would validate the whole configuration and rebuild its controllers again
        cfg = copy.copy(cfg)
        cfg.clip_high = cfg.clip_higher = knobs.clip_high
        cfg.clip_low, cfg.entropy_coef = knobs.clip_low, knobs.coef
    detach = knobs.detach if knobs is not None else 0.0
    bonus = knobs.coef if knobs is not None and intervention != "entropy_bonus" else 0.0
    return Objective(cfg, intervention, detach=detach, log_detach=log_detach, bonus=bonus, kl_coef=cfg.kl_coef)
