"""Shared-prompt forward passes (trainer/forward.py, rollout.generate): a group's prompt runs once
and its KV cache is repeated over the group's rows. Checked against an independent reference:
one plain forward per row over its unpadded ``prompt + response``, with no cache."""

import pytest
import torch

from entrodiag.trainer.forward import response_logits
from entrodiag.trainer.model import tiny_config
from entrodiag.trainer.rollout import Prompts, generate, prompt_runs

V = 18


@pytest.fixture(scope="module")
def model():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config(V)).double().eval()


def _batch(counts, padded: bool, T: int = 4, P: int = 6, seed: int = 1):
    """Left-padded prompts repeated in runs of ``counts`` rows, random responses, ragged masks."""
    g = torch.Generator().manual_seed(seed)
    U = len(counts)
    ids = torch.randint(3, V, (U, P), generator=g)
    mask = torch.ones(U, P, dtype=torch.bool)
    if padded:
        for u in range(U):
            ids[u, : u % 3], mask[u, : u % 3] = 0, False
    reps = torch.tensor(counts)
    prompts = Prompts(ids.repeat_interleave(reps, 0), mask.repeat_interleave(reps, 0))
    B = int(reps.sum())
    resp = torch.randint(3, V, (B, T), generator=g)
    rmask = torch.ones(B, T, dtype=torch.bool)
    rmask[0, 2:] = False  # a response that ended early (padding after its <eos>)
    resp[0, 2:] = 0
    return prompts, resp, rmask


def _reference(model, prompts, resp, temperature):
    """Row by row: the unpadded prompt + response through the model, no cache, no padding."""
    rows = []
    for i in range(resp.shape[0]):
        p = prompts.ids[i][prompts.mask[i]]
        full = torch.cat([p, resp[i]])[None]
        logits = model(input_ids=full).logits[0, len(p) - 1: len(p) - 1 + resp.shape[1]]
        rows.append(logits / temperature)
    return torch.stack(rows)


def _score(logits, resp, rmask):
    return (logits.log_softmax(-1).gather(-1, resp[..., None]).squeeze(-1) * rmask).sum()


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("counts", [[3, 3, 3, 3], [2, 4, 1, 3]])
def test_response_logits_and_gradients_match_a_per_row_reference(model, padded, counts):
    prompts, resp, rmask = _batch(counts, padded)
    ref = _reference(model, prompts, resp, 0.7)
    model.zero_grad()
    _score(ref, resp, rmask).backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    for share in (True, False):
        model.zero_grad()
        got = response_logits(model, prompts, resp, rmask, 0.7, share_prompts=share)
        assert got.shape == resp.shape + (V,) and got.dtype == torch.float32
        valid = rmask[..., None].expand_as(got)
        # the model's RMSNorm computes in fp32 even in an fp64 model: fp32-level agreement
        torch.testing.assert_close(got[valid], ref[valid].float(), rtol=0, atol=1e-5)
        _score(got, resp, rmask).backward()
        for (name, p), r in zip(model.named_parameters(), ref_grads):
            torch.testing.assert_close(p.grad, r, rtol=1e-5, atol=1e-5, msg=f"{name} (share={share})")


def test_response_logits_on_a_slice_that_starts_inside_a_group(model):
    """A micro-batch may cut a group: the runs are found within the slice."""
    prompts, resp, rmask = _batch([4, 4, 4], padded=True)
    sl = slice(2, 10)
    part = prompts.take(sl)
    assert prompt_runs(part)[1].tolist() == [2, 4, 2]
    got = response_logits(model, part, resp[sl], rmask[sl])
    ref = _reference(model, part, resp[sl], 1.0)
    valid = rmask[sl, :, None].expand_as(got)
    torch.testing.assert_close(got[valid], ref[valid].float(), rtol=0, atol=1e-5)


def test_single_token_responses(model):
    prompts, resp, rmask = _batch([3, 3], padded=True, T=1)
    rmask[:] = True
    got = response_logits(model, prompts, resp, rmask)
    torch.testing.assert_close(got, _reference(model, prompts, resp, 1.0).float(), rtol=0, atol=1e-5)


def test_prompt_runs():
    ids = torch.tensor([[1, 2], [1, 2], [0, 2], [1, 2], [1, 2], [1, 2]])
    mask = torch.tensor([[1, 1], [1, 1], [0, 1], [1, 1], [1, 1], [1, 1]], dtype=torch.bool)
    first, counts = prompt_runs(Prompts(ids, mask))
    assert first.tolist() == [0, 2, 3] and counts.tolist() == [2, 1, 3]


@pytest.mark.parametrize("padded", [False, True])
def test_generate_with_shared_prompts_samples_the_same(model, padded):
    """The shared prompt changes no sampled token, log-prob or entropy beyond float rounding."""
    prompts, _, _ = _batch([4, 4, 4], padded)
    outs = [generate(model, prompts, 5, eos_id=2, pad_id=0, generator=torch.Generator().manual_seed(3),
                     share_prompts=share) for share in (True, False)]
    a, b = outs
    assert torch.equal(a.response, b.response) and torch.equal(a.mask, b.mask)
    for field in ("old_logp", "entropy", "logp"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-5)
    # and the greedy continuation of each row is the reference model's argmax, token by token
    g = generate(model, prompts, 3, eos_id=2, pad_id=0, greedy=True)
    ref = _reference(model, prompts, g.response, 1.0)
    assert torch.equal(ref.argmax(-1)[g.mask], g.response[g.mask])
