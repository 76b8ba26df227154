"""Recorder overhead: a training step with and without ``Recorder.record_batch``.

A step is forward + backward + AdamW on a Llama built from a transformers config (random init),
on a batch of sampled-looking tokens; the recorded step also calls ``record_batch`` with the
step's logits (default settings: 8 responses per step kept as token rows, background writer).
Steps with and without recording alternate in one process, so both see the same machine state;
the result is the median step time of each and their ratio.

    python benchmarks/bench_recorder.py            # both shapes
    python benchmarks/bench_recorder.py --steps 40 --shapes tiny
    python benchmarks/bench_recorder.py --device cuda --shapes smollm2   # the GPU check (target <= 3%)

``smollm2`` is SmolLM2-135M-Instruct's architecture (30 layers, hidden 576, 9 heads / 3 KV heads,
vocabulary 49152; random weights: the step's cost does not depend on them), 32 responses x 256
tokens. On CUDA the forward runs under bf16 autocast (as ``entrodiag train`` does there) and each
step's time ends after a device synchronisation.
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
    "smollm2": (30, 576, 49152, 32, 256),
}
# (intermediate size, attention heads, KV heads) where not (4 x hidden, 4, 4)
ARCH = {"smollm2": (1536, 9, 3)}


def run(shape: str, steps: int, device: str = "cpu") -> dict:
    import contextlib

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from entrodiag import Recorder

    layers, hidden, vocab, batch, seq = SHAPES[shape]
    torch.manual_seed(0)
    inter, heads, kv_heads = ARCH.get(shape, (4 * hidden, 4, 4))
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=seq + 1, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, vocab, (batch, seq + 1), device=device)
    mask = torch.ones(batch, seq, dtype=torch.bool, device=device)
    adv = torch.randn(batch, device=device)
    rewards = torch.rand(batch, device=device)
    groups = torch.arange(batch, device=device) // 8
    cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp, Recorder(f"{tmp}/run") as rec:
        for i in range(2 * steps + 4):
            record = i % 2 == 1
            t = now()
            with autocast:
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
                times[record].append(now() - t)
        rec.flush()
        assert rec.errors == 0
    base, with_rec = statistics.median(times[False]), statistics.median(times[True])
    return {"shape": shape, "device": device, "logits": f"{batch}x{seq}x{vocab}", "base_s": base,
            "recorded_s": with_rec, "ratio": with_rec / base}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed steps of each kind (default 30)")
    p.add_argument("--shapes", default="tiny,medium", help="comma-separated: " + ", ".join(SHAPES))
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = p.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.exit(2, "bench_recorder.py: --device cuda but CUDA is not available\n")
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"
    print(f"# torch {torch.__version__}, {args.device} ({where})")
    print("| shape | logits B×T×V | step without (ms) | step with record_batch (ms) | ratio |")
    print("|---|---|---:|---:|---:|")
    for shape in args.shapes.split(","):
        r = run(shape, args.steps, args.device)
        print(f"| {r['shape']} | {r['logits']} | {1e3 * r['base_s']:.1f} | {1e3 * r['recorded_s']:.1f} "
              f"| {r['ratio']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
