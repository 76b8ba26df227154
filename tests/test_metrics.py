"""entrodiag.metrics against naive, independent references (fp64 softmax, Python loops)."""

import math

import numpy as np
import pytest
import torch

from entrodiag import metrics as M


def naive_entropy_logprobs(logits, ids, temperature=1.0):
    """Full softmax in fp64, one row at a time (no shared code with the implementation)."""
    z = logits.double().reshape(-1, logits.shape[-1]) / temperature
    flat_ids = ids.reshape(-1)
    h, lp = [], []
    for row, k in zip(z, flat_ids):
        p = torch.softmax(row, dim=0)
        logp = torch.log_softmax(row, dim=0)
        h.append(-(p[p > 0] * logp[p > 0]).sum())
        lp.append(logp[k])
    shape = ids.shape
    if not h:
        return torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    return torch.stack(h).reshape(shape), torch.stack(lp).reshape(shape)


@pytest.mark.parametrize("shape", [(3, 7, 50000), (5, 11, 37), (13, 1), (0, 7, 50), (4, 0, 9)])
def test_entropy_matches_fp64_reference_fp32(shape):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(*shape, generator=g) * 3
    ids = torch.randint(0, shape[-1], shape[:-1], generator=g)
    h, lp = M.entropy_and_logprobs(logits, ids)
    assert h.dtype == lp.dtype == torch.float32 and h.shape == ids.shape
    ref_h, ref_lp = naive_entropy_logprobs(logits, ids)
    torch.testing.assert_close(h.double(), ref_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(lp.double(), ref_lp, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float16, 2e-2), (torch.float64, 1e-5)])
def test_entropy_low_precision_against_reference_of_same_input(dtype, tol):
    g = torch.Generator().manual_seed(2)
    logits = (torch.randn(3, 7, 50000, generator=g) * 2).to(dtype)
    ids = torch.randint(0, 50000, (3, 7), generator=g)
    h, lp = M.entropy_and_logprobs(logits, ids)
    ref_h, ref_lp = naive_entropy_logprobs(logits, ids)  # reference sees the same rounded logits
    assert h.dtype == torch.float32
    torch.testing.assert_close(h.double(), ref_h, atol=tol, rtol=0)
    torch.testing.assert_close(lp.double(), ref_lp, atol=tol, rtol=0)


