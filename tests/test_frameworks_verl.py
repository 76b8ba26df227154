"""The README's verl attachment against the real verl, on a CPU: verl 0.9.1 (engine workers:
TrainingWorker + FSDP2 engine + ppo_loss) and verl 0.7.1 (DataParallelPPOActor).

Each version lives in a virtual environment that the test builds once and caches
(tests/frameworks/envs.py; minutes the first time). A driver (tests/frameworks/drive_verl_*.py)
runs 3 GRPO steps on a tiny random Llama through RayPPOTrainer's own _compute_old_log_prob and
_update_actor, with the README block exec'd as verl would import it, writes verl's own entropy,
log-probs and advantages per step and the metrics verl logs (its file logger's JSONL), and closes
the run as a Ray driver would (finish_run). The run must hold those numbers, token for token.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import readme_snippet
from entrodiag import load_run
from entrodiag.importers import import_run
from entrodiag.importers.columns import classify
from frameworks.harness import drive

DRIVERS = {"verl-0.9.1": "drive_verl_engine.py", "verl-0.7.1": "drive_verl_dp_actor.py"}


@pytest.fixture(scope="module", params=list(DRIVERS))
def verl_run(request, tmp_path_factory):
    framework = request.param
    return framework, drive(framework, DRIVERS[framework], readme_snippet("verl"), tmp_path_factory.mktemp(framework))


def test_verl_records_its_own_entropy_token_for_token(verl_run):
    framework, result = verl_run
    run = load_run(result["run_dir"])
    assert run.status == "finished" and run.meta["source"] == "verl"
    assert run.meta["entropy_temperature"] == 1.0
    assert run.steps["step"].to_list() == [1, 2, 3]  # RayPPOTrainer's global_steps
    for own in result["own"]:
        row = run.steps.filter(step=own["step"]).row(0, named=True)
        assert row["n_tokens"] == len(own["entropy"]) == 32 and row["n_responses"] == 8
        assert row["entropy_mean"] == pytest.approx(own["actor/entropy"], abs=1e-6)  # verl's actor/entropy
        tokens = run.tokens.filter(step=own["step"]).sort("sample_id", "pos")  # the mask's row-major order
        for column, key in (("entropy", "entropy"), ("logprob", "logprob"), ("advantage", "advantage")):
            np.testing.assert_allclose(tokens[column].to_numpy(), own[key], atol=1e-6, err_msg=f"{framework} {column}")
        assert row["reward_mean"] == pytest.approx(own["reward_mean"], abs=1e-9)  # critic/rewards/mean
        assert row["n_groups"] == own["n_groups"] == 4  # the uids
        assert tokens["group_id"].n_unique() == 4


def test_verl_log_imports(verl_run, tmp_path):
    """``entrodiag import`` of the JSONL verl's FileLogger wrote in the driver: verl's names map."""
    framework, result = verl_run
    log = result["out"] / "verl.jsonl"
    import_run(log, tmp_path / "imported")
    run = load_run(tmp_path / "imported")
    for own in result["own"]:
        row = run.steps.filter(step=own["step"]).row(0, named=True)
        assert row["entropy_mean"] == pytest.approx(own["actor/entropy"], abs=1e-9)
        assert row["reward_mean"] == pytest.approx(own["reward_mean"], abs=1e-9)
        assert row["resp_len_mean"] == pytest.approx(4.0)
        assert row["clip_frac"] is not None and row["loss"] is not None and row["ppo_kl"] is not None
    assert "val/gsm8k/acc/mean@2" in run.evals["name"].to_list()
    for name, target in {"actor/entropy": "entropy_mean", "actor/pg_clipfrac": "clip_frac", "actor/pg_loss": "loss",
                         "actor/grad_norm": "grad_norm", "actor/lr": "lr", "critic/rewards/mean": "reward_mean",
                         "response_length/mean": "resp_len_mean", "response_length/clip_ratio": "resp_clipped_frac",
                         "val-core/gsm8k/acc/mean@2": "val/gsm8k/acc/mean@2"}.items():
        assert classify(name).name == target, name
