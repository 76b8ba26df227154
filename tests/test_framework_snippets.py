"""The verl and OpenRLHF attachments in training_hooks/README.md, run against stand-ins.

Neither framework installs here (GPUs, Ray), so each README block is executed as written against
small stand-in modules whose classes have the methods it wraps, called the way verl @ b178a3cd
and OpenRLHF @ 3c3be62 call them (several micro-batches, two PPO epochs over the same batch, a
log-prob pass without advantages). The run it writes must hold the first pass over each step's
batch, with the entropy the stand-in actor computed.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

from conftest import readme_snippet
from entrodiag import load_run

V, STEPS = 7, 3


def _install(monkeypatch, modules: dict[str, dict]) -> None:
    for name, attrs in modules.items():
        mod = types.ModuleType(name)
        for k, v in attrs.items():
            setattr(mod, k, v)
        monkeypatch.setitem(sys.modules, name, mod)


def _entropy_logp(logits: torch.Tensor, ids: torch.Tensor):
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1), logp.gather(-1, ids[..., None]).squeeze(-1)


def _logits(ids: torch.Tensor) -> torch.Tensor:
    """A fixed 'model': logits depend on the token and its position, deterministically."""
    pos = torch.arange(ids.shape[1])[None, :, None]
    return torch.sin(ids[..., None] * 0.7 + pos * 0.3 + torch.arange(V) * 1.1) * 2.0


# ------------------------------------------------------------------------------------------- verl


class _DataProto:
    def __init__(self, batch: dict):
        self.batch = batch

    def __len__(self):
        return next(iter(self.batch.values())).shape[0]

    def split(self, size: int):
        n = len(self)
        return [_DataProto({k: v[i:i + size] for k, v in self.batch.items()}) for i in range(0, n, size)]


class _VerlActor:
    """verl's DataParallelPPOActor, reduced to the calls the attachment relies on."""

    def _forward_micro_batch(self, micro_batch, temperature, calculate_entropy=False):
        ids = micro_batch["responses"]
        entropy, logp = _entropy_logp(_logits(ids) / temperature, ids)
        out = {"log_probs": logp}
        if calculate_entropy:
            out["entropys"] = entropy
        return out

    def compute_log_prob(self, data):
        return [self._forward_micro_batch(dict(m.batch), temperature=1.0)["log_probs"] for m in data.split(4)]

    def update_policy(self, data):
        for _ in range(2):  # ppo_epochs
            for mini in data.split(8):
                for micro in mini.split(4):
                    model_inputs = {**micro.batch, "pad_token_id": 0}
                    self._forward_micro_batch(model_inputs, temperature=1.0, calculate_entropy=False)
        return {"actor/pg_loss": 0.0}


def _verl_batch(step: int, n: int = 16, t: int = 5):
    g = torch.Generator().manual_seed(step)
    responses = torch.randint(0, V, (n, t), generator=g)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None] < lengths[:, None]).long()
    adv = torch.randn(n, generator=g)[:, None] * mask
    return _DataProto({"responses": responses, "response_mask": mask, "advantages": adv,
                       "old_log_probs": torch.zeros(n, t)})


def test_verl_attachment(monkeypatch, tmp_path):
    _install(monkeypatch, {"verl": {}, "verl.workers": {}, "verl.workers.actor": {},
                           "verl.workers.actor.dp_actor": {"DataParallelPPOActor": _VerlActor}})
    monkeypatch.setenv("ENTRODIAG_RUN_DIR", str(tmp_path / "run"))
    original = (_VerlActor._forward_micro_batch, _VerlActor.update_policy)
    ns: dict = {}
    try:
        exec(compile(readme_snippet("verl"), "README:verl", "exec"), ns)
        actor = _VerlActor()
        for step in range(1, STEPS + 1):
            data = _verl_batch(step)
            actor.compute_log_prob(data)
            actor.update_policy(data)
        ns["_state"]["rec"].close()
    finally:
        _VerlActor._forward_micro_batch, _VerlActor.update_policy = original
    run = load_run(tmp_path / "run")
    assert run.status == "finished" and run.meta["source"] == "verl"
    steps = run.steps
    assert steps["step"].to_list() == [1, 2, 3]  # verl's global steps
    for row in steps.iter_rows(named=True):
        b = _verl_batch(row["step"]).batch
        h, _ = _entropy_logp(_logits(b["responses"]), b["responses"])
        mask = b["response_mask"].bool()
        assert row["n_responses"] == 16 and row["n_tokens"] == int(mask.sum())  # one pass, not two epochs
        assert row["entropy_mean"] == pytest.approx(h[mask].mean().item(), abs=1e-6)


