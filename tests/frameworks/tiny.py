"""A tiny random Llama (2 layers, hidden 64, vocabulary 128) and a word-level tokenizer, saved to a
folder for the framework drivers (verl's engine loads its model from a path). No download."""

from __future__ import annotations

import sys

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB = 128


def config() -> LlamaConfig:
    return LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
                       attn_implementation="eager")


def model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(config())


def save(path: str) -> str:
    words = ["<pad>", "<s>", "</s>"] + [f"t{i}" for i in range(VOCAB - 3)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>").save_pretrained(path)
    model().save_pretrained(path)
    return path


def batch(step: int, B: int = 8, P: int = 6, R: int = 5) -> dict[str, torch.Tensor]:
    """One step's rollout batch, left-padded prompts and right-padded responses as verl holds them:
    every other response ends 2 tokens early; 4 groups of 2 responses; a 0/1 reward each."""
    g = torch.Generator().manual_seed(1000 + step)
    mask = torch.ones(B, R, dtype=torch.long)
    mask[::2, -2:] = 0
    attn = torch.cat([torch.ones(B, P, dtype=torch.long), mask], 1)
    ids = torch.randint(3, VOCAB, (B, P + R), generator=g) * attn
    return {"prompts": ids[:, :P], "responses": ids[:, P:], "input_ids": ids, "attention_mask": attn,
            "response_mask": mask, "position_ids": (attn.cumsum(1) - 1).clamp(min=0),
            "reward": torch.randint(0, 2, (B,), generator=g).float(), "group": torch.arange(B) // 2}


if __name__ == "__main__":
    save(sys.argv[1])
