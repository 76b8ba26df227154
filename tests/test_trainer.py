"""The built-in GRPO trainer end to end: real dynamics on the tiny preset, a Hugging Face model
from a local folder with a JSONL task, DDP under torchrun, and resume after SIGKILL."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.trainer import load_config
from entrodiag.trainer.checkpoint import list_checkpoints


def test_tiny_arith_test_preset_learns(tiny_run):
    out, elapsed = tiny_run
    run = load_run(out)
    steps = run.steps
    cfg = load_config("tiny-arith-test")
    assert run.status == "finished" and steps["step"].to_list() == list(range(cfg.steps))
    first, last = steps.head(10), steps.tail(10)
    assert last["entropy_mean"].mean() < first["entropy_mean"].mean() - 0.05, "entropy must fall"
    # the training reward is noisy step to step: its least-squares trend over the run must rise,
    # and so must the held-out sampled accuracy (500 prompts) from the first evaluation to the last
    slope = np.polyfit(steps["step"].to_numpy(), steps["reward_mean"].to_numpy(), 1)[0]
    assert slope * cfg.steps > 0.02, "reward must rise"
    acc = run.evals.filter(pl.col("name") == "val/accuracy_sampled").sort("step")["value"]
    assert acc[-1] > acc[0] + 0.04
    evals = run.evals
    assert set(evals["name"]) == {"val/accuracy_sampled", "val/accuracy_greedy"}
    assert evals.filter(pl.col("name") == "val/accuracy_sampled")["step"].to_list() == [0, 10, 20, 30, 40, 49]
    # the trainer's own columns: PPO clip shares, measured entropy after the update, lr warm-up
    row = steps.row(5, named=True)
    for col in ("loss", "clip_low_frac", "clip_high_frac", "grad_norm", "lr", "entropy_after", "step_time"):
        assert row[col] is not None, col
    assert steps["lr"][0] < steps["lr"][-1] == pytest.approx(cfg.lr)
    assert abs(row["entropy_after"] - row["entropy_mean"]) < 0.1
    assert run.tokens["token"].drop_nulls().len() > 0 and run.samples["prompt"][0].endswith("=")
    assert run.meta["source"] == "builtin" and run.meta["intervention"] == "none"
    assert [s for s, _ in list_checkpoints(out)] == [24, 49]
    print(f"tiny-arith-test: {elapsed:.1f} s including the warm start")


def _hf_model(folder: Path) -> None:
    """A random 1-layer Llama with a character-level fast tokenizer, saved like any HF model."""
    from char_llama import save_char_llama

    save_char_llama(folder, "0123456789+-=?. abcdefghijklmnopqrstuvwxyzW", hidden_size=32, intermediate_size=64,
                    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)


def test_hugging_face_model_from_a_local_path_with_a_jsonl_task(tmp_path, capsys):
    _hf_model(tmp_path / "model")
    task = tmp_path / "math.jsonl"
    # prompts of different lengths: the batch is left-padded
    rows = [{"prompt": f"what is {a}+{b}?", "answer": str(a + b)} for a in range(3, 9) for b in (2, 5, 11, 14, 120)]
    task.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    code = main(["train", "--model", str(tmp_path / "model"), "--task", str(task), "--steps", "2",
                 "--prompts-per-step", "4", "--group-size", "3", "--max-new-tokens", "5", "--eval-every", "1",
                 "--micro-batch-size", "5", "--intervention", "kl_cov", "--kl-coef", "0.05", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.steps["step"].to_list() == [0, 1] and run.meta["model"] == "model"
    assert run.meta["task"] == "math" and run.meta["intervention"] == "kl_cov"
    assert run.steps["n_responses"].to_list() == [12, 12]
    assert run.steps["kl"].to_list()[0] >= 0 and run.steps["selected_frac"].drop_nulls().len() == 2
    assert run.evals.filter(pl.col("step") == 0).height == 2
    assert run.samples["prompt"][0].startswith("what is")
    # the checkpoint is a model folder the trainer (and the probe) can open again
    ckpt = list_checkpoints(out)[-1][1]
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "tokenizer.json").is_file()


def test_left_padding_does_not_change_what_a_prompt_generates(tmp_path):
    import torch

    from entrodiag.trainer.model import load_policy
    from entrodiag.trainer.rollout import encode_prompts, generate

    _hf_model(tmp_path / "model")
    model, tok = load_policy(tmp_path / "model")
    texts = ["what is 3+2?", "what is 100+120?"]
    both = generate(model, encode_prompts(tok, texts), 6, tok.eos_token_id, tok.pad_token_id, greedy=True)
    alone = generate(model, encode_prompts(tok, texts[:1]), 6, tok.eos_token_id, tok.pad_token_id, greedy=True)
    assert encode_prompts(tok, texts).mask[0, 0].item() is False  # the short prompt is padded
    n = alone.response.shape[1]  # the batch may run longer for the other prompt: pad after that
    assert torch.equal(both.response[0, :n], alone.response[0]) and not both.mask[0, n:].any()
    torch.testing.assert_close(both.old_logp[0, :n], alone.old_logp[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.entropy[0, :n], alone.entropy[0], atol=1e-5, rtol=1e-5)


def test_bad_configuration_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--intervention", "bogus", "--out", str(tmp_path / "r")]) == 2
    assert "intervention 'bogus' is not one of" in capsys.readouterr().err
    assert main(["train", "--task", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "c.toml"
    bad.write_text('lr = 1e-4\nlearning_rate = 3\n')
    assert main(["train", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "unknown configuration field(s): learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_toml_file_then_command_line_override_the_preset(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\npreset = "tiny-arith-test"\nlr = 1e-4\nintervention = "clip_cov"\n')
    cfg = load_config(path=f, lr=2e-4)
    assert (cfg.steps, cfg.epochs, cfg.lr, cfg.intervention) == (50, 4, 2e-4, "clip_cov")


def test_two_processes_under_torchrun_record_both_ranks(ddp_run):
    """The session's two-rank run (conftest ``ddp_run``: ``DDP_TRAIN`` under torchrun)."""
    run = load_run(ddp_run)
    by_rank = run.steps_by_rank
    assert run.meta["world_size"] == 2 and run.status == "finished"
    for step in range(4):
        rows = by_rank.filter(pl.col("step") == step)
        assert sorted(rows["rank"].to_list()) == [0, 1]
        assert rows["n_responses"].to_list() == [4 * 4, 4 * 4]  # 8 prompts split over 2 ranks, G = 4
    assert run.steps["n_responses"].to_list() == [32] * 4
    assert run.evals.filter(pl.col("name") == "val/accuracy_sampled")["step"].to_list() == [0, 2, 3]


