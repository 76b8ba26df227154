"""Each policy-loss mode checked against its definition on hand-built batches (docs/interventions.md)."""

import numpy as np
import pytest
import torch

from entrodiag.trainer.config import TrainConfig
from entrodiag.trainer.losses import LOSSES, PolicyBatch, batch_covariance


def _batch(logp, old_logp, adv, mask=None, old_entropy=None, entropy=None):
    logp = torch.tensor(logp, dtype=torch.float64, requires_grad=True)
    old = torch.tensor(old_logp, dtype=torch.float64)
    adv = torch.tensor(adv, dtype=torch.float64)
    mask = torch.ones_like(old, dtype=torch.bool) if mask is None else torch.tensor(mask)
    ent = torch.zeros_like(old) if old_entropy is None else torch.tensor(old_entropy, dtype=torch.float64)
    return PolicyBatch(logp, old, adv, mask, ent, entropy)


def _grad(b: PolicyBatch, out) -> np.ndarray:
    (g,) = torch.autograd.grad(out.loss.sum(), b.logp)
    return g.numpy()


def test_registry_holds_every_mode_and_config_rejects_unknown():
    assert {"none", "grpo", "clip_higher", "entropy_bonus", "clip_cov", "kl_cov", "forking_only"} <= set(LOSSES)
    with pytest.raises(ValueError, match="intervention 'bogus' is not one of"):
        TrainConfig(intervention="bogus")


def test_grpo_is_token_level_ppo_clip():
    r = np.array([[1.0, 1.3, 0.7], [1.1, 0.5, 1.5]])
    adv = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    b = _batch(np.log(r), np.zeros_like(r), adv)
    out = LOSSES["none"](b, TrainConfig())
    expect = np.maximum(-adv * r, -adv * np.clip(r, 0.8, 1.2))
    np.testing.assert_allclose(out.loss.detach().numpy(), expect, rtol=1e-12)
    # clipped: A>0 with r>1.2 (high side) and A<0 with r<0.8 (low side): no gradient there
    g = _grad(b, out)
    assert g[0, 1] == 0 and g[1, 1] == 0 and np.all(g[[0, 0, 1, 1], [0, 2, 0, 2]] != 0)
    assert out.stats["clip_high_frac"].item() == pytest.approx(1 / 6)
    assert out.stats["clip_low_frac"].item() == pytest.approx(1 / 6)


def test_clip_higher_uses_the_asymmetric_bounds():
    # A>0: r=1.25 is clipped under eps_high 0.2 but not under 0.28; r=1.3 is clipped under both.
    # A<0: r=0.75 is clipped by the low bound 0.8 in both.
    r = np.array([[1.25, 1.3, 0.75]])
    adv = np.array([[1.0, 1.0, -1.0]])
    b = _batch(np.log(r), np.zeros_like(r), adv)
    cfg = TrainConfig()
    g_sym, g_hi = _grad(b, LOSSES["none"](b, cfg)), _grad(b, LOSSES["clip_higher"](b, cfg))
    assert g_sym[0, 0] == 0 and g_hi[0, 0] != 0
    assert g_sym[0, 1] == 0 and g_hi[0, 1] == 0
    assert g_sym[0, 2] == 0 and g_hi[0, 2] == 0
    out = LOSSES["clip_higher"](b, cfg)
    np.testing.assert_allclose(out.loss.detach().numpy()[0], [-1.25, -1.28, 0.8], rtol=1e-12)


def test_clip_cov_detaches_exactly_the_selected_tokens_inside_the_window():
    rng = np.random.default_rng(0)
    logp = rng.normal(-1.0, 1.5, size=(8, 50))
    adv = np.repeat(rng.normal(0, 2.0, size=(8, 1)), 50, axis=1)
    old = logp + rng.normal(0, 0.15, size=logp.shape)  # some ratios outside [0.8, 1.2]
    mask = np.ones_like(logp, dtype=bool)
    mask[:, 45:] = False
    b = _batch(logp, old, adv, mask)
    # the covariance by hand over the valid tokens
    lm, am = logp[mask].mean(), adv[mask].mean()
    cov = (logp - lm) * (adv - am)
    np.testing.assert_allclose(batch_covariance(b).numpy()[mask], cov[mask], rtol=1e-12)
    cfg = TrainConfig(intervention="clip_cov", clip_cov_ratio=0.02)  # 0.02 * 360 -> 7 tokens
    base = LOSSES["none"](b, cfg)
    out = LOSSES["clip_cov"](b, cfg)
    sel = out.selected.numpy()
    ppo_clipped = base.selected.numpy()
    candidates = mask & ~ppo_clipped & (cov > 1) & (cov < 5)
    assert candidates.sum() > 7, "the hand-built batch must offer more candidates than are picked"
    assert sel.sum() == max(int(0.02 * mask.sum()), 1) == 7
    assert np.all(candidates[sel]), "only tokens inside 1 < cov < 5 and not PPO-clipped are picked"
    g_base, g = _grad(b, base), _grad(b, out)
    assert np.all(g[sel] == 0) and np.all(g_base[sel] != 0)
    np.testing.assert_array_equal(g[~sel], g_base[~sel])  # every other token keeps its gradient
    assert out.stats["selected_frac"].item() == pytest.approx(7 / mask.sum())


