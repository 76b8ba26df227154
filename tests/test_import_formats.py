"""Console and typed formats on small hand-written files, and bad values counted on import.

Complements tests/test_real_logs.py (the real files) with the cases those files do not cover:
a verl log without Ray's prefix and colours, printed dicts without a progress bar, a typed JSONL
whose evaluation kind has an unusual name (``--eval-where``), and values that cannot be right.
"""

from __future__ import annotations

import json

import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.importers import ImportFailure, detect_format, import_run


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verl_console_without_prefix_or_colours(tmp_path):
    log = tmp_path / "train.log"
    lines = ["some banner", "{'actor_rollout_ref': {'rollout': {'temperature': 0.7}}}"]
    for s in range(12):
        val = f" - val-core/gsm8k/reward/mean@1:{0.1 + s / 100:.3f}" if s % 4 == 0 else ""
        lines.append(f"step:{s} - actor/entropy:{1 - s / 20:.3f} - critic/score/mean:{s / 20:.3f}{val}")
        lines.append(f"(WorkerDict pid=1) sample text step:{s} is not a metric line")
    log.write_text("\n".join(lines) + "\n")
    assert detect_format(log)[0] == "verl_console"
    rep = import_run(log, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert rep.steps == 12 and run.steps.sort("step")["entropy_mean"].to_list()[-1] == pytest.approx(1 - 11 / 20)
    ev = run.evals.sort("step")
    assert ev["step"].to_list() == [0, 4, 8] and ev["name"].unique().to_list() == ["val/gsm8k/reward/mean@1"]
    sem = run.meta["entropy_semantics"]
    assert sem["kind"] == "token_entropy" and sem["temperature"] == 0.7


def test_printed_dicts_need_a_counter_or_log_every(tmp_path, capsys):
    log = tmp_path / "out.txt"
    dicts = [{"loss": 0.1, "entropy": 1.0 - k / 10, "reward": k / 10, "epoch": 0.0} for k in range(5)]
    log.write_text("loading...\n" + "\n".join(str(d) for d in dicts) + "\n{'train_runtime': 9.0, 'epoch': 1.0}\n")
    assert detect_format(log)[0] == "console"
    code, _, err = _cli(capsys, "import", str(log), "--out", str(tmp_path / "a"))
    assert code == 2 and "--log-every" in err
    code, out, _ = _cli(capsys, "import", str(log), "--out", str(tmp_path / "b"), "--log-every", "5")
    assert code == 0 and "5 printed metric dicts" in out
    steps = load_run(tmp_path / "b").steps.sort("step")
    assert steps["step"].to_list() == [5, 10, 15, 20, 25] and steps["entropy_mean"].to_list() == pytest.approx(
        [d["entropy"] for d in dicts])
    code, _, err = _cli(capsys, "import", str(log), "--out", str(tmp_path / "c"), "--log-every", "0")
    assert code == 2 and "positive" in err


def test_typed_jsonl_with_eval_where(tmp_path, capsys):
    log = tmp_path / "metrics.jsonl"
    recs = []
    for s in range(1, 9):
        recs.append({"split": "train", "iteration": s, "token_entropy": 1 / s, "accuracy": 0.5})
        recs.append({"split": "train", "iteration": s, "token_entropy": 9.0, "accuracy": 0.5})  # 2nd epoch
        if s % 2 == 0:
            recs.append({"split": "heldout", "iteration": s, "accuracy": s / 10, "seconds": 3.0})
    log.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    # 'heldout' is no evaluation name entrodiag knows: named with --eval-where, the records split
    code, out, _ = _cli(capsys, "import", str(log), "--out", str(tmp_path / "run"), "--eval-where", "split=heldout")
    assert code == 0 and "heldout (4, evaluations)" in out and "kept the first record" in out
    run = load_run(tmp_path / "run")
    assert run.steps.sort("step")["entropy_mean"].to_list() == pytest.approx([1 / s for s in range(1, 9)])
    ev = run.evals.sort("step")
    assert ev["name"].unique().to_list() == ["val/accuracy"] and ev["value"].to_list() == pytest.approx([.2, .4, .6, .8])
    code, _, err = _cli(capsys, "import", str(log), "--out", str(tmp_path / "x"), "--eval-where", "split=test")
    assert code == 2 and "no record has that value" in err and "heldout" in err
    with pytest.raises(ImportFailure, match="FIELD=VALUE"):
        import_run(log, tmp_path / "y", eval_where="split")


def test_bad_values_are_counted_and_left_out(tmp_path, capsys):
    csv = tmp_path / "history.csv"
    csv.write_text("step,entropy,reward\n1,0.9,0.1\n2,-0.5,0.2\n3,inf,0.3\nabc,0.5,0.4\n4,0.6,nan\n"
                   "4,0.7,0.5\n5,0.5,0.6\n")
    code, out, _ = _cli(capsys, "import", str(csv), "--out", str(tmp_path / "run"))
    assert code == 0
    assert "bad values  5 in all" in out
    for what in ("1 x entropy: negative entropy (left out)", "1 x entropy: not a number or infinite (left out)",
                 "1 x reward: not a number or infinite (left out)",  # the nan cell
                 "1 x rows whose step (step) is not a whole number >= 0 (left out)",
                 "1 x entropy: step logged twice with different values (kept the last)"):
        assert what in out, what
    run = load_run(tmp_path / "run")
    h = dict(zip(*[run.steps.sort("step")[c].to_list() for c in ("step", "entropy_mean")]))
    assert h == {1: 0.9, 2: None, 3: None, 4: 0.7, 5: 0.5}
    assert run.meta["imported"]["bad_values"]["entropy: negative entropy (left out)"] == 1


def test_a_sampled_entropy_estimate_is_stated_and_warned(tmp_path):
    """TRL's old PPO/RLOO logged objective/entropy = −log p of the sampled tokens summed per response:
    run.json says so, and the analysis warns that the law and thresholds see an approximation."""
    from entrodiag.analysis import analyze_run

    state = {"global_step": 20, "log_history": [
        {"step": s, "objective/entropy": 40.0 - s, "objective/rlhf_reward": s / 10,
         **({"eval_reward": s / 12} if s % 4 == 0 else {})} for s in range(1, 21)]}
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    import_run(path, tmp_path / "run")
    sem = load_run(tmp_path / "run").meta["entropy_semantics"]
    assert (sem["column"], sem["kind"], sem["aggregation"]) == ("objective/entropy", "sampled_neglogp", "seq_sum")
    s = analyze_run(tmp_path / "run")
    warns = " ".join(s["entropy_semantics"]["warnings"])
    assert "sampled −log p estimate" in warns and "summed per response" in warns
    assert s["metric"]["name"] == "val/reward" and not s["metric"]["training"]
    assert s["entropy_semantics"]["statement"].startswith("entropy objective/entropy: a sampled estimate")


def test_mlflow_at_names_rank_as_their_at_sign_spelling():
    """verl's MLflow logger writes ``@`` as ``_at_`` (MLflow refuses ``@``): ``mean_at_N`` is the mean
    score preferred as R, ``std_at_N``/``best_at_N``/``maj_at_N`` are statistics, as with ``@``."""
    from entrodiag.analysis.metric import rank_eval_metrics
    from entrodiag.importers import classify

    at = ["val-aux/gsm8k/acc/std@4", "val-core/gsm8k/acc/best@4/mean", "val-core/gsm8k/acc/last",
          "val-aux/gsm8k/acc/mean@1", "val-core/gsm8k/acc/maj@4/std", "val-core/gsm8k/acc/mean@4"]
    want = rank_eval_metrics([classify(n).name for n in at])
    assert want == ["val/gsm8k/acc/mean@4", "val/gsm8k/acc/last", "val/aux/gsm8k/acc/mean@1"]
    mlflow = [classify(n.replace("@", "_at_")).name for n in at]
    assert rank_eval_metrics(mlflow) == [n.replace("@", "_at_") for n in want]


def test_nested_config_gives_the_training_temperature(tmp_path):
    """verl's config nested as dicts (a W&B run's config; W&B's ``config.yaml`` beside the console log
    it captures as ``output.log``): the rollout temperature, not the validation one."""
    from entrodiag.importers.semantics import entropy_semantics

    nested = {"actor_rollout_ref": {"rollout": {"val_kwargs": {"temperature": 0.0}, "temperature": 0.6}}}
    assert entropy_semantics("verl", "actor/entropy", nested)["temperature"] == 0.6
    assert entropy_semantics("verl", "actor/entropy", {"actor_rollout_ref.rollout.temperature": 0.8,
                                                       "temperature": 0.7})["temperature"] == 0.7
    files = tmp_path / "wandb" / "run-1" / "files"
    files.mkdir(parents=True)
    (files / "output.log").write_text("".join(
        f"step:{s} - actor/entropy:{1 - s / 20:.3f} - critic/score/mean:{s / 20:.3f}\n" for s in range(1, 6)))
    (files / "config.yaml").write_text(
        "_wandb:\n  value:\n    cli_version: 0.19.1\nactor_rollout_ref:\n  value:\n    rollout:\n"
        "      val_kwargs:\n        temperature: 0\n      temperature: 0.6\n"
        "trainer:\n  value:\n    total_epochs: 2\n")
    import_run(files / "output.log", tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.meta["entropy_semantics"]["temperature"] == 0.6
    assert run.meta["config"]["trainer"] == {"total_epochs": 2} and "_wandb" not in run.meta["config"]
