"""The update without whole logits (trainer/chunked_head.py, issue 29): log-probs and entropy
from the last hidden states and the output head chunk by chunk, the logits recomputed in the
backward. Checked against the whole-logits path (``log_softmax`` over ``[B, T, V]``, still
callable as ``head=None``): values, gradients, and a whole ``Trainer.update`` with every loss
mode, the entropy bonus and the reference KL; and one host sync per update."""

import copy
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

import entrodiag.trainer
from entrodiag.trainer.chunked_head import head_logprobs, linear_head
from entrodiag.trainer.controllers import Knobs

TRAINER_DIR = str(Path(entrodiag.trainer.__file__).parent)


def _whole_logits(h, w, ids, temperature):
    logp_all = torch.log_softmax(h @ w.T / temperature, -1)
    return logp_all.gather(-1, ids[..., None]).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk_rows", [1, 4, 1000])
def test_values_and_gradients_match_the_whole_logits(temperature, chunk_rows):
    g = torch.Generator().manual_seed(3)
    h = (torch.randn(3, 5, 8, generator=g, dtype=torch.float64) * 2).requires_grad_()
    w = torch.randn(29, 8, generator=g, dtype=torch.float64).requires_grad_()
    ids = torch.randint(29, (3, 5), generator=g)
    up_lp, up_h = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    lp, ent = head_logprobs(h, w, ids, temperature, need_entropy=True, chunk_rows=chunk_rows)
    got = torch.autograd.grad((lp * up_lp).sum() + (ent * up_h).sum(), [h, w])
    ref_lp, ref_ent = _whole_logits(h, w, ids, temperature)
    want = torch.autograd.grad((ref_lp * up_lp).sum() + (ref_ent * up_h).sum(), [h, w], retain_graph=True)
    torch.testing.assert_close(lp, ref_lp, rtol=0, atol=1e-12)
    torch.testing.assert_close(ent, ref_ent, rtol=0, atol=1e-12)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    lp_only, none = head_logprobs(h, w, ids, temperature, chunk_rows=chunk_rows)  # no entropy asked
    assert none is None
    g_h, = torch.autograd.grad((lp_only * up_lp).sum(), [h])
    torch.testing.assert_close(g_h, torch.autograd.grad((ref_lp * up_lp).sum(), [h])[0], rtol=0, atol=1e-12)


def test_linear_head_refuses_a_head_that_is_not_a_plain_linear_map():
    from transformers import LlamaForCausalLM

    from entrodiag.trainer.model import tiny_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(17)).eval()
    ids = torch.tensor([[3, 4, 5]])
    assert linear_head(model, ids) is model.lm_head.weight
    model.lm_head.register_forward_hook(lambda mod, args, out: out * 0.5)  # scaled logits (Granite-style)
    assert linear_head(model, ids) is None


@pytest.fixture(scope="module")
def trainer_and_batch(warm_start_val100, tmp_path_factory):
    """A tiny-model Trainer with a reference policy (KL), two micro-batches, and one rollout."""
    from entrodiag.trainer import load_config
    from entrodiag.trainer.loop import Trainer

    cfg = load_config("tiny-arith-test", val_size=100, prompts_per_step=4, group_size=4, micro_batch_size=8,
                      epochs=1, kl_coef=0.05, temperature=0.9)
    tr = Trainer(cfg, tmp_path_factory.mktemp("chunked") / "run", progress=False, handle_signals=False,
                 log=lambda *a, **k: None)
    assert tr.head is not None and tr.ref_head is not None
    prompts, roll, _, _, _, adv, _ = tr.rollout(0)
    yield tr, prompts, roll, adv
    tr.rec.close("finished")


def _update(tr, head, ref_head, state, batch, knobs, intervention):
    """Stats and parameter change of one update (SGD with lr 1: the change is minus the clipped gradient)."""
    tr.model.load_state_dict(state)
    tr.head, tr.ref_head, tr.intervention = head, ref_head, intervention
    tr.opt = torch.optim.SGD(tr.model.parameters(), lr=1.0)
    tr.sched = torch.optim.lr_scheduler.LambdaLR(tr.opt, lambda s: 1.0)
    torch.manual_seed(7)  # Clip-Cov's random picks
    stats = tr.update(*batch, knobs)
    return stats, {k: v - state[k] for k, v in tr.model.state_dict().items()}


@pytest.mark.parametrize("intervention,knobs", [
    ("none", None), ("entropy_bonus", None), ("clip_cov", None), ("kl_cov", None), ("forking_only", None),
    ("none", Knobs(coef=0.02, clip_low=0.2, clip_high=0.25, detach=0.1)),  # controller: bonus + detach
])
def test_update_equals_the_whole_logits_update(trainer_and_batch, intervention, knobs, monkeypatch):
    """Clip-Cov, KL-Cov and the detach pick tokens by covariance (top-k, a random pick in a window):
    two paths whose log-probs differ by 1e-7 can pick different tokens at a near tie, a jump in
    the loss that is no error. Their covariance is taken of log-probs rounded to 1e-4 here, so both
    paths pick the same tokens and everything else must agree within 1e-5. The sampling-time
    log-probs are moved off the current ones (the first epoch is on-policy: ratio 1 up to rounding,
    where KL-Cov's |logp − old_logp| has a kink), which also puts tokens outside the clip bounds."""
    from entrodiag.trainer import losses

    exact = losses.batch_covariance
    monkeypatch.setattr(losses, "batch_covariance",
                        lambda b: exact(dataclasses.replace(b, logp=(b.logp.detach() * 1e4).round() / 1e4)))
    tr, prompts, roll, adv = trainer_and_batch
    g = torch.Generator().manual_seed(11)
    roll = dataclasses.replace(roll, old_logp=roll.old_logp + 0.3 * torch.randn(roll.old_logp.shape, generator=g))
    head, ref_head = tr.head, tr.ref_head
    state = copy.deepcopy(tr.model.state_dict())
    try:
        new, d_new = _update(tr, head, ref_head, state, (prompts, roll, adv), knobs, intervention)
        old, d_old = _update(tr, None, None, state, (prompts, roll, adv), knobs, intervention)
    finally:
        tr.model.load_state_dict(state)
        tr.head, tr.ref_head = head, ref_head
    assert new.keys() == old.keys() and {"loss", "kl", "grad_norm"} <= new.keys()
    for k in old:
        assert new[k] == pytest.approx(old[k], rel=1e-5, abs=1e-6), k
    assert old["grad_norm"] > 0
    if "clip_low_frac" in old:  # the moved ratios reach the clip bounds
        assert old["clip_low_frac"] + old["clip_high_frac"] > 0
    for k in d_old:
        torch.testing.assert_close(d_new[k], d_old[k], rtol=0, atol=1e-5, msg=k)


