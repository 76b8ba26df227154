"""Checkpoint probes: entropy, accuracy and semantic entropy without training logs."""

import math

import numpy as np
import polars as pl
import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.probe import answer_key, checkpoint_steps, semantic_entropy
from entrodiag.trainer.checkpoint import list_checkpoints


def test_semantic_entropy_clusters_answers_by_their_final_value():
    # {12: 2 ("12", "12.0"), 7: 1, no answer: 1} -> probabilities 1/2, 1/4, 1/4
    h = semantic_entropy(["so it is 12", "\\boxed{12.0}", "7", "I don't know"])
    assert h == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    assert semantic_entropy(["1,000", "1000", "\\boxed{1000}"]) == 0.0


def test_checkpoint_names_give_the_training_step():
    assert checkpoint_steps(["r/checkpoints/step-0000019", "r/checkpoints/step-0000039"]) == [19, 39]
    assert checkpoint_steps(["a/model", "b/model"]) == [0, 1]


def test_probe_early_and_late_checkpoints_of_a_tiny_run(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    (early, late) = [str(p) for _, p in list_checkpoints(run_dir)]
    out = tmp_path / "probe"
    code = main(["probe", "--model", early, "--model", late, "--suite", "probes/arith.jsonl", "--samples", "8",
                 "--limit", "150", "--max-new-tokens", "4", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    steps = run.steps.sort("step")
    assert run.meta["source"] == "probe" and steps["step"].to_list() == [24, 49]
    assert steps["n_responses"].to_list() == [150 * 8] * 2
    assert steps["entropy_mean"][1] < steps["entropy_mean"][0], "entropy falls from the early to the late checkpoint"
    acc = run.evals.filter(pl.col("name") == "val/accuracy_sampled").sort("step")["value"]
    assert acc[1] > acc[0], "sampled accuracy rises"
    # semantic entropy = mean over prompts of the entropy of the answer clusters: recompute it
    # from the stored answers (every sample is kept)
    for step, value in zip(steps["step"], steps["semantic_entropy"]):
        samples = run.samples.filter(pl.col("step") == step)
        assert samples.height == 150 * 8
        per_prompt = []
        for (_,), g in samples.group_by("prompt_id"):
            counts = g.with_columns(pl.col("response").map_elements(answer_key, return_dtype=pl.String))[
                "response"].value_counts()["count"].to_numpy()
            p = counts / counts.sum()
            per_prompt.append(-(p * np.log(p)).sum())
        assert value == pytest.approx(np.mean(per_prompt), abs=1e-9)
        assert 0 < value <= math.log(8)
