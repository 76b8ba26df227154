"""Policies: the tiny Llama-style model with its character tokenizer, and Hugging Face models.

A saved policy is a Hugging Face model folder (``config.json`` + ``model.safetensors``); the tiny
model's folder also holds ``char_tokenizer.json``. ``load_policy`` reads either kind, so
checkpoints of the built-in trainer open with ``--model PATH`` like any local model.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

CHAR_TOKENIZER_FILE = "char_tokenizer.json"
TINY_CHARS = "0123456789+-= ."


class CharTokenizer:
    """One token per character, plus ``<pad>`` (0), ``<bos>`` (1) and ``<eos>`` (2)."""

    specials = ("<pad>", "<bos>", "<eos>")

    def __init__(self, chars: str = TINY_CHARS) -> None:
        self.chars = chars
        self.vocab = [*self.specials, *chars]
        self._index = {c: i + len(self.specials) for i, c in enumerate(chars)}
        self.pad_token_id, self.bos_token_id, self.eos_token_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.vocab)

    def encode_prompt(self, text: str) -> list[int]:
        return self.encode(text)

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"characters {unknown} are not in the tiny model's vocabulary {self.chars!r}")
        return [self.bos_token_id] * add_bos + [self._index[c] for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        n = len(self.specials)
        return "".join(self.vocab[i] for i in ids if i >= n or not skip_special_tokens)

    def save(self, folder: Path) -> None:
        (folder / CHAR_TOKENIZER_FILE).write_text(json.dumps({"chars": self.chars}))

    @classmethod
    def load(cls, folder: Path) -> "CharTokenizer":
        return cls(json.loads((folder / CHAR_TOKENIZER_FILE).read_text())["chars"])


def tiny_config(vocab_size: int):
    """Llama-style, 2 layers, hidden 64, 4 heads, tied embeddings (~132k parameters; docs/decisions.md)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )


class HFTokenizer:
    """A Hugging Face tokenizer seen through the small interface the trainer uses.

    ``encode_prompt`` shows a task prompt to the model in ``prompt_format`` (``auto``: through the
    chat template when there is one; see :mod:`entrodiag.trainer.prompts`); under a chat template
    ``eos_token_id`` is the template's end-of-turn token, where generation stops.
    """

    def __init__(self, tok: Any, prompt_format: str = "auto", system_prompt: str = "") -> None:
        from .prompts import end_of_turn_id, uses_chat

        if tok.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token: the trainer needs one to end responses")
        self.tok = tok
        self.chat = uses_chat(tok, prompt_format)
        self.system_prompt = system_prompt
        eot = end_of_turn_id(tok) if self.chat else None
        self.eos_token_id = eot if eot is not None else tok.eos_token_id
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=True)["input_ids"]

    def encode_prompt(self, text: str) -> list[int]:
        """A task prompt as the model should see it (the chat template's user turn, or plain)."""
        from .prompts import chat_ids

        return chat_ids(self.tok, text, self.system_prompt) if self.chat else self.encode(text)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def save(self, folder: Path) -> None:
        self.tok.save_pretrained(folder)


@contextmanager
def quiet_transformers():
    """No per-shard progress bars from transformers while saving or loading small checkpoints."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def resolve_model(spec: str | Path, log=print) -> Path:
    """The local path behind ``--model``: a named model (``smollm2-135m``: fetched and converted
    once, then read from the cache), a ``.gguf`` file, or a model folder as given."""
    from .hf_models import is_named, named_model_folder

    if is_named(str(spec)):
        return named_model_folder(str(spec), log=log)
    return Path(spec)


def load_policy(path: str | Path, dtype: torch.dtype = torch.float32, *, prompt_format: str = "auto",
                system_prompt: str = "", log=print):
    """Load ``(model, tokenizer)`` from a saved policy, a local Hugging Face causal LM folder, a
    ``.gguf`` file or a named model (``smollm2-135m``); ``prompt_format`` and ``system_prompt``
    set how the tokenizer's ``encode_prompt`` shows task prompts (see :class:`HFTokenizer`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .hf_models import load_gguf
    from .prompts import check_format

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


def save_policy(model, tokenizer, folder: Path) -> None:
    """Write a policy folder that :func:`load_policy` reads back."""
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save(folder)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