# --------------------------------------------------------------------------------------- OpenRLHF


class _Actor:
    """openrlhf.models.actor.Actor.forward's contract: (action_log_probs, output) with
    output.entropy [B, S-1] when return_entropy and return_output."""

    def forward(self, sequences, action_mask=None, attention_mask=None, return_output=False,
                ring_attn_group=None, packed_seq_lens=None, return_entropy=False):
        logits = _logits(sequences)
        entropy, logp = _entropy_logp(logits[:, :-1], sequences[:, 1:])
        output = types.SimpleNamespace(logits=logits)
        if return_entropy:
            output.entropy = entropy
        action_log_probs = logp[:, -action_mask.shape[1]:]
        return (action_log_probs, output) if return_output else action_log_probs

    __call__ = forward


class _Trainer:
    """openrlhf.trainer.ray.ppo_actor.ActorPPOTrainer, reduced: ppo_train loops epochs and
    micro-batches; training_step runs the actor with return_entropy (entropy_coef is not None)."""

    def __init__(self, experiences):
        self.actor, self.experiences = _Actor(), experiences

    def ppo_train(self, kl_ctl: float):
        for _ in range(2):  # max_epochs
            for step, experience in enumerate(self.experiences):
                self.training_step(experience, kl_ctl, step, None)
        return {"policy_loss": 0.0}

    def training_step(self, experience, kl_ctl, step, loss_batch_info=None):
        self.actor(experience.sequences, experience.action_mask, attention_mask=None, return_output=True,
                   ring_attn_group=None, packed_seq_lens=None, return_entropy=True)
        return {"policy_loss": 0.0}


def _experiences(step: int):
    g = torch.Generator().manual_seed(100 + step)
    out = []
    for width in (4, 6):  # micro-batches padded to different action widths
        seq = torch.randint(0, V, (3, 3 + width), generator=g)
        lengths = torch.randint(1, width + 1, (3,), generator=g)
        mask = torch.arange(width)[None] < lengths[:, None]
        out.append(types.SimpleNamespace(sequences=seq, action_mask=mask,
                                         advantages=torch.randn(3, 1, generator=g) * mask))
    return out


def test_openrlhf_attachment(monkeypatch, tmp_path):
    _install(monkeypatch, {"openrlhf": {}, "openrlhf.models": {}, "openrlhf.models.actor": {"Actor": _Actor},
                           "openrlhf.trainer": {}, "openrlhf.trainer.ray": {},
                           "openrlhf.trainer.ray.ppo_actor": {"ActorPPOTrainer": _Trainer}})
    monkeypatch.setenv("ENTRODIAG_RUN_DIR", str(tmp_path / "run"))
    original = (_Actor.forward, _Trainer.training_step, _Trainer.ppo_train)
    ns: dict = {}
    try:
        exec(compile(readme_snippet("openrlhf"), "README:openrlhf", "exec"), ns)
        _Actor.__call__ = _Actor.forward  # the patched forward, as nn.Module.__call__ would find it
        for step in range(STEPS):
            _Trainer(_experiences(step)).ppo_train(0.0)
        ns["_state"]["rec"].close()
    finally:
        _Actor.forward, _Trainer.training_step, _Trainer.ppo_train = original
        _Actor.__call__ = _Actor.forward
    run = load_run(tmp_path / "run")
    assert run.status == "finished" and run.meta["source"] == "openrlhf"
    steps = run.steps
    assert steps["step"].to_list() == list(range(STEPS))
    for row in steps.iter_rows(named=True):
        hs, n = [], 0
        for e in _experiences(row["step"]):
            h, _ = _entropy_logp(_logits(e.sequences)[:, :-1], e.sequences[:, 1:])
            hs.append(h[:, -e.action_mask.shape[1]:][e.action_mask])
            n += int(e.action_mask.sum())
        assert row["n_responses"] == 6 and row["n_tokens"] == n  # one epoch, both widths
        assert row["entropy_mean"] == pytest.approx(torch.cat(hs).mean().item(), abs=1e-6)
