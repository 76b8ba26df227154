"""Build a random ~40M-parameter Llama with a character tokenizer for the GPU check
(``benchmarks/gpu_check.sh``): exercises the trainer's Hugging Face path (bf16 autocast, KV-cache
sampling, the Recorder on CUDA) at a size where the GPU matters. The weights are random, so the
reward stays near 0: this checks that the path runs and how fast, not that it learns. The model and
tokenizer are built as for the trainer's tests (``tests/char_llama.py``), at this size."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from char_llama import save_char_llama


def main(folder: str) -> None:
    n = save_char_llama(folder, "0123456789+-=?. abcdefghijklmnopqrstuvwxyz", hidden_size=768, intermediate_size=2048,
                        num_hidden_layers=6, num_attention_heads=12, num_key_value_heads=12,
                        max_position_embeddings=128)
    print(f"parameters: {n / 1e6:.1f} M")


if __name__ == "__main__":
    main(sys.argv[1])
