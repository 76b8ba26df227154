"""Real runs from the wild (``../shared/real-logs``, read in place, never copied): each of the nine
files imports with no ``--map``, with the source's step count, the entropy at its first and last
step and its validation series, all read here from the raw files with plain regexes and ``json``
(not through the importer); ``entrodiag analyze`` picks a validation accuracy where there is one
and says when R is a training reward; the verdicts read as a practitioner would expect.

Skipped, with the reason, where the logs are not beside the repository (``../shared/real-logs``,
as CI checks out shared/ beside the repo) nor at /work/shared/real-logs.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from entrodiag import load_run
from entrodiag.analysis import analyze_run
from entrodiag.cli import main
from entrodiag.importers import import_run
from schema_check import diagnosis

_CANDIDATES = (Path(__file__).resolve().parents[1] / ".." / "shared" / "real-logs", Path("/work/shared/real-logs"))
LOGS = next((p.resolve() for p in _CANDIDATES if p.is_dir()), None)
pytestmark = pytest.mark.skipif(LOGS is None, reason="the real logs are not here: expected ../shared/real-logs "
                                "beside the repository (or /work/shared/real-logs)")

VERL = "verl-console-ppo-gsm8k"
CS336 = "cs336-grpo-qwen2.5-math-1.5b-math"
CS336_RUNS = ("grpo_on_policy_lr1e-5", "reinforce_with_baseline_lr4e-5", "grpo_clip_0.20_0.28_e2_tb256",
              "no_baseline_lr4e-5")
VL = "trl-stdout-qwen2.5vl3b-grpo-aokvqa"
GPTOSS = "trl-trainer-state-gptoss20b-grpo-minesweeper"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _files() -> dict[str, Path]:
    assert LOGS is not None
    vl = LOGS / VL
    return {
        "verl-qwen": next((LOGS / VERL).glob("Qwen*.log")),
        "verl-gemma": next((LOGS / VERL).glob("gemma*.log")),
        **{f"cs336-{r}": LOGS / CS336 / r / "metrics.jsonl" for r in CS336_RUNS},
        "trl-gptoss": LOGS / GPTOSS / "trainer_state.json",
        "trl-vl-console": vl / "run_terminal.md",
        "trl-vl-tb": next(vl.glob("events.out.tfevents.*")),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each file imported with no --map: {name: run dir}."""
    root = tmp_path_factory.mktemp("real")
    out = {}
    for name, src in _files().items():
        import_run(src, root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def summaries(runs) -> dict[str, dict]:
    return {name: analyze_run(path) for name, path in runs.items()}


# --------------------------------------------------------------------- the sources, read raw
def _verl_raw(path: Path) -> tuple[dict[int, float], dict[int, float], float | None]:
    """(entropy by step, validation by step, initial validation) from a verl console log."""
    entropy, val, initial = {}, {}, None
    for line in path.read_text(errors="replace").splitlines():
        line = ANSI.sub("", line)
        m = re.search(r"step:(\d+) - ", line)
        if m:
            step = int(m.group(1))
            e = re.search(r"actor/entropy_loss:([-\d.]+)", line)
            if e:
                entropy[step] = float(e.group(1))
            v = re.search(r"test_score/openai/gsm8k:([-\d.]+)", line)
            if v:
                val[step] = float(v.group(1))
        i = re.search(r"Initial validation metrics: \{'test_score/openai/gsm8k': ([-\d.e]+)\}", line)
        if i:
            initial = float(i.group(1))
    return entropy, val, initial


def _typed_raw(path: Path) -> tuple[dict[int, float], dict[int, float]]:
    """(entropy of the first train record per grpo_step, eval answer_accuracy per grpo_step)."""
    entropy, val = {}, {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "train":
            entropy.setdefault(rec["grpo_step"], rec["token_entropy"])
        elif rec["type"] == "eval":
            val[rec["grpo_step"]] = rec["answer_accuracy"]
    return entropy, val


def _vl_console_raw(path: Path) -> list[float]:
    """The 'entropy' of each printed metrics dict, in order."""
    return [float(m) for m in re.findall(r"\{'loss':[^}]*?'entropy': ([-\d.e]+)", path.read_text())]


def _series(run_dir: Path, column: str = "entropy_mean") -> tuple[list[int], list[float]]:
    steps = load_run(run_dir).steps.sort("step")
    return steps["step"].to_list(), steps[column].to_list()


def _evals(run_dir: Path, name: str) -> dict[int, float]:
    ev = load_run(run_dir).evals
    ev = ev.filter(ev["name"] == name).sort("step")
    return dict(zip(ev["step"].to_list(), ev["value"].to_list()))


# ------------------------------------------------------------------------------ the imports
@pytest.mark.parametrize("name", ["verl-qwen", "verl-gemma"])
def test_verl_console_logs_import_with_their_steps_entropy_and_validation(runs, name):
    entropy, val, initial = _verl_raw(_files()[name])
    steps, h = _series(runs[name])
    assert steps == sorted(entropy) and len(steps) == {"verl-qwen": 435, "verl-gemma": 106}[name]
    assert h[0] == pytest.approx(entropy[steps[0]]) and h[-1] == pytest.approx(entropy[steps[-1]])
    got = _evals(runs[name], "val/test_score/openai/gsm8k")
    if name == "verl-qwen":  # 43 on step lines + the initial dict (before step 0, taken as step 0)
        assert len(val) == 43 and 0 not in val and len(got) == 44
        assert got[0] == pytest.approx(initial) and initial < 0.01
    else:  # step 0 logged twice (a step line and the initial dict): one point
        assert len(val) == 11 and len(got) == 11 and got[0] == pytest.approx(initial, abs=5e-4)
    for step, v in val.items():
        assert got[step] == pytest.approx(v)
    meta = load_run(runs[name]).meta
    assert meta["entropy_semantics"]["kind"] == "token_entropy" and meta["entropy_semantics"]["temperature"] == 1.0


@pytest.mark.parametrize("run", CS336_RUNS)
def test_typed_jsonl_splits_record_kinds(runs, run):
    entropy, val = _typed_raw(_files()[f"cs336-{run}"])
    steps, h = _series(runs[f"cs336-{run}"])
    assert steps == sorted(entropy) and len(steps) == 200
    assert h[0] == pytest.approx(entropy[steps[0]]) and h[-1] == pytest.approx(entropy[steps[-1]])
    got = _evals(runs[f"cs336-{run}"], "val/answer_accuracy")
    assert len(val) == 41 and got == pytest.approx(val)  # eval records only, not the rollouts' accuracy
    names = set(load_run(runs[f"cs336-{run}"]).evals["name"].to_list())
    assert not any("seconds" in n or "num_examples" in n for n in names)
    typed = load_run(runs[f"cs336-{run}"]).meta["imported"]["typed"]
    assert typed["kind_field"] == "type" and typed["eval_kinds"] == ["eval"]
    assert ("train" in typed["combined"]) == (run == "grpo_clip_0.20_0.28_e2_tb256")  # 2 epochs per batch


def test_trainer_state_and_both_copies_of_the_vl_run(runs, tmp_path, capsys):
    state = json.loads(_files()["trl-gptoss"].read_text())
    logged = [e for e in state["log_history"] if "entropy" in e]
    steps, h = _series(runs["trl-gptoss"])
    assert steps == [e["step"] for e in logged] and len(steps) == 50
    assert h[0] == pytest.approx(logged[0]["entropy"]) and h[-1] == pytest.approx(logged[-1]["entropy"])

    raw = _vl_console_raw(_files()["trl-vl-console"])
    steps, h = _series(runs["trl-vl-console"])
    assert len(raw) == 49 and steps == list(range(10, 500, 10))  # from the progress counter
    assert h == pytest.approx(raw) and raw[0] > 0.9 and raw[-1] < 0.1
    tb_steps, tb_h = _series(runs["trl-vl-tb"])
    assert tb_steps == steps and tb_h == pytest.approx(raw, rel=1e-6)  # TB stores float32
    # --log-every numbers the dicts instead, and the summary says how the steps were read
    code = main(["import", str(_files()["trl-vl-console"]), "--out", str(tmp_path / "every"), "--log-every", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "--log-every 10" in out and _series(tmp_path / "every")[0] == steps


def test_each_file_imports_from_the_cli_without_map(tmp_path, capsys):
    for name, src in _files().items():
        code = main(["import", str(src), "--out", str(tmp_path / name)])
        out, err = capsys.readouterr()
        assert code == 0, (name, err)
        assert "entropy " in out and "cannot tell the format" not in err


# ----------------------------------------------------------------------------- the analysis
def test_r_is_validation_accuracy_where_present_else_a_named_training_reward(runs, summaries, capsys):
    want = {"verl-qwen": "val/test_score/openai/gsm8k", "verl-gemma": "val/test_score/openai/gsm8k",
            **{f"cs336-{r}": "val/answer_accuracy" for r in CS336_RUNS}}
    for name, s in summaries.items():
        m = s["metric"]
        if name in want:
            assert (m["name"], m["label"], m["training"]) == (want[name], "validation accuracy", False), name
        else:  # the TRL runs log no validation metric; the VL run's total adds format and attention
            # terms to the answer's correctness (rewards/mc_idx_reward/mean), which is then R
            task = "rewards/mc_idx_reward/mean" if name.startswith("trl-vl") else "reward_mean"
            assert m["training"] and m["label"] == "training reward" and m["name"] == task, name
            assert s["law"]["metric_choice"]["training"]
    code = main(["analyze", str(runs["trl-gptoss"])])
    text = capsys.readouterr().out
    assert code == 0 and "R = reward_mean (training reward)" in text and "no validation metric" in text
    code = main(["analyze", str(runs["verl-qwen"]), "--metric", "timing/gen"])
    assert code == 2 and "not a performance" in capsys.readouterr().err
    # watch says it too, and --metric names another R (here verl's training score)
    code = main(["watch", str(runs["trl-vl-tb"]), "--no-events"])
    out = capsys.readouterr().out
    assert code == 0 and "R = rewards/mc_idx_reward/mean (training reward)" in out
    assert "rewards/mc_idx_reward/mean (training reward) " in out and "not reward_mean" in out
    code = main(["analyze", str(runs["verl-qwen"]), "--metric", "score_mean", "--json"])
    s = diagnosis(capsys.readouterr().out)
    assert code == 0 and s["metric"]["name"] == "score_mean" and s["metric"]["label"] == "training accuracy"
    assert s["law"]["metric"] == "score_mean" and s["law"]["metric_choice"]["training"]
    code = main(["report", str(runs["verl-qwen"]), "--metric", "nope", "-o", str(runs["verl-qwen"] / "x.pdf")])
    assert code == 2 and "no evaluation or step column named 'nope'" in capsys.readouterr().err


def test_verdicts_read_as_a_practitioner_would_expect(summaries):
    def flags(name, severity=None):
        return [f["kind"] for f in summaries[name]["flags"]["items"] if severity in (None, f["severity"])]

    # the VL run: entropy 0.96 -> 0.01, answers 53 -> 4 tokens, every group all-equal
    for name in ("trl-vl-console", "trl-vl-tb"):
        crit = flags(name, "critical")
        assert {"length_collapse", "entropy_floor"} <= set(crit), crit
    # entropy that explodes or swings is not presented as a healthy law fit
    for name in ("cs336-grpo_clip_0.20_0.28_e2_tb256", "cs336-no_baseline_lr4e-5", "trl-vl-console"):
        assert summaries[name]["law"]["verdict"]["status"] != "fits", name
    assert "entropy_explosion" in flags("cs336-no_baseline_lr4e-5", "critical")
    # verl's own reference runs: no critical flag, and the law fits their validation accuracy
    for name in ("verl-qwen", "verl-gemma"):
        assert flags(name, "critical") == [], flags(name)
        assert summaries[name]["law"]["verdict"]["status"] == "fits" and summaries[name]["law"]["r2"] > 0.8
    # imported runs are told what to log in their framework, not which Recorder argument to pass
    skipped = summaries["trl-gptoss"]["flags"]["skipped"]
    assert "RecordingGRPOTrainer" in skipped["positive_covariance"] and "record_batch" not in skipped["positive_covariance"]
    assert "verl" in summaries["verl-qwen"]["flags"]["skipped"]["positive_covariance"]
    assert any("eval_strategy" in line for line in summaries["trl-gptoss"]["missing"])


def test_early_prediction_interval_on_real_runs(summaries):
    """At f = 30% and 50%, the 90% interval covers the final accuracy in >= 80% of the cases where
    the law fits (R² >= 0.5) among the real runs with validation accuracy."""
    cases = []
    for name, s in summaries.items():
        if s["metric"]["training"] or s["law"]["r2"] < 0.5:
            continue
        for row in s["early_prediction"]["rows"]:
            if row["frac"] in (0.3, 0.5) and row.get("covered") is not None:
                assert row["lo"] <= row["estimate"] <= row["hi"]
                assert row["covered"] == (row["lo"] <= row["actual_final"] <= row["hi"])
                cases.append(row["covered"])
    assert len(cases) >= 7 and sum(cases) / len(cases) >= 0.8, cases
    assert not math.isnan(sum(cases))


def test_dashboard_law_page_names_a_training_reward(runs, monkeypatch):
    """The law page of a run without validation says R is the training reward; --metric (the
    dashboard's environment variable) picks another R in the runs that log it."""
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    from streamlit.testing.v1 import AppTest

    from entrodiag.dashboard import METRIC_ENV, ROOT_ENV

    app = Path(__file__).resolve().parents[1] / "entrodiag" / "app" / "streamlit_app.py"

    def law_page(run_dir: Path) -> AppTest:
        monkeypatch.setenv(ROOT_ENV, str(run_dir))
        at = AppTest.from_file(str(app), default_timeout=60)
        at.run()
        at.switch_page("page_law.py")
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    def warnings(at: AppTest) -> str:  # markdown-escaped on the page: compare without the backslashes
        return " ".join(str(w.value) for w in at.warning).replace("\\", "")

    at = law_page(runs["trl-gptoss"])
    warned = warnings(at)
    assert "R = reward_mean (training reward)" in warned and "no validation metric" in warned
    monkeypatch.setenv(METRIC_ENV, "score_mean")
    at = law_page(runs["verl-gemma"])
    assert "R = score_mean (training accuracy)" in warnings(at)
