"""The mutual-information proxy (RAGEN-2's template collapse): the public function and the built-in
trainer's shared-prompt path against a naive loop, the ``template_collapse`` flag on a run whose
answers stop depending on their prompts (and not on one whose answers keep depending on them), and
the share of zero-variance reward groups (TRL's ``frac_reward_zero_std``) against a hand count."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from entrodiag import Recorder, detect_collapse, load_run
from entrodiag.hooks.mutual_info import mi_from_logprobs, mi_proxy, other_prompts
from entrodiag.metrics import group_advantages

RAW = [[5, 6, 7], [8, 9, 10, 11, 12], [13, 14, 15, 16], [17, 5]]  # distinct prompts of unequal length
G, K = 2, 2


@pytest.fixture(scope="module")
def batch():
    """A random tiny Llama (the trainer's tiny architecture), left-padded prompts in groups of G and
    responses of unequal length (masked after their end)."""
    from transformers import LlamaForCausalLM

    from entrodiag.trainer.model import tiny_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(20)).eval()
    rows = [r for r in RAW for _ in range(G)]
    P = max(map(len, rows))
    ids = torch.zeros(len(rows), P, dtype=torch.long)
    pm = torch.zeros(len(rows), P, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, P - len(r):], pm[i, P - len(r):] = torch.tensor(r), True
    resp = torch.randint(4, 20, (len(rows), 4))
    rm = torch.ones_like(resp, dtype=torch.bool)
    rm[0, 2:], rm[3, 3:], rm[6, 1:] = False, False, False
    return model, ids, pm, resp.masked_fill(~rm, 0), rm


def naive_mi(model, resp, rm, k):
    """mi_i from one forward per (prompt, response) pair, no padding, log-softmax in fp64."""
    def seq(prompt, y):
        lp = torch.log_softmax(model(input_ids=torch.tensor([prompt + y])).logits[0].double(), -1)
        return sum(float(lp[len(prompt) - 1 + t, tok]) for t, tok in enumerate(y))

    out = []
    for i in range(resp.shape[0]):
        g, y = i // G, resp[i][rm[i]].tolist()
        ll = torch.tensor([seq(RAW[(g + s) % len(RAW)], y) for s in range(k + 1)], dtype=torch.float64)
        out.append(float(ll[0] - torch.logsumexp(ll, 0) + math.log(k + 1)))
    return torch.tensor(out, dtype=torch.float64)


@torch.no_grad()
def test_mi_proxy_equals_a_naive_loop_and_so_does_the_trainers_shared_prompt_path(batch):
    from entrodiag.trainer.chunked_head import linear_head
    from entrodiag.trainer.mutual_info import batch_mi
    from entrodiag.trainer.rollout import Prompts

    model, ids, pm, resp, rm = batch
    expected = naive_mi(model, resp, rm, K)
    assert expected.abs().max() > 0.05  # the random model's answers do depend on the prompt
    got = mi_proxy(model, ids, resp, prompt_mask=pm, response_mask=rm, k=K, batch_size=5)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    roll = SimpleNamespace(response=resp, mask=rm)
    for head, chunk in ((linear_head(model, ids[:1]), 0), (None, 7)):  # hidden states + head; whole logits, chunked
        torch.testing.assert_close(batch_mi(model, Prompts(ids, pm), roll, K, head=head, chunk=chunk), expected,
                                   atol=2e-5, rtol=0)


def test_the_pure_parts_against_hand_values():
    # own prompt far likelier: log(k+1); equally likely: 0; another prompt likelier: negative
    lp = torch.tensor([[0.0, -1e4, -1e4], [-2.0, -2.0, -2.0], [-3.0, -1.0, -3.0]])
    expected = [math.log(3), 0.0, -3.0 - math.log((2 * math.exp(-3) + math.exp(-1)) / 3)]
    assert mi_from_logprobs(lp).tolist() == pytest.approx(expected, abs=1e-12)
    # prompts 0,0,1,1,2 (ids 7 7 8 8 9): own prompt's first row, then the next distinct prompts cyclically
    ids = torch.tensor([[7], [7], [8], [8], [9]])
    assert other_prompts(ids, k=5).tolist() == [[0, 2, 4], [0, 2, 4], [2, 4, 0], [2, 4, 0], [4, 0, 2]]
    # padding counts as no token: [0, 7] left-padded is the prompt [7]
    padded = other_prompts(torch.tensor([[0, 7], [7, 7], [5, 7]]), torch.tensor([[0, 1], [1, 1], [1, 1]]), k=1)
    assert padded.tolist() == [[0, 1], [1, 2], [2, 0]]
    with pytest.raises(ValueError, match="two distinct prompts"):
        other_prompts(torch.tensor([[7], [7]]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        other_prompts(ids, k=0)
    with pytest.raises(ValueError, match="one prompt row per response"):
        mi_proxy(None, ids, torch.ones(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="response_mask has shape"):
        mi_proxy(None, ids, torch.ones(5, 2, dtype=torch.long), response_mask=torch.ones(5, 3, dtype=torch.bool))


class KeyPolicy(torch.nn.Module):
    """A test policy: every next token is drawn from one distribution peaked (``beta``) on the
    prompt's first token; with ``ignore`` set, on token 5 whatever the prompt, so the answers stop
    depending on their prompt while the entropy stays exactly the same."""

    def __init__(self, vocab: int = 24, beta: float = 3.0) -> None:
        super().__init__()
        self.vocab, self.beta, self.ignore = vocab, beta, False

    def forward(self, input_ids, attention_mask=None, position_ids=None, **_):
        key = torch.full_like(input_ids[:, :1], 5) if self.ignore else input_ids[:, :1]
        logits = torch.zeros(*input_ids.shape, self.vocab)
        return SimpleNamespace(logits=logits.scatter(2, key[..., None].expand(-1, input_ids.shape[1], 1), self.beta))


def record_key_run(path, switch: int | None, steps: int = 24, n_prompts: int = 8, group: int = 4, T: int = 4):
    """A run recorded through the Recorder: KeyPolicy's sampled answers, rewarded when they start
    with the prompt's token, the MI proxy (``mi_proxy``) of every step; from step ``switch`` on
    the policy ignores its prompts."""
    policy, gen = KeyPolicy(), torch.Generator().manual_seed(0)
    prompts = torch.arange(6, 6 + n_prompts).repeat_interleave(group)[:, None]  # one-token prompts, groups
    groups = torch.arange(n_prompts).repeat_interleave(group)
    with Recorder(path, flush_interval_s=60, heartbeat_s=60, token_sample=0) as rec:
        for step in range(steps):
            policy.ignore = switch is not None and step >= switch
            logp = torch.log_softmax(policy(prompts).logits[:, -1], -1)
            resp = torch.multinomial(logp.exp(), T, replacement=True, generator=gen)
            rewards = (resp[:, 0] == prompts[:, 0]).float()
            entropy = -(logp.exp() * logp).sum(-1, keepdim=True).expand(-1, T)
            mi = mi_proxy(policy, prompts, resp, k=3)
            rec.record_batch(step, token_ids=resp, response_mask=torch.ones_like(resp, dtype=torch.bool),
                             advantages=group_advantages(rewards, groups), entropy=entropy,
                             logprobs=logp.gather(1, resp), rewards=rewards, group_ids=groups,
                             mi_proxy=float(mi.mean()))
    return load_run(path)


def test_template_collapse_fires_when_answers_ignore_their_prompts_and_not_otherwise(tmp_path):
    collapsed = record_key_run(tmp_path / "template", switch=12)
    mi = collapsed.steps.sort("step")["mi_proxy"].to_numpy()
    assert mi[:12].min() > 0.3 and np.abs(mi[12:]).max() < 1e-9  # prompt-free answers: exactly no information
    h = collapsed.steps["entropy_mean"].to_numpy()
    assert h.max() - h.min() < 1e-5  # entropy does not move at all
    flags = {f.kind: f for f in detect_collapse(collapsed)}
    assert "template_collapse" in flags, sorted(flags)
    flag = flags["template_collapse"]
    assert flag.severity == "critical" and flag.first_step == 12 and flag.last_step == 23
    assert flag.evidence["mi_fall"] == pytest.approx(1.0) and flag.evidence["entropy_ratio"] == pytest.approx(1.0)
    assert "SNR-aware filtering" in flag.advice and "entropy held" in flag.message
    assert not {"early_collapse", "entropy_decline", "entropy_floor", "entropy_explosion"} & set(flags)

    healthy = record_key_run(tmp_path / "healthy", switch=None)
    assert "template_collapse" not in {f.kind for f in detect_collapse(healthy)}


def test_zero_variance_group_share_equals_a_hand_count(tmp_path):
    from entrodiag.metric_names import STEP_ALIASES

    # five groups, interleaved ids, unequal sizes; all-equal by hand: 3 (one answer), 9 (equal
    # within 1e-8) and 4 (0, 0, 0); 7 (1, 0, 1) and 2 (0.2, 0.25) vary
    groups = torch.tensor([3, 7, 7, 9, 9, 7, 4, 4, 4, 2, 2])
    rewards = torch.tensor([0.5, 1.0, 0.0, 0.3, 0.3 + 1e-9, 1.0, 0.0, 0.0, 0.0, 0.2, 0.25], dtype=torch.float64)
    hand = 3 / 5
    with Recorder(tmp_path / "r", flush_interval_s=60, heartbeat_s=60, token_sample=0) as rec:
        rec.record_batch(0, token_ids=torch.ones(11, 2, dtype=torch.long), response_mask=torch.ones(11, 2, dtype=torch.bool),
                         advantages=torch.zeros(11), entropy=torch.full((11, 2), 0.5), rewards=rewards,
                         group_ids=groups)
    row = load_run(tmp_path / "r").steps.row(0, named=True)
    assert row["zero_adv_group_frac"] == pytest.approx(hand) and row["n_groups"] == 5
    assert STEP_ALIASES["frac_reward_zero_std"] == "zero_adv_group_frac"  # TRL's name is imported onto it


def test_the_builtin_trainer_records_the_mi_proxy_every_mi_every_steps(tiny_run):
    from entrodiag.trainer import load_config

    cfg = load_config("tiny-arith-test")
    steps = load_run(tiny_run[0]).steps.sort("step").select("step", "mi_proxy").drop_nulls()
    assert steps["step"].to_list() == [*range(0, cfg.steps, cfg.mi_every), cfg.steps - 1]
    mi = steps["mi_proxy"].to_numpy()
    assert np.isfinite(mi).all() and (mi <= math.log(cfg.mi_k + 1) + 1e-6).all()
    assert mi.mean() > 0.1  # the warm-started policy answers each sum differently
    with pytest.raises(ValueError, match="mi_every must be >= 0"):
        load_config("tiny-arith-test", mi_every=-1)
    with pytest.raises(ValueError, match="mi_k >= 1"):
        load_config("tiny-arith-test", mi_k=0)


def test_mi_k_beyond_the_prompts_of_a_step_is_refused_in_one_line():
    """A step draws prompts_per_step prompts: at most prompts_per_step − 1 others to score under."""
    from entrodiag.trainer import load_config

    assert load_config("tiny-arith-test", prompts_per_step=4, mi_k=3).mi_k == 3
    with pytest.raises(ValueError, match=r"mi_k 4 is more than .* \(prompts_per_step 4 - 1\): lower mi_k") as e:
        load_config("tiny-arith-test", prompts_per_step=4, mi_k=4)
    assert "\n" not in str(e.value)
    assert load_config("tiny-arith-test", prompts_per_step=4, mi_k=4, mi_every=0).mi_every == 0  # off: not checked
