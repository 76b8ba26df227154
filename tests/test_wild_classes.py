"""The four classes of miss found on the held-out half of the wild corpus (batches 1-5;
``benchmarks/README.md``, "The wild corpus"), each on a small log written here or on a run made
here and committed (``tests/data/wild/made-*``), so that CI covers them without the public logs:

1. Tinker's ``metrics.jsonl`` names (``optim/entropy``, ``env/all/correct``, ...) are in the name
   table, with their meaning;
2. lines a logger cut at a fixed length (W&B's ``output.log``: 4,096 characters) lose the values
   after the cut: the import goes on and says by key what they lost, and refuses only when the
   entropy or the series R would come from is lost;
3. too few evaluations to establish the law's premise read "poor fit", not "not applicable",
   which needs positive evidence (a significantly below 0, or an explosion/volatility flag);
4. the detectors' smoothing window grows with the series (a tenth of it, a trailing median), so a
   long, very noisy, flat log raises neither an explosion nor an early collapse.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from entrodiag import load_run
from entrodiag.analysis import analyze_run, detect_collapse, render_summary
from entrodiag.analysis.verdicts import judge_law
from entrodiag.importers import ImportFailure, import_run
from entrodiag.store.writer import RunWriter

WILD = Path(__file__).resolve().parent / "data" / "wild"


def _steps(run_dir) -> dict[str, list]:
    steps = load_run(run_dir).steps.sort("step")
    return {c: steps[c].to_list() for c in steps.columns}


# ------------------------------------------------------------------------- 1: Tinker's names
def tinker_rows(n: int = 30) -> list[dict]:
    """Rows as tinker-cookbook's RL loop writes them to metrics.jsonl (keys of its math recipes)."""
    rows = []
    for s in range(n):
        correct = min(1.0, 0.6 + 0.015 * s)
        fmt = min(1.0, 0.8 + 0.01 * s)
        rows.append({"step": s, "progress/batch": s, "optim/lr": 1e-4, "progress/done_frac": (s + 1) / n,
                     "env/all/ac_tokens_per_turn": 5.0, "env/all/reward/total": correct + 0.1 * (fmt - 1),
                     "env/all/format": fmt, "env/all/correct": correct, "env/all/by_group/frac_mixed": 0.5,
                     "optim/kl_sample_train_v1": 1e-4, "optim/entropy": round(0.8 * math.exp(-s / 10), 6),
                     "time/total": 9.5, **({"time/run_evals": 1e-4} if s == 0 else {})})
    return rows