def test_resume_after_sigkill_records_each_step_once(sigkilled_run):
    """The session's killed run (conftest ``sigkilled_run``: ``SIGKILLED``, killed with SIGKILL
    after its first checkpoint, step 3, while later steps were being recorded): the resume drops
    what came after the checkpoint and each step is recorded exactly once. (``--val-size 100``: the
    warm start the other short runs share; evaluations a fifth of the preset's.)"""
    out, ckpt_step = sigkilled_run[:2]
    total = 10
    assert ckpt_step < total - 1, "the run finished before it could be killed"
    run = load_run(out)
    assert run.status == "finished" and run.steps["step"].to_list() == list(range(total))
    # each step exactly once in the files themselves (one record_batch row per step), not only
    # after the reader's coalescing
    raw = pl.concat([pl.from_arrow(pq.read_table(p, columns=["step", "rank"])) for p in (out / "steps").glob("part-*")])
    assert raw.group_by("step", "rank").len()["len"].max() == 1
    assert raw.height == total
    evals = run.evals.filter(pl.col("name") == "val/accuracy_greedy")
    assert evals["step"].to_list() == [0, 5, 9]
    samples = pl.concat([pl.from_arrow(pq.read_table(p, columns=["step", "sample_id"])) for p in (out / "samples").glob("part-*")])
    counts = samples.group_by("step").len()
    assert counts.height == total and set(counts["len"]) == {4}  # token_sample = 4 responses per step
