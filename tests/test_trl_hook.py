"""``RecordingGRPOTrainer``: TRL's GRPOTrainer recorded into an entrodiag run.

``training_hooks/trl_grpo.py`` runs once as a subprocess (3 steps, offline, CPU); its run is
compared with TRL's own log (the ``trainer_state.json`` the recipe saves). Smaller in-process
tests cover construction errors, a run that fails, and a caller-owned Recorder.
"""

from __future__ import annotations

import json
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
RECIPE = ROOT / "training_hooks" / "trl_grpo.py"
STEPS, PROMPTS, GROUP, EVAL_EVERY, TOKEN_SAMPLE = 3, 4, 4, 2, 2
VOCAB = ["<pad>", "<eos>", *"0123456789="]


def _env() -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # one thread: tiny models gain nothing from more, and a busy 2-core machine makes OpenMP spin
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    pytest.importorskip("trl")
    out = tmp_path_factory.mktemp("trl") / "run"
    proc = subprocess.run(
        [sys.executable, str(RECIPE), "--out", str(out), "--steps", str(STEPS), "--prompts", str(PROMPTS),
         "--group-size", str(GROUP), "--eval-every", str(EVAL_EVERY), "--token-sample", str(TOKEN_SAMPLE)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"recipe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    history = json.loads((out / "trl" / "trainer_state.json").read_text())["log_history"]
    train_logs = {e["step"]: e for e in history if "entropy" in e and "eval_entropy" not in e}
    eval_logs = {e["step"]: e for e in history if "eval_reward" in e}
    return out, proc.stdout, train_logs, eval_logs


def test_run_complete(recipe):
    out, stdout, _, _ = recipe
    run = load_run(out)
    assert run.status == "finished"
    assert run.meta["source"] == "trl"
    assert run.meta["trl_version"]
    assert run.meta["trl_hook_errors"] == 0
    assert run.meta["recorder_errors"] == 0 and run.meta["writer_errors"] == 0
    assert run.meta["entropy_temperature"] == 1.0
    assert run.meta["config"]["max_steps"] == STEPS
    assert run.meta["trl_train_summary"]["train_runtime"] > 0
    steps = run.steps
    assert steps["step"].to_list() == list(range(1, STEPS + 1))  # TRL's 1-based optimizer steps
    assert (steps["n_responses"] == PROMPTS * GROUP).all()
    assert steps["n_groups"].to_list() == [PROMPTS] * STEPS
    for col in ("loss", "lr", "grad_norm", "clip_high_frac", "clip_low_frac", "cov_mean", "entropy_pressure"):
        assert steps[col].null_count() == 0, col
    assert f"entrodiag inspect {out}" in stdout


def test_entropy_matches_trl_logged_entropy(recipe):
    """Done-when: per-step token-mean entropy equals TRL's own logged `entropy` within 1e-4."""
    out, _, train_logs, _ = recipe
    steps = load_run(out).steps
    assert sorted(train_logs) == steps["step"].to_list()
    errors = [abs(h - train_logs[s]["entropy"]) for s, h in zip(steps["step"], steps["entropy_mean"])]
    print(f"max |entropy_mean - TRL entropy| = {max(errors):.2e}")
    assert max(errors) < 1e-4
    assert steps["trl/entropy"].to_list() == pytest.approx([train_logs[s]["entropy"] for s in steps["step"]])
    assert all(0 < h <= math.log(len(VOCAB)) + 1e-4 for h in steps["entropy_mean"])


def test_rewards_groups_lengths_match_trl(recipe):
    out, _, train_logs, _ = recipe
    steps = load_run(out).steps
    for row in steps.iter_rows(named=True):
        logged = train_logs[row["step"]]
        assert row["reward_mean"] == pytest.approx(logged["reward"], abs=1e-6)
        assert row["zero_adv_group_frac"] == pytest.approx(logged["frac_reward_zero_std"], abs=1e-9)
        assert row["resp_len_mean"] == pytest.approx(logged["completions/mean_length"], abs=1e-6)
        assert row["loss"] == pytest.approx(logged["loss"], abs=1e-6)
        assert row["lr"] == pytest.approx(logged["learning_rate"])


def test_token_rows_carry_decoded_text(recipe):
    out, _, _, _ = recipe
    run = load_run(out)
    tokens, samples = run.tokens, run.samples
    assert tokens.height > 0 and tokens["token"].null_count() == 0
    assert all(VOCAB[i] == t for i, t in zip(tokens["token_id"], tokens["token"]))
    assert tokens["entropy"].null_count() == 0 and tokens["logprob"].null_count() == 0
    assert tokens["group_id"].null_count() == 0
    assert samples.height == STEPS * TOKEN_SAMPLE
    assert all(re.fullmatch(r"\d\d=", p) for p in samples["prompt"])
    for r in samples.iter_rows(named=True):  # the response is the decoded tokens of that sample
        toks = tokens.filter((tokens["step"] == r["step"]) & (tokens["sample_id"] == r["sample_id"]))
        assert "".join(toks.sort("pos")["token"]) == r["response"]
        assert r["length"] == toks.height
        answer = "".join(str((int(r["prompt"][1]) + k) % 10) for k in range(1, 5))
        said = r["response"].replace("<pad>", "").replace("<eos>", "")  # TRL scores skip_special_tokens text
        assert r["reward"] == pytest.approx(sum(a == b for a, b in zip(said[:4], answer)) / 4)


def test_evals_are_trl_eval_metrics(recipe):
    out, _, _, eval_logs = recipe
    evals = load_run(out).evals
    rewards = evals.filter(evals["name"] == "val/reward")
    assert rewards["step"].to_list() == sorted(eval_logs)
    expected = [eval_logs[s]["eval_reward"] for s in sorted(eval_logs)]
    assert rewards["value"].to_list() == pytest.approx(expected)
    assert "val/entropy" not in evals["name"].to_list()  # a diagnostic, kept as a step column
    assert "eval_entropy" in load_run(out).steps.columns


def test_importing_trls_trainer_state_gives_the_same_entropy(recipe, tmp_path):
    """The same TRL run, imported from its trainer_state.json, has the entropy the hook recorded."""
    from entrodiag.importers import import_run

    out, _, _, _ = recipe
    report = import_run(out / "trl" / "trainer_state.json", tmp_path / "imported")
    assert report.format == "trainer_state" and report.steps == STEPS
    recorded, imported = load_run(out).steps, load_run(tmp_path / "imported").steps
    assert imported["entropy_mean"].to_list() == pytest.approx(recorded["entropy_mean"].to_list(), abs=1e-4)
    assert imported["reward_mean"].to_list() == pytest.approx(recorded["reward_mean"].to_list(), abs=1e-6)


def test_readme_snippet_is_the_recipe_code():
    """The README's TRL snippet is the recipe's code, line for line."""
    code = snippet_code_lines("trl_grpo.py")
    assert sum("# entrodiag (" in line for line in code) == 2
    missing = lines_missing_from(code, RECIPE)
    assert not missing, f"README snippet lines not in {RECIPE.name}: {missing}"


# ------------------------------------------------------------------------------- in-process


def test_hooks_import_without_trl():
    """`import entrodiag.hooks` (and the module itself) never imports trl."""
    code = ("import sys, entrodiag.hooks, entrodiag.hooks.trl as t; "
            "assert 'trl' not in sys.modules, 'trl imported'; print(t.SUPPORTED_TRL)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ">=0.20,<2" in proc.stdout


def test_version_check():
    from entrodiag.hooks.trl import check_trl_version

    for ok in ("0.20.0", "0.29.1", "1.16.0", "1.17.0.dev0"):
        check_trl_version(ok)
    for bad in ("0.19.1", "0.8.6", "2.0.0", "garbage"):
        with pytest.raises(RuntimeError, match="supports trl >=0.20,<2"):
            check_trl_version(bad)


def _tiny_trainer(run_dir=None, recorder=None, reward=None, steps=1, config=None, **extra):
    """A 1-layer Llama GRPO trainer on the count-on task, built in code (no download)."""
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig

    from entrodiag.hooks.trl import RecordingGRPOTrainer

    torch.manual_seed(0)
    tk = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16, pad_token_id=0,
        eos_token_id=1, bos_token_id=None))
    data = Dataset.from_list([{"prompt": f"{i:02d}="} for i in range(16)])
    renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__  # transformers 5
    args = GRPOConfig(**{"output_dir": str(Path(run_dir or recorder.path).parent / "trl-out"), "max_steps": steps,
                         "per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 3,
                         "logging_steps": 1, "use_cpu": True, "bf16": False, "report_to": "none",
                         "save_strategy": "no", "disable_tqdm": True,
                         "activation_checkpointing" if renamed else "gradient_checkpointing": False, **(config or {})})
    reward = reward or (lambda completions, **_: [float(c[:1] == "1") for c in completions])
    return RecordingGRPOTrainer(model=model, processing_class=tok, reward_funcs=reward, args=args,
                                train_dataset=data, entrodiag_run_dir=run_dir, entrodiag_recorder=recorder,
                                **extra)


def test_construction_errors(tmp_path, monkeypatch):
    trl = pytest.importorskip("trl")
    from entrodiag.hooks.trl import RecordingGRPOTrainer

    with pytest.raises(ValueError, match="exactly one"):
        RecordingGRPOTrainer(model=None)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds a run"):
        RecordingGRPOTrainer(model=None, entrodiag_run_dir=tmp_path / "old")
    monkeypatch.setattr(trl, "__version__", "0.19.0")
    with pytest.raises(RuntimeError, match="found trl 0.19.0"):
        RecordingGRPOTrainer(model=None, entrodiag_run_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_failed_training_marks_run_failed(tmp_path):
    pytest.importorskip("trl")
    calls = []

    def flaky(completions, **_):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("reward server down")
        return [0.5] * len(completions)

    trainer = _tiny_trainer(run_dir=tmp_path / "run", reward=flaky, steps=3)
    with pytest.raises(RuntimeError, match="reward server down"):
        trainer.train()
    run = load_run(tmp_path / "run")
    assert run.status == "failed"
    assert run.steps["step"].to_list() == [1]  # the step before the failure is kept
    assert trainer.entrodiag_recorder is None  # closed


def test_caller_owned_recorder_stays_open(tmp_path):
    pytest.importorskip("trl")
    from entrodiag import Recorder

    rec = Recorder(tmp_path / "run", source="trl", token_sample="all")
    trainer = _tiny_trainer(recorder=rec, steps=1)
    trainer.train()
    assert trainer.entrodiag_recorder is rec
    rec.log_eval(1, "val/accuracy", 0.5)  # still open: the caller adds to it, then closes it
    rec.close()
    run = load_run(tmp_path / "run")
    assert run.status == "finished" and run.steps.height == 1 and run.evals.height == 1
    assert run.samples.height == 8 and run.samples["response"].null_count() == 0


def test_stop_on_sets_trls_stop_flag(tmp_path, monkeypatch):
    """A new flag at ``entrodiag_stop_on`` ends TRL's training early; the run says ``stopped``.
    (The detectors themselves are tested on runs built to trigger them; here a watcher that
    raises a critical flag from the fourth step on stands in for a collapsing run.)"""
    pytest.importorskip("trl")
    from entrodiag.analysis import Flag
    from entrodiag.watch import Watcher

    real_poll = Watcher.poll

    def poll(self, *, force=False):
        real_poll(self, force=force)
        if self.status.step is not None and self.status.step >= 4:
            return [Flag("vanishing_signal", "critical", 1, self.status.step, {"share": 0.9}, "raise the lr less")]
        return []

    monkeypatch.setattr(Watcher, "poll", poll)
    trainer = _tiny_trainer(run_dir=tmp_path / "run", steps=12, entrodiag_stop_on="critical",
                            entrodiag_watch_every=2)
    trainer.train()
    assert trainer.state.global_step < 12
    run = load_run(tmp_path / "run")
    assert run.status == "stopped"
    stop = run.events.filter(run.events["kind"] == "stop")
    assert stop.height == 1 and stop["name"][0] == "vanishing_signal" and stop["step"][0] == trainer.state.global_step
    with pytest.raises(ValueError, match="entrodiag_stop_on"):
        _tiny_trainer(run_dir=tmp_path / "other", entrodiag_stop_on="fatal")


def test_sigterm_saves_trls_checkpoint_and_stops_the_run(tmp_path):
    """SIGTERM during ``train()`` (sent here by the reward function of the second generation
    batch): TRL finishes that optimizer step, saves ``checkpoint-2`` through its own
    ``should_save``, stops through ``should_training_stop``; the run is ``stopped`` with a stop
    event naming the signal, and ``train()`` raises ``TrainingStopped`` (exit code 143)."""
    pytest.importorskip("trl")
    import signal

    from entrodiag.hooks.signals import TrainingStopped

    calls = []

    def reward(completions, **_):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return [float(c[:1] == "1") for c in completions]

    before = signal.getsignal(signal.SIGTERM)
    trainer = _tiny_trainer(run_dir=tmp_path / "run", reward=reward, steps=6)
    with pytest.raises(TrainingStopped) as stopped:
        trainer.train()
    assert stopped.value.code == 128 + signal.SIGTERM and stopped.value.signame == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is gone again
    assert trainer.state.global_step == 2
    assert (tmp_path / "trl-out" / "checkpoint-2" / "trainer_state.json").is_file()
    run = load_run(tmp_path / "run")
    assert run.status == "stopped" and run.steps["step"].to_list() == [1, 2]
    stop = run.events.filter(run.events["kind"] == "stop")
    assert stop.height == 1 and stop["name"][0] == "SIGTERM" and stop["step"][0] == 2
    assert trainer.entrodiag_recorder is None  # closed


def test_sigterm_in_a_step_that_cannot_finish_in_time_saves_the_last_finished_step(tmp_path):
    """The reward function of the second generation batch sends SIGTERM, then takes 2.2 s (a
    slow generation): with ``entrodiag_stop_grace=3`` step 2 cannot finish with its checkpoint
    before the deadline, so it is abandoned before its update; TRL's checkpoint of step 1 is
    saved and the run closed as ``stopped``, naming the abandoned step, within the grace."""
    pytest.importorskip("trl")
    import signal
    import time

    from entrodiag.hooks.signals import TrainingStopped

    calls, sent = [], []

    def reward(completions, **_):
        calls.append(1)
        if len(calls) == 2:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2.2)
        return [float(c[:1] == "1") for c in completions]

    grace = 3.0
    trainer = _tiny_trainer(run_dir=tmp_path / "run", reward=reward, steps=6, entrodiag_stop_grace=grace)
    with pytest.raises(TrainingStopped) as stopped:
        trainer.train()
    elapsed = time.monotonic() - sent[0]
    assert stopped.value.code == 128 + signal.SIGTERM
    assert elapsed < grace, f"stopped {elapsed:.2f} s after the signal"
    assert trainer.state.global_step == 1
    saved = tmp_path / "trl-out" / "checkpoint-1" / "trainer_state.json"
    assert json.loads(saved.read_text())["global_step"] == 1
    assert not (tmp_path / "trl-out" / "checkpoint-2").exists()
    run = load_run(tmp_path / "run")
    assert run.status == "stopped" and run.steps["step"].to_list() == [1]
    stop = run.events.filter(run.events["kind"] == "stop")
    detail = json.loads(stop["detail"][0])
    assert stop.height == 1 and stop["step"][0] == 1 and detail["abandoned_step"] == 2
    assert detail["checkpoint"].endswith("checkpoint-1") and detail["stop_grace_s"] == grace
    assert 0 < detail["checkpoint_s"] < detail["after_signal_s"] < grace
    timing = run.meta["checkpoint_time"]
    assert timing["last_step"] == 1 and timing["last_s"] == pytest.approx(detail["checkpoint_s"], abs=0.05)
    assert timing["bytes"] >= 3 * 4 * sum(p.numel() for p in trainer.model.parameters())  # weights and AdamW's moments
    with pytest.raises(ValueError, match="entrodiag_stop_grace"):
        _tiny_trainer(run_dir=tmp_path / "other", entrodiag_stop_grace=0)


def test_entropy_control_sets_trls_coefficient_and_clip(tmp_path):
    """``entrodiag_entropy_control``: pi_coef drives TRL's own entropy_coef (TRL logs the value it
    applied, which must equal control/coef), pi_clip its epsilon_high and epsilon_low (the clip
    bounds only, over its whole effort range); both follow the PI law."""
    pytest.importorskip("trl")
    args = {"target": 3.0, "control_from": 2, "gains": (0.5, 0.1)}  # a random 13-token model: H < 3
    trainer = _tiny_trainer(run_dir=tmp_path / "coef", steps=3, entrodiag_entropy_control="pi_coef",
                            entrodiag_control_args=args)
    trainer.train()
    s = load_run(tmp_path / "coef").steps.sort("step")
    coef, err = s["control/coef"].to_list(), s["control/error"].to_list()
    hi = trainer._ed_control.ctl.hi  # pi_coef's upper bound (0.3)
    assert s["control/active"].to_list() == [0.0, 1.0, 1.0] and coef[0] == 0.0
    assert err[0] == pytest.approx(3.0 - s["entropy_mean"][0])
    assert coef[1] == pytest.approx(min(0.5 * err[0] + 0.1 * err[0], hi))
    assert coef[2] == pytest.approx(min(0.5 * err[1] + 0.1 * (err[0] + err[1]), hi))
    assert s["trl/entropy_coef"].to_list() == pytest.approx(coef)  # what TRL applied
    assert trainer.entropy_coef == pytest.approx(coef[2])  # the last batch's, set on TRL

    trainer = _tiny_trainer(run_dir=tmp_path / "clip", steps=3, entrodiag_entropy_control="pi_clip",
                            entrodiag_control_args={"target": 3.0, "control_from": 2})
    trainer.train()
    s = load_run(tmp_path / "clip").steps.sort("step")
    clip, low, err = s["control/clip_high"].to_list(), s["control/clip_low"].to_list(), s["control/error"].to_list()
    kp, ki = trainer._ed_control.ctl.gains
    assert clip[0] == 0.2 and low[0] == 0.2 and s["control/detach"].to_list() == [0.0] * 3
    for i, u in ((1, kp * err[0] + ki * err[0]), (2, kp * err[1] + ki * (err[0] + err[1]))):
        u = min(max(u, -1.0), 1.0)  # no covariance clip in TRL: the effort spans the bounds' whole range
        assert s["control/effort"][i] == pytest.approx(u)
        assert clip[i] == pytest.approx(0.2 + u * (0.5 - 0.2) if u >= 0 else 0.2 - u * (0.02 - 0.2))
        assert low[i] == pytest.approx(0.2 + u * (0.02 - 0.2) if u >= 0 else 0.2 - u * (0.5 - 0.2))
    assert trainer.epsilon_high == pytest.approx(clip[2]) and trainer.epsilon_low == pytest.approx(low[2])
    meta = load_run(tmp_path / "clip").meta  # the controller's labels, where analyze and the report read them
    assert meta["entropy_control"] == "pi_clip" and meta["entropy_schedule"] == "constant"
    assert meta["entropy_control_from"] == 2
    from entrodiag.analysis.control import control_summary
    from entrodiag.hooks.trl_control import note_control
    from entrodiag.trainer.controllers import EntropyControl

    assert control_summary(tmp_path / "clip").mode == "pi_clip"
    noted: dict = {}
    note_control(type("Rec", (), {"update_meta": lambda self, **kw: noted.update(kw)})(),
                 EntropyControl("pi_coef", schedule="linear:1.0,0.8@40", control_from=5))
    assert noted == {"entropy_control": "pi_coef", "entropy_schedule": "linear:1,0.8@40", "entropy_control_from": 5,
                     "entropy_guard": 1.5}

    with pytest.raises(ValueError, match="detach=False"):  # TRL cannot apply the covariance clip
        trainer._ed_make_control(EntropyControl("pi_clip", target=1.0), {})
    with pytest.raises(ValueError, match="cannot set clip_high, detach"):  # the drop-in sets these itself
        trainer._ed_make_control("pi_clip", {"target": 1.0, "detach": True, "clip_high": 0.3})
    # a schedule by name ends at TRL's max_steps (its last optimizer step), or at the one it states
    sched = trainer._ed_make_control("pi_clip", {"schedule": "linear:1.0,0.8", "control_from": 1})
    assert sched.end_step == trainer.args.max_steps == 3 and sched.guard == 1.5
    for s in range(1, 11):
        sched.observe(s, 2.0)
    assert sched.target_at(3) == pytest.approx(1.6) and sched.target_at(2) == pytest.approx(1.8)
    assert trainer._ed_make_control("pi_clip", {"schedule": "cosine:1,0.5@40"}).schedule.end_step == 40
    trainer.use_adaptive_entropy = True  # TRL's own adaptive coefficient is on
    with pytest.raises(ValueError, match="both set the entropy coefficient"):
        trainer._ed_make_control("pi_coef", {"target": 1.0})


def test_entropy_control_resumes_from_a_trl_checkpoint_exactly(tmp_path):
    """The controller's state goes into TRL's checkpoint (``entrodiag_control.json``) and
    ``train(resume_from_checkpoint=...)`` restores it: the state saved after step 3 is the
    uninterrupted run's state after step 3, bit for bit; the resumed run continues the integrator
    from it (integral = saved + error, exactly) and logs the uninterrupted run's coefficient and
    integral at steps 4-6 (TRL's resume itself is not bit-exact on the entropy: ~1e-6 nats), and
    ends in its controller state."""
    pytest.importorskip("trl")
    from entrodiag.hooks.trl import CONTROL_FILE

    gains = (0.1, 0.05)  # unsaturated here (the coefficient stays below 0.3): the integral is Σ error
    ctl = {"entrodiag_entropy_control": "pi_coef",
           "entrodiag_control_args": {"target": 3.0, "control_from": 2, "gains": gains}}
    save = {"save_strategy": "steps", "save_steps": 3}
    full = _tiny_trainer(run_dir=tmp_path / "full" / "run", steps=6, config=save, **ctl)
    full.train()
    part = _tiny_trainer(run_dir=tmp_path / "part" / "run", steps=3, config=save, **ctl)
    part.train()
    ckpt = tmp_path / "part" / "trl-out" / "checkpoint-3"
    saved = json.loads((ckpt / CONTROL_FILE).read_text())
    assert saved == json.loads((tmp_path / "full" / "trl-out" / "checkpoint-3" / CONTROL_FILE).read_text())
    assert saved == part._ed_control.state_dict() and saved["controller"]["integral"] != 0
    # a fresh trainer (a new process in real life): its controller starts from zero until restored
    resumed = _tiny_trainer(run_dir=tmp_path / "part" / "resumed", steps=6, config=save, **ctl)
    assert resumed._ed_control.ctl.integral == 0
    resumed.train(resume_from_checkpoint=str(ckpt))
    cols = ["step", "entropy_mean", "control/error", "control/coef", "control/integral", "control/active"]
    a = load_run(tmp_path / "full" / "run").steps.sort("step").select(cols)
    b = load_run(tmp_path / "part" / "resumed").steps.sort("step").select(cols)
    assert b["step"].to_list() == [4, 5, 6] and b["control/active"].to_list() == [1.0] * 3
    err, integral, coef = (b[c].to_list() for c in ("control/error", "control/integral", "control/coef"))
    assert integral[0] == saved["controller"]["integral"] + err[0]  # continued, not restarted
    assert integral[1] == integral[0] + err[1]
    assert coef[0] == pytest.approx(gains[0] * saved["last_error"] + gains[1] * saved["controller"]["integral"])
    assert coef[1] == pytest.approx(gains[0] * err[0] + gains[1] * integral[0])
    for name in cols[1:]:
        assert b[name].to_list() == pytest.approx(a[name].to_list()[3:], rel=1e-5), name
    sa, sb = full._ed_control.state_dict(), resumed._ed_control.state_dict()
    assert sb["controller"] == pytest.approx(sa["controller"], rel=1e-5)
    assert (sb["mode"], sb["target"], sb["control_from"]) == (sa["mode"], sa["target"], sa["control_from"])
