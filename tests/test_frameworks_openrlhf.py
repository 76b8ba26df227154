"""The README's OpenRLHF attachment against the real OpenRLHF 0.11.2, on a CPU.

OpenRLHF lives in a virtual environment that the test builds once and caches, shared with verl
0.7.1 (tests/frameworks/envs.py). The driver (tests/frameworks/drive_openrlhf.py) runs 3 GRPO
steps of the real Actor, PolicyLoss, NaiveReplayBuffer and ActorPPOTrainer.ppo_train (2 epochs, 2
micro-batches, one optimizer step per epoch) on a tiny random Llama, with the README block exec'd
where train_ppo_ray.py would import it, logs each step with OpenRLHF's TensorboardLogger, and
closes the run as the Ray driver would (finish_run). The actor's own entropy and log-probs of each
response, before the update, must be in the run token for token.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import readme_snippet
from entrodiag import load_run
from entrodiag.importers import import_run
from entrodiag.importers.columns import classify
from frameworks.harness import drive


@pytest.fixture(scope="module")
def openrlhf_run(tmp_path_factory):
    return drive("openrlhf-0.11.2", "drive_openrlhf.py", readme_snippet("openrlhf"), tmp_path_factory.mktemp("openrlhf"))


def test_openrlhf_records_its_own_entropy_token_for_token(openrlhf_run):
    run = load_run(openrlhf_run["run_dir"])
    assert run.status == "finished" and run.meta["source"] == "openrlhf"
    assert run.steps["step"].to_list() == [1, 2, 3]  # PPOTrainer logs its first step as global_step 1
    for own in openrlhf_run["own"]:
        mask = np.array(own["mask"], dtype=bool)
        row = run.steps.filter(step=own["step"]).row(0, named=True)
        assert row["n_tokens"] == mask.sum() == 32 and row["n_responses"] == 8  # one epoch of two
        entropy = np.array(own["entropy"])
        assert row["entropy_mean"] == pytest.approx(entropy[mask].mean(), abs=1e-6)
        assert row["reward_mean"] == pytest.approx(own["reward_mean"], abs=1e-9)
        assert row["n_groups"] == 4  # Experience.prompts: 2 samples per prompt
        # the replay buffer shuffles: match each recorded response to the driver's by its tokens
        by_ids = {tuple(np.array(ids)[m].tolist()): b for b, (ids, m) in enumerate(zip(own["ids"], mask))}
        tokens = run.tokens.filter(step=own["step"])
        assert tokens.height == 32 and tokens["group_id"].n_unique() == 4
        assert run.samples.filter(step=own["step"])["prompt"].n_unique() == 4
        for (sample_id,), rows in tokens.sort("pos").group_by(["sample_id"]):
            b = by_ids[tuple(rows["token_id"].to_list())]
            for column, key in (("entropy", "entropy"), ("logprob", "logprob"), ("advantage", "advantage")):
                np.testing.assert_allclose(rows[column].to_numpy(), np.array(own[key][b])[mask[b]], atol=1e-6,
                                           err_msg=f"{column} of response {b}")


def test_openrlhf_log_imports(openrlhf_run, tmp_path):
    """``entrodiag import`` of the TensorBoard events OpenRLHF's TensorboardLogger wrote."""
    import_run(openrlhf_run["out"] / "tb", tmp_path / "imported")
    run = load_run(tmp_path / "imported")
    assert run.steps["step"].to_list() == [1, 2, 3]
    for own in openrlhf_run["own"]:
        row = run.steps.filter(step=own["step"]).row(0, named=True)
        assert row["entropy_mean"] == pytest.approx(own["entropy_loss"], rel=1e-6)  # train/entropy_loss
        assert row["reward_mean"] == pytest.approx(own["reward_mean"], abs=1e-6)
        assert row["loss"] is not None and row["clip_frac"] is not None and row["lr"] is not None
    for name, target in {"train/entropy_loss": "entropy_mean", "train/policy_loss": "loss", "train/reward": "reward_mean",
                         "train/ppo_clip_ratio": "clip_frac", "train/actor_lr": "lr", "train/response_length": "resp_len_mean",
                         "train/rollout/reward_std": "reward_std", "eval/eval_math_pass1": "val/math_pass1"}.items():
        assert classify(name).name == target, name