def test_clip_cov_picks_one_token_at_least_and_none_without_candidates():
    b = _batch(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))  # cov = 0 everywhere
    out = LOSSES["clip_cov"](b, TrainConfig())
    assert out.selected.sum() == 0
    logp = np.array([[-3.0, 0.0, 0.0]])
    adv = np.array([[-3.0, 0.0, 0.0]])  # cov of token 0 = (-2)*(-2) = 4: one candidate
    b = _batch(logp, logp, adv)
    out = LOSSES["clip_cov"](b, TrainConfig())
    assert out.selected.numpy().tolist() == [[True, False, False]]


def test_kl_cov_penalises_exactly_the_top_k_tokens_without_ratio_clipping():
    rng = np.random.default_rng(1)
    logp = rng.normal(-1.0, 1.0, size=(4, 25))
    old = logp + rng.normal(0, 0.5, size=logp.shape)
    adv = np.repeat(rng.normal(0, 1.0, size=(4, 1)), 25, axis=1)
    b = _batch(logp, old, adv)
    cfg = TrainConfig(intervention="kl_cov", kl_cov_ratio=0.05, kl_cov_coef=0.7)  # 5 of 100
    out = LOSSES["kl_cov"](b, cfg)
    cov = (logp - logp.mean()) * (adv - adv.mean())
    top = np.zeros(cov.size, dtype=bool)
    top[np.argsort(-cov, axis=None)[:5]] = True
    top = top.reshape(cov.shape)
    np.testing.assert_array_equal(out.selected.numpy(), top)
    ratio = np.exp(logp - old)
    expect = -adv * ratio + np.where(top, 0.7 * np.abs(logp - old), 0.0)
    np.testing.assert_allclose(out.loss.detach().numpy(), expect, rtol=1e-12)
    assert np.all(_grad(b, out) != 0), "no ratio clipping: every token keeps a gradient"


def test_forking_only_keeps_the_top_20_percent_by_entropy():
    ent = np.arange(20, dtype=float).reshape(2, 10) / 10  # 0.0 .. 1.9
    r = np.full((2, 10), 1.05)
    b = _batch(np.log(r), np.zeros_like(r), np.ones_like(r), old_entropy=ent)
    out = LOSSES["forking_only"](b, TrainConfig())
    threshold = np.quantile(ent, 0.8)
    keep = ent >= threshold
    assert keep.sum() == 4
    np.testing.assert_array_equal(out.selected.numpy(), keep)
    g = _grad(b, out)
    assert np.all(g[keep] != 0) and np.all(g[~keep] == 0)


def test_entropy_bonus_subtracts_coef_times_current_entropy():
    r = np.array([[1.0, 1.1]])
    h = torch.tensor([[0.5, 2.0]], dtype=torch.float64, requires_grad=True)
    b = _batch(np.log(r), np.zeros_like(r), np.ones_like(r), entropy=h)
    out = LOSSES["entropy_bonus"](b, TrainConfig(entropy_coef=0.01))
    np.testing.assert_allclose(out.loss.detach().numpy(), -r - 0.01 * h.detach().numpy(), rtol=1e-12)
    (gh,) = torch.autograd.grad(out.loss.sum(), h)
    np.testing.assert_allclose(gh.numpy(), [[-0.01, -0.01]])
    with pytest.raises(ValueError, match="entropy with gradient"):
        LOSSES["entropy_bonus"](_batch(np.log(r), np.zeros_like(r), np.ones_like(r)), TrainConfig())


def test_masked_tokens_carry_no_loss_in_any_mode():
    r = np.array([[1.0, 1.1, 9.0]])
    mask = [[True, True, False]]
    for name, fn in LOSSES.items():
        b = _batch(np.log(r), np.zeros_like(r), np.ones_like(r), mask=mask, old_entropy=[[0.1, 0.2, 5.0]],
                   entropy=torch.ones(1, 3, dtype=torch.float64))
        out = fn(b, TrainConfig())
        assert out.loss[0, 2].item() == 0, name