def test_chunked_and_unchunked_agree_and_noncontiguous_input():
    g = torch.Generator().manual_seed(3)
    big = torch.randn(4, 9, 1000, generator=g)
    ids = torch.randint(0, 1000, (4, 8), generator=g)
    sliced = big[:, 1:]  # not viewable as rows: walked along the leading dimension
    assert not sliced.is_contiguous()
    whole = M.entropy_and_logprobs(sliced.contiguous(), ids, chunk_rows=10**9)
    for rows in (1, 3, 7, 32):
        part = M.entropy_and_logprobs(sliced, ids, chunk_rows=rows)
        torch.testing.assert_close(part[0], whole[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(part[1], whole[1], atol=1e-6, rtol=0)


def test_known_entropies_temperature_and_masked_vocabulary():
    # uniform over k of V tokens (the rest -inf): H = log k exactly
    V = 20
    logits = torch.full((4, V), -math.inf)
    for i, k in enumerate((1, 2, 5, 20)):
        logits[i, :k] = 0.7
    ids = torch.zeros(4, dtype=torch.long)
    h, lp = M.entropy_and_logprobs(logits, ids)
    torch.testing.assert_close(h, torch.log(torch.tensor([1.0, 2, 5, 20])), atol=1e-6, rtol=0)
    torch.testing.assert_close(lp, -torch.log(torch.tensor([1.0, 2, 5, 20])), atol=1e-6, rtol=0)
    z = torch.randn(6, 30)
    idx = torch.randint(0, 30, (6,))
    for t in (0.5, 1.7):
        h, lp = M.entropy_and_logprobs(z, idx, temperature=t)
        rh, rlp = naive_entropy_logprobs(z, idx, temperature=t)
        torch.testing.assert_close(h.double(), rh, atol=1e-5, rtol=0)
        torch.testing.assert_close(lp.double(), rlp, atol=1e-5, rtol=0)


def test_nonfinite_rows_give_nan_not_numbers():
    z = torch.randn(3, 5)
    z[0, 2] = math.nan
    z[1, 1] = math.inf
    h, _ = M.entropy_and_logprobs(z, torch.zeros(3, dtype=torch.long))
    assert torch.isnan(h[0]) and torch.isnan(h[1]) and torch.isfinite(h[2])


def test_bad_inputs_name_the_argument_and_shapes():
    with pytest.raises(ValueError, match=r"logits is \(2, 3, 5\), token_ids is \(2, 4\)"):
        M.entropy_and_logprobs(torch.randn(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        M.entropy_and_logprobs(torch.randn(2, 5), torch.zeros(2))
    with pytest.raises(ValueError, match="floating"):
        M.entropy_and_logprobs(torch.ones(2, 5, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        M.entropy_and_logprobs(torch.randn(2, 5), torch.tensor([0, 5]))


def ragged_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def test_token_covariance_matches_loop_with_ragged_mask():
    g = torch.Generator().manual_seed(4)
    lp = torch.randn(4, 6, generator=g)
    adv_seq = torch.randn(4, generator=g)
    mask = ragged_mask([6, 3, 0, 1], 6)
    cov, mean = M.token_covariance(lp, adv_seq, mask)
    pairs = [(lp[b, t].item(), adv_seq[b].item()) for b in range(4) for t in range(6) if mask[b, t]]
    ml = sum(p[0] for p in pairs) / len(pairs)
    ma = sum(p[1] for p in pairs) / len(pairs)
    ref = [(x - ml) * (a - ma) for x, a in pairs]
    assert mean.item() == pytest.approx(sum(ref) / len(ref), abs=1e-6)
    assert cov[mask].tolist() == pytest.approx(ref, abs=1e-6)
    assert (cov[~mask] == 0).all()
    # per-token advantages give the same as broadcast per-sequence ones
    cov2, mean2 = M.token_covariance(lp, adv_seq[:, None].expand(4, 6), mask)
    torch.testing.assert_close(cov2, cov)
    assert torch.isnan(M.token_covariance(lp, adv_seq, torch.zeros(4, 6, dtype=torch.bool))[1])


def test_window_entropy_matches_loop():
    g = torch.Generator().manual_seed(5)
    h = torch.rand(3, 9, generator=g)
    mask = ragged_mask([9, 5, 2], 9)
    win = M.window_entropy(h, mask, window=4)
    for b in range(3):
        for t in range(9):
            vals = [h[b, u].item() for u in range(t, min(t + 4, 9)) if mask[b, u]]
            expect = sum(vals) / len(vals) if mask[b, t] else 0.0
            assert win[b, t].item() == pytest.approx(expect, abs=1e-6)


def test_hwe_mask_and_spans():
    win = torch.tensor([[0.1, 0.9, 0.95, 0.2, 0.99, 0.0], [0.5, 0.5, 0.93, 0.94, 0.1, 0.0]])
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 5] = False
    is_hwe, thr = M.hwe_mask(win, mask, threshold=0.8)
    assert thr.item() == pytest.approx(0.8)
    assert M.hwe_spans(is_hwe) == [(0, 1, 3), (0, 4, 5), (1, 2, 4)]
    # default threshold: 95th percentile of the valid window entropies (numpy's linear rule)
    _, thr = M.hwe_mask(win, mask)
    assert thr.item() == pytest.approx(np.percentile(win[mask].numpy(), 95), abs=1e-6)


def test_quantiles_forking_and_histogram_match_numpy():
    g = torch.Generator().manual_seed(6)
    h = torch.rand(5, 40, generator=g) * 3
    mask = ragged_mask([40, 12, 1, 0, 33], 40)
    vals = h[mask].numpy()
    q = M.masked_quantiles(h, mask, [0.5, 0.8, 0.99])
    assert q.tolist() == pytest.approx(np.quantile(vals, [0.5, 0.8, 0.99]).tolist(), abs=1e-5)
    fork, thr = M.forking_mask(h, mask)
    assert fork.sum().item() == int((vals >= np.quantile(vals, 0.8)).sum())
    assert not fork[~mask].any()
    edges = M.DEFAULT_HIST_EDGES
    counts = M.entropy_histogram(h, mask, edges)
    ref, _ = np.histogram(np.clip(vals, 0, 100), bins=np.array(edges[:-1] + (1e9,)))
    assert counts.tolist() == ref.tolist() and counts.sum().item() == mask.sum().item()
    empty = torch.zeros_like(mask)
    assert torch.isnan(M.masked_quantiles(h, empty, [0.5])).all()
    assert M.entropy_histogram(h, empty).sum().item() == 0


def test_group_advantages_and_zero_advantage_share():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5])
    groups = torch.tensor([7, 7, 7, 3, 3, 3, 9, 9, 9, 4])  # arbitrary ids, one singleton group
    adv = M.group_advantages(rewards, groups)
    for gid in groups.unique():
        sel = groups == gid
        r = rewards[sel].double()
        std = r.std().item() if sel.sum() > 1 else 0.0
        std = 0.0 if math.isnan(std) else std
        expect = (r - r.mean()) / (std + 1e-6)
        torch.testing.assert_close(adv[sel].double(), expect, atol=1e-5, rtol=0)
    frac, n = M.zero_advantage_group_frac(rewards, groups)
    assert n == 4 and frac.item() == pytest.approx(3 / 4)  # groups 3, 9 and the singleton 4
    centred = M.group_advantages(rewards, groups, scale=False)
    assert centred[:3].tolist() == pytest.approx([1 / 3, -2 / 3, 1 / 3], abs=1e-6)


def test_entropy_discriminator_predicts_first_order_entropy_change():
    # S* = p_k (H + log p_k): a logit step eps on token k changes H by -eps * S* + O(eps^2)
    g = torch.Generator().manual_seed(7)
    z = torch.randn(50, 12, generator=g, dtype=torch.float64)
    k = torch.randint(0, 12, (50,), generator=g)
    h, lp = M.entropy_and_logprobs(z, k)
    s_star = M.entropy_discriminator(h.double(), lp.double())
    eps = 1e-4
    z2 = z.clone()
    z2[torch.arange(50), k] += eps
    h2, _ = naive_entropy_logprobs(z2, k)
    h1, _ = naive_entropy_logprobs(z, k)
    torch.testing.assert_close((h2 - h1) / eps, -s_star, atol=1e-3, rtol=0)