# host-side helpers: on an accelerator they read the prompts' CPU copy (``Prompts.host``, checked
# below), so their int()/bool() are no device syncs; on a CPU-only test machine every tensor is a CPU one
HOST_SIDE = {"prompt_runs", "repeat_shared", "padded"}


@pytest.mark.parametrize("intervention,knobs", [
    ("none", None), ("clip_cov", None), ("kl_cov", None),
    ("none", Knobs(coef=0.0, clip_low=0.2, clip_high=0.2, detach=0.1)),  # pi_clip's covariance detach
])
def test_one_host_sync_per_update(trainer_and_batch, intervention, knobs, monkeypatch):
    """Every way a tensor's value reaches Python, counted where the trainer's own code asks for it
    (metrics' token-id range check runs only on CPU tensors, so it is no device sync). Clip-Cov,
    KL-Cov and the detach take their top-k sizes from the rollout's lengths (on the host), and
    Clip-Cov picks its random tokens without counting the candidates (no ``nonzero``)."""
    tr, prompts, roll, adv = trainer_and_batch
    calls = []

    def counting(original, name):
        def wrapper(*a, **k):
            frame = inspect.currentframe().f_back
            if frame.f_code.co_filename.startswith(TRAINER_DIR) and frame.f_code.co_name not in HOST_SIDE:
                calls.append(f"{name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
            return original(*a, **k)
        return wrapper

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name), name))
    monkeypatch.setattr(torch, "nonzero", counting(torch.nonzero, "nonzero"))  # a data-dependent shape: a sync
    monkeypatch.setattr(tr, "intervention", intervention)
    state = copy.deepcopy(tr.model.state_dict())
    opt_state = copy.deepcopy(tr.opt.state_dict())
    try:
        assert roll.response.shape[0] > tr.cfg.micro_batch_size  # more than one micro-batch
        stats = tr.update(prompts, roll, adv, knobs)
    finally:
        tr.model.load_state_dict(state)
        tr.opt.load_state_dict(opt_state)
    assert len(calls) == 1, calls
    if intervention != "none" or knobs is not None:  # the selection ran and picked tokens
        assert stats.get("selected_frac", stats.get("detach_frac")) > 0


def test_the_group_layout_and_padding_are_read_from_the_cpu_copy():
    from entrodiag.trainer.rollout import Prompts, prompt_runs

    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9]])
    mask = torch.tensor([[False, True, True], [False, True, True], [True, True, True]])
    host = Prompts(ids, mask)
    # stand-ins for the accelerator's tensors that disagree with the CPU copy: the copy must win
    prompts = Prompts(torch.zeros_like(ids), torch.ones_like(mask), host)
    first, counts = prompt_runs(prompts)
    assert first.tolist() == [0, 2] and counts.tolist() == [2, 1]
    assert prompts.padded and not prompts.take(slice(2, 3)).padded
    assert prompts.take(first).host.ids.tolist() == [[0, 5, 6], [7, 8, 9]]


def test_response_entropy_under_bf16_autocast_matches_the_whole_logits():
    """Under CPU bf16 autocast the chunked entropy runs the head in autocast's dtype, as the update
    (``head_logprobs``) and the model's own head do: it agrees with the whole-logits entropy within
    bf16's precision, and exactly with its own hidden states and head cast to bf16 by hand."""
    from transformers import LlamaForCausalLM

    from entrodiag.metrics import entropy_and_logprobs_from_hidden
    from entrodiag.trainer.forward import response_entropy, response_hidden
    from entrodiag.trainer.model import tiny_config
    from entrodiag.trainer.rollout import Prompts

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(31)).eval()
    prompts = Prompts(torch.randint(1, 31, (2, 4)), torch.ones(2, 4, dtype=torch.long))
    response = torch.randint(1, 31, (2, 5))
    mask = torch.ones_like(response)
    head = linear_head(model, prompts.ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chunked = response_entropy(model, prompts, response, mask, 0.8, head=head)
        whole = response_entropy(model, prompts, response, mask, 0.8)
        hidden = response_hidden(model, prompts, response, mask)
    by_hand = entropy_and_logprobs_from_hidden(hidden.to(torch.bfloat16), head.to(torch.bfloat16), response,
                                               temperature=0.8)[0]
    assert chunked.dtype == torch.float32 and chunked.shape == response.shape
    torch.testing.assert_close(chunked, by_hand, rtol=0, atol=1e-6)
    torch.testing.assert_close(chunked, whole, rtol=0.05, atol=0.05)
