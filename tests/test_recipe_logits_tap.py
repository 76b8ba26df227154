"""training_hooks/logits_tap.py: a hand-written loop whose entropy comes from a LogitsTap.

The recipe runs once (25 steps, ~15 s on 2 CPU cores with one thread) as a subprocess; the tests
read the run back. Measured at 25 steps, seed 0, one thread: mean reward of the first / last 5
steps 0.111 / 0.224, entropy 2.43 / 2.15 nats; the thresholds (0.05 each) leave a wide margin.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import lines_missing_from, snippet_code_lines
from entrodiag import load_run

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "training_hooks" / "logits_tap.py"
STEPS, PROMPTS, GROUP, TOKEN_SAMPLE, LOG_EVERY, R = 25, 32, 8, 4, 5, 3
VOCAB = "0123456789=."


def _run_recipe(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # one thread: tiny models gain nothing from more, and a busy 2-core machine makes OpenMP spin
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(RECIPE), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    out = tmp_path_factory.mktemp("tap") / "run"
    proc = _run_recipe("--steps", str(STEPS), "--out", str(out), "--log-every", str(LOG_EVERY))
    assert proc.returncode == 0, f"recipe failed:\n{proc.stdout}\n{proc.stderr}"
    return out, proc.stdout


def test_run_is_complete(recipe):
    out, stdout = recipe
    run = load_run(out)
    assert run.status == "finished"
    assert run.meta.get("recorder_errors") == 0 and run.meta.get("writer_errors") == 0
    steps = run.steps
    assert steps["step"].to_list() == list(range(STEPS))
    assert (steps["n_responses"] == PROMPTS * GROUP).all()
    # answers stop at the first "." : fewer tokens than B * R, and the mean length says how many
    assert (steps["n_tokens"] < PROMPTS * GROUP * R).all()
    assert (steps["resp_len_mean"] * PROMPTS * GROUP - steps["n_tokens"]).abs().max() < 1e-6
    assert all(0 < h <= math.log(len(VOCAB)) + 1e-4 for h in steps["entropy_mean"])
    for col in ("cov_mean", "logprob_mean", "entropy_pressure", "loss", "reward_mean"):
        assert steps[col].null_count() == 0, col
    assert re.search(r"^entropy +[\d.]+ -> [\d.]+ nats", stdout, re.M)
    assert f"entrodiag inspect {out}" in stdout


def test_token_rows_follow_the_mask_and_carry_text(recipe):
    out, _ = recipe
    run = load_run(out)
    tokens, samples = run.tokens, run.samples
    assert samples.height == STEPS * TOKEN_SAMPLE
    assert tokens.height == samples["length"].sum()  # only the tokens the policy said
    assert all(VOCAB[i] == t for i, t in zip(tokens["token_id"], tokens["token"]))
    for r in samples.iter_rows(named=True):
        assert 1 <= len(r["response"]) <= R
        assert "." not in r["response"][:-1]  # nothing after the stop mark
    assert tokens["logprob"].max() <= 0 and tokens["entropy"].min() >= 0


def test_evals_and_direction(recipe):
    out, _ = recipe
    run = load_run(out)
    assert run.evals["step"].to_list() == [*range(0, STEPS, LOG_EVERY), STEPS - 1]
    assert run.evals["name"].unique().to_list() == ["val/accuracy"]
    first, last = run.steps.head(5), run.steps.tail(5)
    assert last["reward_mean"].mean() > first["reward_mean"].mean() + 0.05
    assert last["entropy_mean"].mean() < first["entropy_mean"].mean() - 0.05


def test_refuses_existing_run_and_helps(recipe):
    out, _ = recipe
    proc = _run_recipe("--out", str(out), timeout=60)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    helped = _run_recipe("--help", timeout=60)
    assert helped.returncode == 0 and "--steps" in helped.stdout


def test_readme_snippet_is_the_recipe_code():
    code = snippet_code_lines("logits_tap.py")
    assert sum("# entrodiag (" in line for line in code) == 4
    missing = lines_missing_from(code, RECIPE)
    assert not missing, f"README snippet lines not in {RECIPE.name}: {missing}"
