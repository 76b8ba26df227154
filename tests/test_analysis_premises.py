"""Verdicts that check their own premises (issue 23, classes 3–7), on small synthetic runs written
through the store's writer or imported from a verl file-logger JSONL (plain floats), so that CI
covers them without the public logs:

3. a reward with a KL penalty in it is not the performance series when the task score is there;
4. R is a mean score: best@k, maj@k, pass@k and std statistics only by ``--metric``;
5. the law applies only where performance rises as entropy falls; otherwise no ceiling, share of
   gain or early prediction is given as a number, in analyze (text and JSON), compare and watch;
6. a steady relative collapse on a sparse log is flagged, and its start is not one point;
7. a log that starts late says so, and flags name the step where the change begins.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from entrodiag import load_run
from entrodiag.analysis import analyze_run, choose_metric, compare_runs, detect_collapse, render_summary
from entrodiag.importers import import_run
from entrodiag.store.writer import RunWriter


def write_run(path, steps, columns: dict, evals: dict | None = None, **meta):
    """A run with these step columns (``{name: values}``) and evaluations (``{name: (steps, values)}``)."""
    steps = [int(s) for s in steps]
    w = RunWriter(path, meta={"source": "test", "world_size": 1, **meta})
    w.append("steps", {"step": steps, "rank": [0] * len(steps),
                       **{k: [float(x) for x in v] for k, v in columns.items()}})
    if evals:
        rows = [(int(s), name, float(v)) for name, (ss, vs) in evals.items() for s, v in zip(ss, vs)]
        w.append("evals", {"step": [r[0] for r in rows], "rank": [0] * len(rows), "name": [r[1] for r in rows],
                           "value": [r[2] for r in rows], "n": [None] * len(rows)})
    w.close("finished")
    return load_run(path)


def verl_log(path, steps, data: dict, evals: dict | None = None):
    """A verl file-logger JSONL (``{"step": N, "data": {...}}`` per line) with these metrics."""
    evals = evals or {}
    with open(path, "w", encoding="utf-8") as f:
        for i, s in enumerate(steps):
            row = {k: float(v[i]) for k, v in data.items()}
            for name, (ss, vs) in evals.items():
                if s in ss:
                    row[name] = float(vs[list(ss).index(s)])
            f.write(json.dumps({"step": int(s), "data": row}) + "\n")
    return path


def wiggle(n: int, amp: float, seed: int = 0) -> np.ndarray:
    return amp * np.random.default_rng(seed).uniform(-1.0, 1.0, n)


# ----------------------------------------------------------------------- 3: KL inside the reward
@pytest.fixture(scope="module")
def kl_run(tmp_path_factory):
    """verl ≥ 0.6 names: the task score falls to 0 while the reward (score − β·KL) rises, because
    the KL penalty shrinks; the entropy rises from step 30 on."""
    root = tmp_path_factory.mktemp("kl")
    n = 60
    steps = np.arange(1, n + 1)
    u = np.linspace(0, 1, n)
    score = 0.6 * (1 - u) + wiggle(n, 0.01, 1)
    penalty = 1.0 * (1 - u) ** 0.5
    entropy = np.where(u < 0.5, 0.5, 0.5 + 1.4 * (u - 0.5)) + wiggle(n, 0.005, 2)
    log = verl_log(root / "verl.jsonl", steps, {
        "actor/entropy": entropy, "critic/score/mean": score, "critic/rewards/mean": score - penalty,
        "actor/reward_kl_penalty": penalty, "actor/reward_kl_penalty_coeff": np.full(n, 0.05),
        "response_length/mean": np.full(n, 100.0)})
    import_run(log, root / "run")
    return load_run(root / "run")


def test_kl_penalised_reward_is_not_the_performance_series(kl_run):
    s = analyze_run(kl_run)
    assert s["reward"]["column"] == "score_mean" and s["reward"]["kl_in_reward"] is True
    assert "critic/rewards/mean" in s["reward"]["reason"] and "KL penalty" in s["reward"]["reason"]
    rows = {r["name"]: r for r in s["dynamics"]["rows"]}
    assert rows["score_mean"].get("performance") and "KL" in rows["reward_mean"]["label"]
    assert rows["reward_mean"]["change"] > 0.3 and rows["score_mean"]["change"] < -0.5  # as logged
    # the explosion is judged on the task score, which fell as the entropy rose (the reward rose)
    flags = {f["kind"]: f for f in s["flags"]["items"]}
    assert "entropy_explosion" in flags and "task score fell" in flags["entropy_explosion"]["message"]
    out = io.StringIO()
    render_summary(s, file=out, width=200)
    assert "reward series = score_mean (task score)" in out.getvalue()
    notes = s["metric_notes"]
    assert "β·KL" in notes["actor/reward_kl_penalty"] and "task score" in notes["critic/score/mean"]


def test_a_reward_differing_from_the_score_is_detected_without_the_penalty_key(tmp_path):
    n = 30
    run = write_run(tmp_path / "r", range(1, n + 1), {
        "entropy_mean": np.linspace(1, 0.5, n), "reward_mean": np.linspace(-0.5, 0.2, n),
        "score_mean": np.linspace(0.5, 0.1, n)})
    from entrodiag.analysis.sources import reward_series

    chosen = reward_series(run)
    assert chosen.column == "score_mean" and chosen.kl and "differs from the task score by up to 1" in chosen.reason
    same = write_run(tmp_path / "same", range(1, n + 1), {
        "entropy_mean": np.linspace(1, 0.5, n), "reward_mean": np.linspace(0.1, 0.5, n),
        "score_mean": np.linspace(0.1, 0.5, n)})
    assert reward_series(same).column == "reward_mean" and reward_series(same).kl is False


def test_watch_status_reads_the_task_score(kl_run):
    from entrodiag.watch.watcher import Watcher

    w = Watcher(kl_run.path, events=None)
    w.poll()
    assert w.status.reward_label == "task score"
    assert w.status.reward == pytest.approx(float(np.mean(kl_run.steps["score_mean"].to_numpy()[-5:])), abs=1e-9)
    assert "task score " in w.status.line()


def test_verl_attachment_records_the_task_score_and_the_penalised_reward_beside_it(tmp_path):
    """The attachment's own seam (``_record``, as both verl paths call it) with a real StepRecorder:
    reward_mean is the task score (token_level_scores), reward_penalised_mean the KL-penalised one."""
    torch = pytest.importorskip("torch")
    from entrodiag.hooks.integrations.common import StepRecorder
    from entrodiag.hooks.integrations.verl import _record

    g = torch.Generator().manual_seed(0)
    B, T = 4, 5
    logp = -torch.rand(B, T, generator=g)
    scores = torch.zeros(B, T)
    scores[:, -1] = torch.tensor([1.0, 0.0, 1.0, 1.0])  # the score sits on the last token
    penalty = 0.1 * torch.rand(B, T, generator=g)
    batch = {"responses": torch.randint(0, 50, (B, T), generator=g), "response_mask": torch.ones(B, T),
             "advantages": torch.randn(B, T, generator=g), "old_log_probs": logp,
             "token_level_scores": scores, "token_level_rewards": scores - penalty,
             "uid": ["a", "a", "b", "b"], "temperature": 1.0}
    rec = StepRecorder(tmp_path / "run", "verl", first_step=1, token_sample=0)
    _record(rec, {"entropy": torch.rand(B, T, generator=g), "logprobs": logp.clone()}, batch)
    rec.close()
    assert rec.errors == 0
    row = load_run(tmp_path / "run").steps.row(0, named=True)
    assert row["reward_mean"] == pytest.approx(0.75)  # mean of the per-response scores
    assert row["reward_penalised_mean"] == pytest.approx(float((scores - penalty).sum(-1).mean()), abs=1e-6)


# ------------------------------------------------------------------ 4: R is a mean score
def test_best_maj_pass_and_std_are_r_only_by_metric(tmp_path):
    n = 40
    steps = np.arange(1, n + 1)
    ev = steps[::4]
    acc = np.linspace(0.2, 0.6, len(ev))
    log = verl_log(tmp_path / "verl.jsonl", steps, {"actor/entropy": np.linspace(1.0, 0.4, n),
                                                    "critic/score/mean": np.linspace(0.2, 0.6, n)}, evals={
        "val-core/gsm8k/reward/best@16/mean": (ev, acc + 0.3),
        "val-core/gsm8k/reward/maj@16/mean": (ev, acc + 0.1),
        "val-aux/gsm8k/reward/std@16": (ev, np.full(len(ev), 0.2)),
        "val-core/gsm8k/reward/pass@16": (ev, acc + 0.35),
        "val-aux/gsm8k/reward/mean@1": (ev, acc - 0.01),
        "val-core/gsm8k/reward/mean@16": (ev, acc),
    })
    import_run(log, tmp_path / "run")
    run = load_run(tmp_path / "run")
    choice = choose_metric(run)
    assert choice.name == "val/gsm8k/reward/mean@16", choice
    assert "best@16" in choice.reason and "only with --metric" in choice.reason
    assert choose_metric(run, "val/gsm8k/reward/best@16/mean").name == "val/gsm8k/reward/best@16/mean"
    assert choose_metric(run, "val/aux/gsm8k/reward/std@16").reason == "chosen with --metric"
    s = analyze_run(run)
    assert s["law"]["metric"] == "val/gsm8k/reward/mean@16"
    assert "mean score over N samples" in s["metric_notes"]["val-core/gsm8k/reward/mean@16"]


# ----------------------------------------------------- 5: the law only where its premise holds
@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    """Entropy falls from 1.0 to 0.3 nats and the validation score falls with it (a < 0), a clean fit."""
    n = 60
    steps = np.arange(n)
    H = np.linspace(1.0, 0.3, n)
    ev = steps[::3]
    R = 0.1 + 0.25 * np.exp(H[ev]) + wiggle(len(ev), 0.004, 3)
    return write_run(tmp_path_factory.mktemp("degen") / "run", steps, {
        "entropy_mean": H, "reward_mean": 0.2 + wiggle(n, 0.02, 4)}, {"val/accuracy": (ev, R)})


def test_a_negative_a_is_not_applicable_and_no_law_number_is_given(degenerate):
    from entrodiag.analysis.verdicts import EARLY_NUMBERS, LAW_NUMBERS

    s = analyze_run(degenerate)
    law = s["law"]
    assert law["a"] < 0 and law["r2"] > 0.9  # the premise fails on a clean fit
    v = law["verdict"]
    assert v["status"] == "not applicable" and "performance fell with entropy" in v["text"]
    assert "degeneration" in v["text"] and v["numbers_shown"] is False
    assert all(law[k] is None for k in LAW_NUMBERS) and "ceiling" not in law["ci"]
    ep = s["early_prediction"]
    assert ep["status"] == "empty" and ep["verdict"]["status"] == "not applicable"
    assert all(row[k] is None for row in ep["rows"] for k in EARLY_NUMBERS if k in row)
    assert "ceiling_exhausted" not in {f["kind"] for f in s["flags"]["items"]}
    json.dumps(s, allow_nan=False)
    out = io.StringIO()
    render_summary(s, file=out, width=200)
    text = out.getvalue()
    share = next(line for line in text.splitlines() if "share of the attainable gain" in line)
    assert "withheld (not applicable)" in share and "%" not in share
    assert "±" not in text.split("Early prediction")[1].split("Flags")[0]


def test_compare_and_watch_give_no_ceiling_where_the_law_does_not_apply(degenerate):
    row = compare_runs([degenerate]).row(0, named=True)
    assert row["law_verdict"] == "not applicable" and row["ceiling"] is None and row["gain_frac"] is None
    assert row["law_a"] < 0
    from entrodiag.watch.watcher import Watcher

    w = Watcher(degenerate.path, events=None)
    w.poll()
    assert w.status.ceiling is None and "ceiling — (not applicable)" in w.status.line()


def test_report_withholds_the_law_numbers(degenerate, tmp_path):
    from entrodiag.report.data import collect

    d = collect(degenerate)
    assert not d.law_fits and d.early == [] and d.fit is not None
    from entrodiag.report.pages import _law_number

    assert _law_number(d, "99.9%") == "withheld (not applicable)"
    from entrodiag.report import build_report

    assert build_report(degenerate.path, tmp_path / "d.pdf").stat().st_size > 0  # the figure without a ceiling


def test_dashboard_law_page_withholds_the_ceiling(degenerate, monkeypatch):
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from entrodiag.dashboard import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(degenerate.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "entrodiag" / "app" / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("page_law.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    assert shown["ceiling b − a"] == "—" and shown["R̂ at the last step"] == "—"
    assert "performance fell with entropy" in " ".join(str(w.value) for w in at.warning).replace("\\", "")
    assert not at.slider and not at.table  # no early prediction


def test_the_premise_uses_the_one_sided_bound_of_a():
    from entrodiag.analysis import fit_entropy_law
    from entrodiag.analysis.verdicts import judge_law

    H = np.linspace(1.2, 0.2, 30)
    rising = fit_entropy_law((H, 0.9 - 0.3 * np.exp(H) + wiggle(30, 0.01, 5)))
    assert judge_law(rising).fits
    flat = fit_entropy_law((H, 0.5 + wiggle(30, 0.05, 6)))
    assert judge_law(flat).status == "poor fit"
    assert judge_law(rising, ["entropy_explosion"]).status == "not applicable"


# ----------------------------------------------------------- 6: a steady collapse, sparse log
def test_a_steady_collapse_on_a_sparse_log_is_flagged_whatever_the_reward(tmp_path):
    """36 points, one every 10 steps: 70% of the start entropy lost, half of the loss in the first
    quarter, still falling; the reward is noise. The first point is an odd low one."""
    n = 36
    steps = 10 * np.arange(1, n + 1)
    u = np.linspace(0, 1, n)
    H = 0.25 + 0.75 * np.exp(-2.5 * u) + wiggle(n, 0.01, 7)
    H[0] = 0.6  # one odd point: the start is not one point
    run = write_run(tmp_path / "r", steps, {"entropy_mean": H, "reward_mean": 0.4 + wiggle(n, 0.1, 8)})
    flags = {f.kind: f for f in detect_collapse(run)}
    assert "entropy_decline" in flags, sorted(flags)
    f = flags["entropy_decline"]
    assert f.evidence["share_lost"] > 0.6 and f.evidence["entropy_start"] == pytest.approx(np.median(H[:3]))
    assert "still falling" in f.message
    s = analyze_run(run)
    row = next(r for r in s["dynamics"]["rows"] if r["name"] == "entropy_mean")
    assert row["window"] == 3 and row["start"] == pytest.approx(np.median(H[:3]))


# --------------------------------------------------------------------- 7: a log that starts late
def test_a_late_log_says_so_and_the_explosion_names_where_the_rise_begins(tmp_path):
    """A resumed run logged from step 101: a dip to its low at step 110, level until step 300, then
    the entropy rises while the reward falls."""
    steps = np.arange(101, 401)
    H = np.full(len(steps), 0.5)
    H[(steps >= 105) & (steps <= 115)] = 0.42  # the low, long before the rise
    rise = steps >= 300
    H[rise] = 0.5 + 0.01 * (steps[rise] - 300)
    R = np.where(rise, 0.6 - 0.005 * (steps - 300), 0.6) + wiggle(len(steps), 0.01, 9)
    run = write_run(tmp_path / "r", steps, {"entropy_mean": H + wiggle(len(steps), 0.003, 10), "reward_mean": R})
    s = analyze_run(run)
    assert s["run"]["late_start"]["first_step"] == 101
    assert any("log starts at step 101: the first 100 steps are missing" in m for m in s["missing"])
    f = next(f for f in s["flags"]["items"] if f["kind"] == "entropy_explosion")
    assert 295 <= f["first_step"] <= 310, f
    assert f["evidence"]["low_step"] < 150
    assert "relative to step 101, the first logged step" in f["message"]


def test_a_collapse_flag_names_its_onset(tmp_path):
    """Level for 40 steps, then the entropy collapses (200 steps of a 400-step run): the flag starts
    where the fall begins, not at the first step."""
    steps = np.arange(0, 200)
    H = np.where(steps < 40, 1.0, np.maximum(0.08, 1.0 - 0.04 * (steps - 40)))
    run = write_run(tmp_path / "r", steps, {"entropy_mean": H + wiggle(len(steps), 0.005, 11),
                                           "reward_mean": 0.4 + wiggle(len(steps), 0.02, 12)},
                    config={"total_steps": 400})
    f = next(f for f in detect_collapse(run) if f.kind == "early_collapse")
    assert 36 <= f.first_step <= 44, f
    assert analyze_run(run)["run"]["late_start"] is None and "relative to step" not in f.message


def test_change_point_finds_a_known_onset():
    from entrodiag.analysis.series import change_point

    x = np.arange(100.0)
    for k in (0, 25, 70):
        y = np.where(x < k, 1.0, 1.0 + 0.05 * (x - k)) + wiggle(100, 0.01, k)
        assert abs(change_point(x, y) - k) <= 2
    assert math.isfinite(change_point(x[:3], x[:3]))


def test_the_dynamics_note_gives_entropys_window_not_the_sparse_mi_proxys(tmp_path):
    """mi_proxy (every 10th step) comes last among the dynamics rows: the note and ``edge_steps`` give
    entropy's window (the row's own ``window``), and name the sparser series' window beside it."""
    n = 300
    mi = [0.1 if s % 10 == 0 else math.nan for s in range(n)]
    run = write_run(tmp_path / "r", range(n), {"entropy_mean": np.linspace(1.0, 0.5, n), "mi_proxy": mi})
    dyn = analyze_run(run)["dynamics"]
    win = {r["name"]: r["window"] for r in dyn["rows"]}
    assert win["entropy_mean"] > win["mi_proxy"] and dyn["edge_steps"] == win["entropy_mean"]
    assert dyn["note"].startswith(f"start/end = median of the first/last {win['entropy_mean']} step(s)")
    assert f"mi_proxy: {win['mi_proxy']}" in dyn["note"]
