"""Verdicts that check their premises, on public runs of the corpus's tuning half (issue 23).

The logs are read in place from ``$ENTRODIAG_WILD_LOGS`` or ``../shared/wild-logs`` beside the
checkout (one folder per run, named as in ``tests/data/wild/manifest.json``); each test skips, with
the reason, when its run is not there. Only runs of the tuning half appear here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entrodiag.analysis import analyze_run
from entrodiag.analysis.metric import is_mean_score
from entrodiag.importers import import_run


def _root() -> Path | None:
    env = os.environ.get("ENTRODIAG_WILD_LOGS")
    for p in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[1] / ".." / "shared" / "wild-logs"]:
        if p.is_dir():
            return p.resolve()
    return None


def _summary(name: str, tmp_path: Path) -> dict:
    root = _root()
    folder = root / name if root else None
    if folder is None or not folder.is_dir():
        pytest.skip(f"the public log {name} is not here: set ENTRODIAG_WILD_LOGS or put the corpus in "
                    "../shared/wild-logs beside the repository")
    src = next(p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))
    import_run(src, tmp_path / "run")
    return analyze_run(tmp_path / "run")


def test_verl_kl_in_reward_run_reads_the_task_score_and_gives_no_law_numbers(tmp_path):
    """verl GRPO with use_kl_in_reward on Qwen3-4B: critic/rewards/mean (score − β·KL) and the task
    score critic/score/mean part ways while the responses collapse; the score falls as entropy falls."""
    s = _summary("verl-grpo-qwen3-4b-retool-kl-reward-length-collapse", tmp_path)
    assert s["reward"]["column"] == "score_mean" and s["reward"]["kl_in_reward"] is True
    assert "critic/rewards/mean" in s["reward"]["reason"]
    assert is_mean_score(s["metric"]["name"]), s["metric"]  # never best@30/maj@30
    law = s["law"]
    assert law["status"] == "ok" and law["verdict"]["status"] != "fits", law.get("verdict")
    assert law["ceiling"] is None and law["gain_frac"] is None
    assert s["early_prediction"]["status"] == "empty"
    assert "ceiling_exhausted" not in {f["kind"] for f in s["flags"]["items"]}


def test_verl_ppo_healthy_run_takes_a_mean_at_n_accuracy_as_r(tmp_path):
    s = _summary("verl-ppo-qwen3-0.6b-gsm8k-healthy", tmp_path)
    assert s["metric"]["name"] == "val/openai/gsm8k/acc/mean@1"
    assert s["law"]["verdict"]["status"] == "fits" and s["law"]["ceiling"] is not None
    assert s["reward"]["column"] == "reward_mean" and not s["reward"]["kl_in_reward"]
