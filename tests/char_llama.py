"""A random Llama with a character-level fast tokenizer, saved like any Hugging Face model (no
download): the local model of ``tests/test_trainer.py`` and of the GPU check
(``benchmarks/gpu_check.py``), which differ only in the characters and the size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


def save_char_llama(folder: str | Path, chars: str, **sizes: Any) -> int:
    """Save to ``folder`` a Llama initialised with seed 0 and a tokenizer of one token per
    character of ``chars`` (after ``<pad> <s> </s> <unk>``); ``sizes`` are ``LlamaConfig`` fields
    (``hidden_size``, ``num_hidden_layers``, ...). Returns the number of parameters."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{c: i + 4 for i, c in enumerate(chars)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(vocab), **sizes, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(Path(folder))
    tok.save_pretrained(Path(folder))
    return sum(p.numel() for p in model.parameters())
