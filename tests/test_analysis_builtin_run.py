"""`entrodiag analyze` on a real run of the built-in trainer (the session's shared ``tiny_run``:
the ``tiny-arith-test`` preset, trained once per test session and shared with the trainer tests;
run alone, this file trains it first)."""

import json

import pytest

from entrodiag import fit_entropy_law
from entrodiag.cli import main
from schema_check import diagnosis


def test_analyze_reads_what_the_builtin_trainer_writes(tiny_run, capsys):
    run_dir = tiny_run[0]
    assert main(["analyze", str(run_dir)]) == 0
    text = capsys.readouterr().out
    for needle in ("Entropy law R = −a·e^H + b", "val/accuracy_sampled", "Early prediction", "Flags",
                   "Mechanism check", "Forking-token leaderboard"):
        assert needle in text, needle
    assert main(["analyze", str(run_dir), "--json"]) == 0
    s = diagnosis(capsys.readouterr().out)
    assert set(s["run"]["eval_metrics"]) >= {"val/accuracy_sampled", "val/accuracy_greedy"}
    assert s["law"]["status"] == "ok" and s["law"]["metric"] == "val/accuracy_sampled"
    assert s["law"]["a"] == pytest.approx(fit_entropy_law(run_dir).a)
    ep, verdict = s["early_prediction"], s["law"]["verdict"]
    print(f"tiny-arith-test law: {verdict['text']}")
    if verdict["status"] == "fits":
        assert ep["status"] == "ok" and len(ep["rows"]) == 3
    else:  # where the law does not describe the run there is no early prediction, and it says why
        assert ep["status"] == "empty" and ep["verdict"] == verdict and len(ep["rows"]) == 3
        assert all(row["estimate"] is None for row in ep["rows"]) and s["law"]["ceiling"] is None
    assert s["mechanism"]["delta_source"].startswith("entropy_after")  # the trainer's after-update entropy
    assert s["dynamics"]["status"] == "ok" and s["missing"] == []
