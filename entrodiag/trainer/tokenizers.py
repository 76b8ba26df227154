"""The tokenizers the trainer uses: the tiny model's character tokenizer, and a Hugging Face
tokenizer seen through the same small interface (``encode``, ``encode_prompt``, ``decode``,
``save``, the ``eos``/``pad`` ids).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .prompts import chat_ids, end_of_turn_id, uses_chat

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


class HFTokenizer:
    """A Hugging Face tokenizer seen through the small interface the trainer uses.

    ``encode_prompt`` shows a task prompt to the model in ``prompt_format`` (``auto``: through the
    chat template when there is one; see :mod:`entrodiag.trainer.prompts`); under a chat template
    ``eos_token_id`` is the template's end-of-turn token, where generation stops.
    """

    def __init__(self, tok: Any, prompt_format: str = "auto", system_prompt: str = "") -> None:
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
        return chat_ids(self.tok, text, self.system_prompt) if self.chat else self.encode(text)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def save(self, folder: Path) -> None:
        self.tok.save_pretrained(folder)
