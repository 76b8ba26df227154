"""LogitsTap on a tiny Hugging Face model, and the CLI's instant --help / --version / inspect."""

import subprocess
import sys
import time

import pytest
import torch
from conftest import batch_kwargs
from schema_check import inspected

import entrodiag
from entrodiag import LogitsTap, Recorder
from entrodiag.cli import main


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def test_logits_tap_matches_direct_computation_and_leaves_gradients_alone():
    model = tiny_llama()
    ids = torch.randint(0, 50, (3, 9))
    out_plain = model(input_ids=ids)
    out_plain.logits.sum().backward()
    grad_plain = model.lm_head.weight.grad.clone()
    model.zero_grad()
    with LogitsTap(model) as tap:
        out = model(input_ids=ids)
        out.logits.sum().backward()
    assert torch.equal(model.lm_head.weight.grad, grad_plain)
    logp = torch.log_softmax(out.logits[:, :-1].double(), -1)
    ref_h = -(logp.exp() * logp).sum(-1)
    ref_lp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert tap.entropy.shape == tap.logprobs.shape == (3, 8) and torch.equal(tap.token_ids, ids[:, 1:])
    torch.testing.assert_close(tap.entropy.double(), ref_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(tap.logprobs.double(), ref_lp, atol=1e-5, rtol=0)
    assert not tap.entropy.requires_grad
    model(input_ids=ids[:, :4])  # removed: no longer updated
    assert tap.entropy.shape == (3, 8)


def test_logits_tap_positional_input_and_missing_head():
    model = tiny_llama()
    tap = LogitsTap(model)
    model(torch.randint(0, 50, (2, 5)))
    assert tap.entropy.shape == (2, 4)
    tap.remove()
    with pytest.raises(ValueError, match="head="):
        LogitsTap(torch.nn.Linear(3, 3))


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys; from entrodiag.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'polars', 'transformers', 'pyarrow') if m in sys.modules))")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")
    assert "inspect" in out.stdout and time.perf_counter() - t < 5
    version = subprocess.run([sys.executable, "-m", "entrodiag.cli", "--version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.strip() == f"entrodiag {entrodiag.__version__}"


def test_inspect_prints_summary_and_json(tmp_path, capsys):
    with Recorder(tmp_path / "r") as rec:
        for step in range(3):
            rec.record_batch(step, **batch_kwargs(step))
        rec.log_eval(2, "val/accuracy", 0.75, n=4)
    assert main(["inspect", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "(finished)" in text and "steps      3" in text and "val/accuracy = 0.75 at step 2" in text
    assert main(["inspect", str(tmp_path), "--json"]) == 0  # a folder holding exactly one run
    data = inspected(capsys.readouterr().out)
    assert data["steps"] == 3 and data["last_step"]["step"] == 2 and data["evals"]["val/accuracy"]["value"] == 0.75


def test_inspect_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("entrodiag inspect:") and "no run.json" in err and "\n" not in err
