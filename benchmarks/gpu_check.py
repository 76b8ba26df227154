"""Build a random ~40M-parameter Llama with a character tokenizer for the GPU check
(``benchmarks/gpu_check.sh``): exercises the trainer's Hugging Face path (bf16 autocast, KV-cache
sampling, the Recorder on CUDA) at a size where the GPU matters. The weights are random, so the
reward stays near 0: this checks that the path runs and how fast, not that it learns."""

import sys
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


def main(folder: str) -> None:
    chars = "0123456789+-=?. abcdefghijklmnopqrstuvwxyz"
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{c: i + 4 for i, c in enumerate(chars)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=768, intermediate_size=2048, num_hidden_layers=6,
                      num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=128,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M")
    model.save_pretrained(Path(folder))
    tok.save_pretrained(Path(folder))


if __name__ == "__main__":
    main(sys.argv[1])
