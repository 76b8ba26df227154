"""The classes of miss found on the tune half of the wild corpus's batch 8, each on a small log
written here (the public logs are not in CI):

1. verl's per-step metrics saved as a CSV (``verl-csv``: the ``HappynessI/verl-for-AgentGym`` runs)
   flatten ``/`` to ``_`` (``actor_entropy``, ``critic_score_mean``, ``val-core_<source>_acc_mean@1``):
   the names are read as verl logs them, so the run has its entropy, task score and validation
   series, is known as verl's and gets verl's metric notes;
2. a validation logged at a single step (only a final validation, verl's ``test_freq`` = the run's
   length) is no series for the law: R is the training task score, and the reason says why; two
   evaluation steps or more are R as before, and ``metric=`` still names the single one;
3. a score that rises with the entropy (an entropy bonus, DAPO) over hundreds of noisy points has a
   low R², yet a is far below 0: the premise is refuted ("not applicable"), not "poor fit".
"""

from __future__ import annotations

import csv

import numpy as np

import pytest

from entrodiag import load_run
from entrodiag.analysis import analyze_run
from entrodiag.analysis.metric import choose_metric
from entrodiag.importers import import_run
from entrodiag.store.writer import RunWriter


# ------------------------------------------------------------ 1: verl's metrics CSV, names flattened
def _verl_csv(path, n: int = 12, val_every: int = 5):
    """A CSV laid out as verl-for-AgentGym's ``training_metrics_*.csv``; returns the rows written."""
    header = ["step", "actor_entropy", "actor_pg_loss", "actor_lr", "training_epoch", "critic_score_mean",
              "critic_rewards_mean", "response_length_mean", "val-core_textcraft_acc_mean@1",
              "val-aux_textcraft_acc_std@1", "timing_s_save_checkpoint"]
    rows = []
    for s in range(1, n + 1):
        val = s % val_every == 0
        rows.append([s, 0.5 - 0.03 * s, 0.01 * s, 1e-6, s // 4, 0.1 + 0.05 * s, 0.1 + 0.05 * s, 300 - s,
                     0.2 + 0.04 * s if val else "", 0.1 if val else "", 3.5 if s == n else ""])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return rows


def test_verl_metrics_csv_with_flattened_names_reads_as_verl(tmp_path):
    rows = _verl_csv(tmp_path / "training_metrics_grpo.csv")
    report = import_run(tmp_path / "training_metrics_grpo.csv", tmp_path / "run")
    run = load_run(tmp_path / "run")
    steps = run.steps.sort("step")
    assert steps["entropy_mean"].to_list() == pytest.approx([r[1] for r in rows])
    assert steps["score_mean"].to_list() == pytest.approx([r[5] for r in rows])
    assert steps["reward_mean"].to_list() == pytest.approx([r[6] for r in rows])
    assert steps["resp_len_mean"].to_list() == pytest.approx([r[7] for r in rows])
    assert not {"actor_entropy", "critic_score_mean", "critic_rewards_mean"} & set(report.unrecognised)
    ev = run.evals.filter(run.evals["name"] == "val/textcraft_acc_mean@1").sort("step")
    assert ev["step"].to_list() == [r[0] for r in rows if r[8] != ""]
    assert ev["value"].to_list() == pytest.approx([r[8] for r in rows if r[8] != ""])
    assert report.framework == "verl"
    assert report.entropy_semantics.get("kind") == "token_entropy"
    out = analyze_run(run)
    assert out["metric"]["name"] == "val/textcraft_acc_mean@1"  # the mean, not the std@1 of val-aux
    notes = out["metric_notes"]
    assert "task score" in notes["critic_score_mean"] and "KL" in notes["critic_rewards_mean"]


# ------------------------------------------------------------ 2: a single evaluation is not R
def _run(path, eval_steps: list[int], n: int = 20):
    w = RunWriter(path, meta={"source": "test", "world_size": 1})
    w.append("steps", {"step": list(range(1, n + 1)), "rank": [0] * n,
                       "entropy_mean": [0.5 - 0.01 * s for s in range(n)],
                       "score_mean": [0.1 + 0.02 * s for s in range(n)]})
    if eval_steps:
        k = len(eval_steps)
        w.append("evals", {"step": eval_steps, "rank": [0] * k, "name": ["val/econ/reward/mean@1"] * k,
                           "value": [0.2 + 0.1 * i for i in range(k)], "n": [1] * k})
    w.close("finished")
    return load_run(path)


def test_a_single_evaluation_is_not_r_where_the_run_has_a_training_score(tmp_path):
    once = choose_metric(_run(tmp_path / "once", [20]))
    assert (once.name, once.source) == ("score_mean", "train")
    assert "val/econ/reward/mean@1" in once.reason and "single step" in once.reason
    twice = choose_metric(_run(tmp_path / "twice", [10, 20]))
    assert (twice.name, twice.source) == ("val/econ/reward/mean@1", "eval")
    named = choose_metric(_run(tmp_path / "named", [20]), "val/econ/reward/mean@1")
    assert (named.name, named.source) == ("val/econ/reward/mean@1", "eval")


# ------------------------------------------------------------ 3: the premise before R²
def test_a_noisy_score_that_rises_with_the_entropy_is_not_applicable_not_a_poor_fit():
    """An entropy bonus (or DAPO's clip-higher) raises the entropy as the score improves: over
    hundreds of noisy points R² is low, but a is far below 0, which refutes the premise. A score
    as noisy that does not move with the entropy stays a "poor fit"."""
    from entrodiag.analysis import fit_entropy_law
    from entrodiag.analysis.verdicts import judge_law

    rng = np.random.default_rng(0)
    H = np.linspace(0.1, 0.45, 300) + rng.normal(0, 0.02, 300)
    noise = rng.normal(0, 0.25, 300)
    rises = fit_entropy_law((H, 0.2 + 1.5 * H + noise))
    slope = np.polyfit(np.exp(H), 0.2 + 1.5 * H + noise, 1)[0]  # independent: R vs e^H, OLS slope = −a
    assert rises.a == pytest.approx(-slope, rel=1e-6) and rises.a < 0 and rises.r2 < 0.5
    v = judge_law(rises)
    assert v.status == "not applicable" and "performance moved with entropy" in v.reason, v
    flat = fit_entropy_law((H, 0.5 + noise))
    assert judge_law(flat).status == "poor fit"
