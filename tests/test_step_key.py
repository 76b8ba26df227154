"""The step key found from the content (``entrodiag/importers/step_key.py``), on small hand-made logs.

ROLL's pipelines key each step's metrics by ``system/step`` (a float: ``1.0``, ``2.0``, ...) beside
other counters that also only grow (``system/samples``) and durations named for the step
(``time/step_total``); a log with no known step name is read by the rule: a step-like last name
part and whole, never decreasing values. Several disagreeing candidates, or a step-like column that
is not a count, are refused in one line that names them and the ``--map`` that settles it. The
public ROLL run of the wild corpus is checked in ``tests/test_wild.py``.
"""

from __future__ import annotations

import json

import pytest

from entrodiag import load_run
from entrodiag.analysis.metric import choose_metric
from entrodiag.cli import main
from entrodiag.importers import ImportFailure, import_run

N = 12


def _roll_rows() -> list[dict]:
    """ROLL-like rows: ``actor/entropy`` only from the 4th row on (as in the corpus run)."""
    rows = []
    for k in range(N):
        s = k + 1
        row = {"actor/pg_loss": 0.01 * k, "actor/lr": 1e-6, "reward/hard_pass_rate": 0.3 + 0.02 * k,
               "reward/process_quality_mean": 0.8, "length/mean": 400.0 + k,
               "system/samples": 64 * s, "system/step": float(s), "time/step_total": 190.5 + k / 3}
        if k >= 3:
            row["actor/entropy"] = 0.7 - 0.01 * k
        rows.append(row)
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_roll_metrics_jsonl_steps_by_system_step(tmp_path):
    rows = _roll_rows()
    rep = import_run(_write(tmp_path / "metrics.jsonl", rows), tmp_path / "run")
    assert rep.step_column == "system/step" and rep.framework == "roll" and not rep.bad_values
    run = load_run(tmp_path / "run")
    steps = run.steps.sort("step")
    assert steps["step"].to_list() == [int(r["system/step"]) for r in rows]
    h = steps.filter(steps["entropy_mean"].is_not_null())
    assert h["step"].to_list() == [int(r["system/step"]) for r in rows if "actor/entropy" in r]
    logged = [r["actor/entropy"] for r in rows if "actor/entropy" in r]
    assert h["entropy_mean"].to_list() == pytest.approx(logged)
    # the other growing counter and the step's duration stay columns of their own
    assert steps["system/samples"].to_list() == [r["system/samples"] for r in rows]
    assert "ROLL actor/entropy" in run.meta["entropy_semantics"]["basis"]
    # no validation, no reward_mean: R is the pass rate, said to be a training series
    choice = choose_metric(run)
    assert (choice.name, choice.source) == ("reward/hard_pass_rate", "train")
    assert choice.label == "training accuracy"


def test_step_like_columns_that_disagree_are_refused_with_the_map_that_settles_it(tmp_path, capsys):
    rows = [{"trainer/step": k, "env/iteration": 2 * k, "entropy": 1.0 - k / 10} for k in range(5)]
    log = _write(tmp_path / "log.jsonl", rows)
    code = main(["import", str(log), "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "trainer/step" in err and "env/iteration" in err and "--map trainer/step=step" in err
    assert len(err.strip().splitlines()) == 1
    rep = import_run(log, tmp_path / "b", mapping={"env/iteration": "step"})
    assert rep.step_column == "env/iteration"
    assert load_run(tmp_path / "b").steps.sort("step")["step"].to_list() == [2 * k for k in range(5)]
    # two names for one counter (the same step on every row) are one candidate: the first logged
    same = [{"trainer/step": k, "env/iteration": k, "entropy": 1.0 - k / 10} for k in range(5)]
    assert import_run(_write(tmp_path / "same.jsonl", same), tmp_path / "c").step_column == "trainer/step"


def test_step_like_columns_that_do_not_count_steps_are_named_with_why(tmp_path):
    restarted = [{"system/step": s, "time/step": 1.5 + s, "entropy": 0.5} for s in (0, 1, 2, 0, 1, 2, 3)]
    with pytest.raises(ImportFailure) as e:
        import_run(_write(tmp_path / "r.jsonl", restarted), tmp_path / "a")
    msg = str(e.value)
    assert "system/step decreases on row 4 (2 -> 0)" in msg and "time/step is not a whole number" in msg
    assert "--map COLUMN=step" in msg
    # mapped by the user, the restarted counter is the step (the later value of a step logged twice kept)
    rep = import_run(tmp_path / "r.jsonl", tmp_path / "b", mapping={"system/step": "step"})
    assert rep.step_column == "system/step" and load_run(tmp_path / "b").steps.height == 4


def test_a_score_named_series_is_r_only_when_it_is_a_mean_performance(tmp_path):
    """The training tier of a score-named series (ROLL's ``reward/hard_pass_rate``) takes no batch
    max/min statistic, no KL-named and no ``bypass`` (not a pass) series, whatever their order."""
    from entrodiag.analysis import AnalysisError

    others = ("critic/score/max", "score_min", "reward/pass_min", "env/success_max", "kl_score",
              "bypass_ratio")
    rows = [{"step": k + 1, "actor/entropy": 0.7 - 0.01 * k, **{n: 0.1 * k for n in others}}
            for k in range(N)]
    import_run(_write(tmp_path / "no_r.jsonl", rows), tmp_path / "no_r")
    with pytest.raises(AnalysisError, match="no training reward or accuracy"):
        choose_metric(load_run(tmp_path / "no_r"))
    for row in rows:
        row["reward/hard_pass_rate"] = 0.3 + row["score_min"]
    import_run(_write(tmp_path / "r.jsonl", rows), tmp_path / "r")
    assert choose_metric(load_run(tmp_path / "r")).name == "reward/hard_pass_rate"