def test_tinker_metrics_import_with_their_entropy_task_score_and_meaning(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = tinker_rows()
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = import_run(log, tmp_path / "run")
    got = _steps(tmp_path / "run")
    assert got["step"] == list(range(30))
    assert got["entropy_mean"] == pytest.approx([r["optim/entropy"] for r in rows])
    assert got["score_mean"] == pytest.approx([r["env/all/correct"] for r in rows])
    assert got["reward_mean"] == pytest.approx([r["env/all/reward/total"] for r in rows])
    assert got["resp_len_mean"] == pytest.approx([5.0] * 30) and got["lr"] == pytest.approx([1e-4] * 30)
    assert report.framework == "tinker"
    assert report.entropy_semantics["kind"] == "sampled_neglogp"  # −mean log p of the sampled tokens
    assert report.entropy_semantics["aggregation"] == "token_mean"
    s = analyze_run(tmp_path / "run")
    assert s["metric"]["name"] == "score_mean"  # the task score, not the reward with its format term
    assert s["reward"]["column"] == "score_mean" and not s["reward"]["kl_in_reward"]
    assert "KL" not in s["reward"]["reason"] and "other terms" in s["reward"]["reason"]
    assert "sampled" in s["metric_notes"]["optim/entropy"] and "task score" in s["metric_notes"]["env/all/correct"]
    assert any("sampled −log p estimate" in w for w in s["entropy_semantics"]["warnings"])


# ---------------------------------------------------------------- 2: lines cut at 4,096 characters
CAP = 4096


def _verl_line(s: int, val: dict | None, tail_first: bool = False) -> str:
    train = {"actor/entropy": round(1.0 / (1 + s / 20), 6), "actor/pg_loss": 0.01, "actor/lr": 1e-6,
             **{f"perf/metric_{i}": 1.0 for i in range(40)}}
    rest = {"critic/score/mean": round(0.1 + 0.004 * s, 6), "critic/rewards/mean": round(0.1 + 0.004 * s, 6),
            "response_length/mean": 300.0 + s, "timing_s/step": 12.5}
    items = {**train, **(val or {}), **rest}
    if tail_first:  # the entropy after the long validation block
        items = {**(val or {}), **train, **rest}
    return f"step:{s} - " + " - ".join(f"{k}:np.float64({v})" for k, v in items.items())


def _val(s: int, score_first: bool = True, variables: tuple[str, ...] = ("score", "reward", "acc")) -> dict:
    """verl ≥ 0.6's validation keys: the mean score, then dozens of best@k/worst@k/maj@k statistics."""
    stats = {f"val-aux/x/{v}/{w}@{k}/{m}": round(0.3 + 0.001 * s + 1e-3 * k, 12) for v in variables
             for k in (2, 4, 8, 16, 32) for w in ("best", "worst", "maj") for m in ("mean", "std")}
    mean = {"val-core/x/acc/mean@32": round(0.2 + 0.003 * s, 6)}
    return {**mean, **stats} if score_first else {**stats, **mean}


def _cut_log(path, lines: list[str]) -> None:
    path.write_text("".join(line[:CAP] + "\n" for line in lines))


def test_lines_cut_at_4096_characters_import_and_say_what_they_lost(tmp_path):
    """Every 10th step carries the validation, which pushes its line past 4,096 characters: the
    cut falls inside the best@k/maj@k statistics and takes the training keys after them."""
    steps = range(1, 61)
    lines = [_verl_line(s, _val(s) if s % 10 == 0 else None) for s in steps]
    assert all(len(line) > CAP for s, line in zip(steps, lines) if s % 10 == 0)
    _cut_log(tmp_path / "output.log", lines)
    report = import_run(tmp_path / "output.log", tmp_path / "run")
    got = _steps(tmp_path / "run")
    assert got["step"] == list(steps)
    assert got["entropy_mean"] == pytest.approx([round(1.0 / (1 + s / 20), 6) for s in steps])
    ev = load_run(tmp_path / "run").evals
    mean = ev.filter(ev["name"] == "val/x/acc/mean@32").sort("step")
    assert mean["step"].to_list() == [10, 20, 30, 40, 50, 60]  # the mean score is before the cut: all kept
    score = dict(zip(got["step"], got["score_mean"]))
    assert all(score[s] is None for s in (10, 20, 30)) and score[11] == pytest.approx(0.1 + 0.004 * 11)
    note = next(n for n in report.notes if "lines cut at 4096 characters" in n)
    assert "6 lines cut" in note and "critic/score/mean lost 6 of 60 values" in note
    assert report.bad_values["critic/score/mean: on a line cut at 4096 characters (lost)"] == 6
    lost = load_run(tmp_path / "run").meta["imported"]["lost"]
    assert lost["critic/score/mean"] == {"name": "score_mean", "lost": 6, "of": 60, "why": "lines cut at 4096 characters"}
    # the value cut short is left out even where what is left of it reads as a number; where the
    # cut falls inside a key, the value before it is whole and kept
    for step in (10, 20, 30, 40, 50, 60):
        items = lines[step - 1][:CAP].split(" - ")
        tail_cut = ":" in items[-1]
        key, value = (items[-1] if tail_cut else items[-2]).split(":", 1)
        got_v = ev.filter((ev["name"] == "val/aux/" + key.removeprefix("val-aux/")) & (ev["step"] == step))["value"]
        if tail_cut:
            assert got_v.is_empty() and lost[key]["lost"] >= 1, (step, key)
        else:
            assert got_v.to_list() == [float(value.removeprefix("np.float64(").rstrip(")"))], (step, key)
    s = analyze_run(tmp_path / "run")
    assert s["metric"]["name"] == "val/x/acc/mean@32"
    said = next(m for m in s["missing"] if m.startswith("values lost to parsing on import"))
    assert "lines cut at 4096 characters" in said


def test_a_cut_that_takes_the_entropy_or_every_mean_score_stops_the_import(tmp_path):
    steps = range(1, 31)
    # the mean score after the statistics: whole on the validation before training (step 0, no
    # training keys), cut off on every later validation line
    two = ("score", "acc")
    first = "step:0 - " + " - ".join(f"{k}:np.float64({v})" for k, v in _val(0, False, two).items())
    later = [_verl_line(s, _val(s, False, two) if s % 5 == 0 else None) for s in steps]
    assert len(first) < CAP < min(len(line) for s, line in zip(steps, later) if s % 5 == 0)
    _cut_log(tmp_path / "a.log", [first] + later)
    with pytest.raises(ImportFailure, match=r"evaluation val/x/acc/mean@32 series would be lost: 6 of 7 values.*cut at 4096"):
        import_run(tmp_path / "a.log", tmp_path / "a")
    # every line long, the entropy after the cut; one short line (step 0) shows the order
    short = _verl_line(0, _val(0, variables=("score",)), tail_first=True)
    assert len(short) < CAP
    _cut_log(tmp_path / "b.log", [short] + [_verl_line(s, _val(s), tail_first=True) for s in steps])
    with pytest.raises(ImportFailure, match=r"entropy series would be lost: 30 of 31 values"):
        import_run(tmp_path / "b.log", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------- 3: too few evaluations to tell
def test_too_few_evaluations_read_poor_fit_not_not_applicable(tmp_path):
    """The run made here whose evaluation reward rose (0.246 → 0.316) while entropy fell 16%, with
    6 evaluations: the premise is not established, which is not evidence against it."""
    import_run(WILD / "made-trl-tiny-addition-grpo-healthy" / "console.log", tmp_path / "run")
    s = analyze_run(tmp_path / "run")
    verdict = s["law"]["verdict"]
    assert verdict["status"] == "poor fit" and "too few evaluations" in verdict["reason"], verdict
    assert "degeneration" not in verdict["text"] and not verdict["numbers_shown"]
    assert all(s["law"][k] is None for k in ("ceiling", "gain_frac", "headroom", "r_last"))
    assert s["early_prediction"]["status"] == "empty"
    assert all(r["estimate"] is None for r in s["early_prediction"]["rows"])
    buf = io.StringIO()
    render_summary(s, file=buf, width=200)
    text = buf.getvalue()
    assert "withheld (poor fit)" in text and "not applicable" not in text


def test_not_applicable_needs_a_significantly_below_zero():
    """Six evaluations whose score clearly falls with the entropy: positive evidence, so "not
    applicable"; the same six points with the score rising but noisy: "poor fit"."""
    from entrodiag.analysis import fit_entropy_law

    H = np.linspace(1.0, 0.8, 6)
    falls = fit_entropy_law((H, 0.1 + 0.5 * (np.exp(H) - np.exp(H[-1])) + np.array([0, 1, -1, 1, -1, 0]) * 1e-3))
    v = judge_law(falls)
    assert v.status == "not applicable" and "performance fell with entropy" in v.reason and "upper bound" in v.reason
    few = fit_entropy_law((H[:4], np.array([0.25, 0.27, 0.26, 0.30])))  # rises, R² ≈ 0.7, four points
    assert few.a > 0 and few.r2 > 0.5
    assert judge_law(few).status == "poor fit" and "too few evaluations" in judge_law(few).reason


# ------------------------------------------------- 4: windows that grow with a long, noisy log
def _write(path, H, R, Z=None):
    steps = list(range(1, len(H) + 1))
    w = RunWriter(path, meta={"source": "test", "world_size": 1})
    cols = {"entropy_mean": H, "reward_mean": R, **({"zero_adv_group_frac": Z} if Z is not None else {})}
    w.append("steps", {"step": steps, "rank": [0] * len(steps), **{k: [float(x) for x in v] for k, v in cols.items()}})
    w.close("finished")
    return load_run(path)


def _noisy(n: int, level: np.ndarray, seed: int) -> np.ndarray:
    """Per-step entropy of a batch of a few responses: log-normal, heavy-tailed (a step's value
    ranges over two orders of magnitude, as in a 2,400-step TRL log of one prompt per step)."""
    return level * np.random.default_rng(seed).lognormal(0.0, 1.0, n)


def test_a_long_noisy_flat_log_raises_no_explosion_and_no_early_collapse(tmp_path):
    n = 2400
    rng = np.random.default_rng(1)
    flat = _write(tmp_path / "flat", _noisy(n, np.full(n, 0.035), 2), rng.choice([0.0, 0.5, 1.0, 2.0], n))
    kinds = {f.kind for f in detect_collapse(flat)}
    assert not kinds & {"entropy_explosion", "early_collapse", "entropy_volatility"}, kinds
    # the same noise on a real explosion (the level rises 5x from the middle while the reward
    # falls) and on a real early collapse (90% of the level gone in the first tenth) is still seen
    u = np.arange(n) / n
    level = np.where(u < 0.5, 0.035, 0.035 * (1 + 8 * (u - 0.5)))
    reward = np.where(u < 0.5, 1.0, 1.0 - 1.5 * (u - 0.5)) + rng.normal(0, 0.3, n)
    exploding = _write(tmp_path / "explosion", _noisy(n, level, 3), reward)
    flag = next(f for f in detect_collapse(exploding) if f.kind == "entropy_explosion")
    assert 1000 <= flag.first_step <= 1500, flag.first_step  # the rise begins at step 1200
    collapsing = _write(tmp_path / "collapse", _noisy(n, 0.035 * (0.1 + 0.9 * np.exp(-u / 0.03)), 4),
                        rng.choice([0.0, 1.0], n))
    assert "early_collapse" in {f.kind for f in detect_collapse(collapsing)}


def test_the_smoothing_window_is_a_tenth_of_the_series_with_a_floor():
    from entrodiag.analysis.series import effective_smooth, trailing_median

    assert [effective_smooth(n, 5) for n in (9, 30, 40, 60, 200, 2400)] == [1, 3, 4, 6, 20, 240]
    assert effective_smooth(200, 30) == 20 and effective_smooth(2400, 5, frac=0.05) == 120
    v = np.array([1.0, 1.0, 9.0, 1.0, 1.0, 1.0])
    assert trailing_median(v, 3).tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # one outlier does not move it
