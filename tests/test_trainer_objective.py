"""``losses.compose`` against the objective as the training loop assembled it inline before
(issue 25): the registered loss, then the covariance detach, the entropy bonus and the reference
KL. Loss, KL, statistics and gradients (through the logits, so the entropy's path counts) must
be the same for every intervention and every kind of controller knobs."""

import dataclasses

import pytest
import torch

from entrodiag.trainer.config import TrainConfig
from entrodiag.trainer.controllers import Knobs, from_config
from entrodiag.trainer.losses import LOSSES, PolicyBatch, compose, covariance_detach

B, T, V = 6, 9, 11


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T, V, generator=g) * 2
    tokens = torch.randint(V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 6:], mask[4, 3:] = False, False  # responses that ended early
    adv = torch.randn(B, generator=g)
    logp0 = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    old_logp = logp0 + 0.3 * torch.randn(B, T, generator=g)  # some ratios outside the clip bounds
    old_entropy = torch.rand(B, T, generator=g) * 2
    ref_logp = logp0 + 0.2 * torch.randn(B, T, generator=g)
    return logits, tokens, mask, adv, old_logp, old_entropy, ref_logp


def _batch(logits, sl, tokens, mask, adv, old_logp, old_entropy, with_entropy):
    logp_all = torch.log_softmax(logits[sl], -1)
    logp = logp_all.gather(-1, tokens[sl, :, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return PolicyBatch(logp, old_logp[sl], adv[sl, None].expand_as(logp), mask[sl], old_entropy[sl], entropy)


def _inline(cfg, intervention, knobs, base, pi_clip, b, n_tokens, ref_logp):
    """The objective as ``Trainer.update`` built it before ``compose`` (copied from that code)."""
    if knobs is not None and knobs != base:
        cfg = dataclasses.replace(cfg, clip_high=knobs.clip_high, clip_higher=knobs.clip_high,
                                  clip_low=knobs.clip_low, entropy_coef=knobs.coef)
    detach = knobs.detach if knobs is not None else 0.0
    bonus = knobs.coef if knobs is not None and intervention != "entropy_bonus" else 0.0
    out = LOSSES[intervention](b, cfg)
    if detach or pi_clip:
        out = covariance_detach(b, out, detach)
    loss_tok = out.loss
    if bonus:
        loss_tok = torch.where(b.mask, loss_tok - bonus * b.entropy, 0.0)
    kl_total = None
    if ref_logp is not None:
        d = ref_logp - b.logp
        kl = torch.where(b.mask, torch.exp(d) - d - 1, 0.0)
        loss_tok = loss_tok + cfg.kl_coef * kl
        kl_total = kl.sum() / n_tokens
    return loss_tok.sum() / n_tokens, kl_total, out


KNOBS = {  # name -> (knobs relative to the base, pi_clip)
    "no controller": (None, False),
    "the base knobs": ("base", False),
    "bonus and clip bounds": (dict(coef=0.01, clip_high=0.25, clip_low=0.15), False),
    "detach the top": (dict(coef=0.0, clip_high=0.3, clip_low=0.2, detach=0.1), True),
    "detach the bottom": (dict(coef=0.004, clip_high=0.2, clip_low=0.25, detach=-0.05), True),
    "pi_clip at zero share": ("base", True),
}


@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
@pytest.mark.parametrize("knobs_case", sorted(KNOBS))
@pytest.mark.parametrize("intervention", sorted(LOSSES))
def test_compose_is_the_inline_objective(data, intervention, knobs_case, kl_coef):
    logits, tokens, mask, adv, old_logp, old_entropy, ref_logp = data
    cfg = TrainConfig(intervention=intervention, kl_coef=kl_coef, clip_cov_ratio=0.05, kl_cov_ratio=0.05)
    base = from_config(cfg).base
    spec, pi_clip = KNOBS[knobs_case]
    knobs = None if spec is None else base if spec == "base" else Knobs(**spec)
    objective = compose(cfg, intervention, knobs, base=base, log_detach=pi_clip)
    n_tokens = mask.sum().clamp(min=1)
    results = []
    for way in ("inline", "compose"):
        leaf = logits.clone().requires_grad_(True)
        torch.manual_seed(7)  # Clip-Cov's random picks: the same on both sides
        total, kls, stats, selected = 0.0, [], [], []
        for sl in (slice(0, 4), slice(4, B)):  # two micro-batches, as under gradient accumulation
            b = _batch(leaf, sl, tokens, mask, adv, old_logp, old_entropy, objective.needs_entropy)
            ref = ref_logp[sl] if kl_coef > 0 else None
            if way == "inline":
                loss, kl, out = _inline(cfg, intervention, knobs, base, pi_clip, b, n_tokens, ref)
            else:
                composed = objective(b, n_tokens, ref)
                loss, kl, out = composed.loss, composed.kl, composed
            loss.backward()
            total += loss.item()
            kls.append(None if kl is None else kl.item())
            stats.append({k: v.item() for k, v in out.stats.items()})
            selected.append(None if out.selected is None else out.selected.clone())
        results.append((total, kls, stats, selected, leaf.grad))
    (loss_a, kl_a, stats_a, sel_a, grad_a), (loss_b, kl_b, stats_b, sel_b, grad_b) = results
    assert loss_b == loss_a and kl_b == kl_a and stats_b == stats_a
    assert (kl_a[0] is not None) == (kl_coef > 0)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(sel_a, sel_b))
    assert torch.equal(grad_b, grad_a), (grad_b - grad_a).abs().max()
    assert grad_a.abs().sum() > 0


def test_needs_entropy_follows_the_mode_and_the_bonus():
    cfg = TrainConfig()
    base = from_config(cfg).base
    assert compose(cfg, "entropy_bonus").needs_entropy
    assert not compose(cfg, "none", base, base=base).needs_entropy
    assert compose(cfg, "none", dataclasses.replace(base, coef=0.01), base=base).needs_entropy
    with pytest.raises(ValueError, match="ref_logp"):
        compose(TrainConfig(kl_coef=0.1), "none")(
            PolicyBatch(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool),
                        torch.zeros(1, 2)), torch.tensor(2))
