"""Recorder overhead: a training step with and without ``Recorder.record_batch``.

A step is forward + backward + AdamW on a Llama built from a transformers config (random init),
on a batch of sampled-looking tokens; the recorded step also calls ``record_batch`` with the
step's logits (default settings: 8 responses per step kept as token rows, background writer).
Steps with and without recording alternate in one process, so both see the same machine state;
the result is the median step time of each and their ratio.

    python benchmarks/bench_recorder.py            # both shapes
    python benchmarks/bench_recorder.py --steps 40 --shapes tiny
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

SHAPES = {
    # name: (layers, hidden, vocab, batch, seq) — tiny = the plain_pytorch recipe's step
    "tiny": (2, 64, 11, 256, 6),
    "medium": (2, 256, 32000, 8, 256),
}


def run(shape: str, steps: int) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from entrodiag import Recorder

    layers, hidden, vocab, batch, seq = SHAPES[shape]
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=seq + 1, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, vocab, (batch, seq + 1))
    mask = torch.ones(batch, seq, dtype=torch.bool)
    adv = torch.randn(batch)
    rewards = torch.rand(batch)
    groups = torch.arange(batch) // 8
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp, Recorder(f"{tmp}/run") as rec:
        for i in range(2 * steps + 4):
            record = i % 2 == 1
            t = time.perf_counter()
            logits = model(ids[:, :-1]).logits.float()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            loss = -(adv[:, None] * logp).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if record:
                rec.record_batch(i, token_ids=ids[:, 1:], response_mask=mask, logits=logits,
                                 advantages=adv, rewards=rewards, group_ids=groups, loss=loss.detach())
            if i >= 4:  # warm-up steps not timed
                times[record].append(time.perf_counter() - t)
        rec.flush()
        assert rec.errors == 0
    base, with_rec = statistics.median(times[False]), statistics.median(times[True])
    return {"shape": shape, "logits": f"{batch}x{seq}x{vocab}", "base_s": base, "recorded_s": with_rec,
            "ratio": with_rec / base}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed steps of each kind (default 30)")
    p.add_argument("--shapes", default="tiny,medium", help="comma-separated: " + ", ".join(SHAPES))
    args = p.parse_args()
    import torch

    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| shape | logits B×T×V | step without (ms) | step with record_batch (ms) | ratio |")
    print("|---|---|---:|---:|---:|")
    for shape in args.shapes.split(","):
        r = run(shape, args.steps)
        print(f"| {r['shape']} | {r['logits']} | {1e3 * r['base_s']:.1f} | {1e3 * r['recorded_s']:.1f} "
              f"| {r['ratio']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
