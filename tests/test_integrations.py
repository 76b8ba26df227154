"""The framework attachments' shared parts, without the frameworks: the per-process recorder
(step numbering, resume, errors that never raise), group ids, and verl's check that the entropy it
kept belongs to the update it records."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from entrodiag import load_run
from entrodiag.hooks.integrations.common import StepRecorder, group_ids
from entrodiag.hooks.integrations.verl import _record


def test_step_numbering_continues_a_resumed_run_and_errors_do_not_raise(tmp_path, monkeypatch):
    rec = StepRecorder(tmp_path / "run", "openrlhf")
    batch = dict(token_ids=np.zeros((2, 3), dtype=np.int64), response_mask=None)  # not tensors: a failure
    assert rec.record(**batch) is None and rec.errors == 1  # logged, not raised
    ok = dict(token_ids=torch.zeros(2, 3, dtype=torch.long), response_mask=torch.ones(2, 3, dtype=torch.bool),
              entropy=torch.ones(2, 3), advantages=torch.zeros(2))
    assert [rec.record(**ok), rec.record(**ok)] == [1, 2]
    rec.close()
    again = StepRecorder(tmp_path / "run", "openrlhf")  # a restarted worker
    assert again.record(**ok) == 3
    again.close()
    assert load_run(tmp_path / "run").steps["step"].to_list() == [1, 2, 3]
    monkeypatch.delenv("ENTRODIAG_RUN_DIR", raising=False)
    with pytest.raises(ValueError, match="ENTRODIAG_RUN_DIR"):
        StepRecorder(None, "verl")


def test_group_ids_are_stable_per_uid():
    ids = group_ids(np.array(["a", "b", "a"], dtype=object))
    assert ids.tolist()[0] == ids.tolist()[2] != ids.tolist()[1]
    assert group_ids(["a"]).tolist() == ids.tolist()[:1] and group_ids(None) is None


def _update_batch(logprobs):
    return {"responses": torch.tensor([[5, 6, 7], [8, 9, 0]]), "response_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
            "advantages": torch.tensor([[1.0] * 3, [-1.0] * 3]), "old_log_probs": logprobs,
            "token_level_rewards": torch.tensor([[0, 0, 1.0], [0, 0, 0]]), "uid": np.array(["a", "b"], dtype=object)}


def test_verl_records_only_the_entropy_of_the_same_batch(tmp_path, caplog):
    rec = StepRecorder(tmp_path / "run", "verl")
    lp = -torch.rand(2, 3)
    entropy = torch.rand(2, 3)
    with caplog.at_level(logging.WARNING, logger="entrodiag"):
        _record(rec, None, _update_batch(lp))  # bypass mode: no old-log-prob pass
        _record(rec, {"logprobs": lp + 1, "entropy": entropy}, _update_batch(lp))  # another batch's pass
    assert rec.rec is None  # nothing recorded
    assert "bypass" in caplog.text and "not those of the last" in caplog.text
    _record(rec, {"logprobs": lp, "entropy": entropy}, _update_batch(lp.clone()))
    rec.close()
    run = load_run(tmp_path / "run")
    row = run.steps.row(0, named=True)
    assert row["step"] == 1 and row["n_tokens"] == 5 and row["n_groups"] == 2
    assert row["entropy_mean"] == pytest.approx(entropy[torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()].mean().item())
    assert row["reward_mean"] == pytest.approx(0.5)
