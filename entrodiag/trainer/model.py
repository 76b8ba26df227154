"""Policies: the tiny Llama-style model, and loading any policy (a saved one, a Hugging Face
model folder, a GGUF file or a named model).

A saved policy is a Hugging Face model folder (``config.json`` + ``model.safetensors``); the tiny
model's folder also holds ``char_tokenizer.json``. ``load_policy`` reads either kind, so
checkpoints of the built-in trainer open with ``--model PATH`` like any local model. The
tokenizers live in :mod:`.tokenizers`, writing a policy folder in :mod:`.policy_files` (both
names are re-exported here).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .hf_models import is_named, load_gguf, named_model_folder
from .policy_files import quiet_transformers, save_policy
from .prompts import check_format
from .tokenizers import CHAR_TOKENIZER_FILE, TINY_CHARS, CharTokenizer, HFTokenizer

__all__ = ["CHAR_TOKENIZER_FILE", "TINY_CHARS", "CharTokenizer", "HFTokenizer", "load_policy", "n_params",
           "quiet_transformers", "resolve_model", "save_policy", "tiny_config"]


def tiny_config(vocab_size: int):
    """Llama-style, 2 layers, hidden 64, 4 heads, tied embeddings (~132k parameters; docs/decisions.md)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )


def resolve_model(spec: str | Path, log=print) -> Path:
    """The local path behind ``--model``: a named model (``smollm2-135m``: fetched and converted
    once, then read from the cache), a ``.gguf`` file, or a model folder as given."""
    if is_named(str(spec)):
        return named_model_folder(str(spec), log=log)
    return Path(spec)


def load_policy(path: str | Path, dtype: torch.dtype = torch.float32, *, prompt_format: str = "auto",
                system_prompt: str = "", log=print):
    """Load ``(model, tokenizer)`` from a saved policy, a local Hugging Face causal LM folder, a
    ``.gguf`` file or a named model (``smollm2-135m``); ``prompt_format`` and ``system_prompt``
    set how the tokenizer's ``encode_prompt`` shows task prompts (see :class:`HFTokenizer`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_format(prompt_format)
    path = resolve_model(path, log=log)
    if path.suffix.lower() == ".gguf":
        model, tok = load_gguf(path, dtype=dtype)
        return model, HFTokenizer(tok, prompt_format, system_prompt)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a model folder (no config.json): pass a local Hugging Face model folder, "
                         f"a .gguf file or a model name (smollm2-135m)")
    if (path / CHAR_TOKENIZER_FILE).is_file():
        tokenizer = CharTokenizer.load(path)
    else:
        with quiet_transformers():
            tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(path), prompt_format, system_prompt)
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model, tokenizer


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
