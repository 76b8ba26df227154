"""A hand-written policy-gradient loop on a Hugging Face GPT-2, with entropy taken by a LogitsTap.

The loop never computes an entropy: `LogitsTap(model)` hooks the output head, and after each
teacher-forced forward `tap.entropy`, `tap.logprobs` and `tap.token_ids` hold, for every
position t, the entropy of the distribution that predicted `input_ids[:, t+1]`, that token's
log-prob, and the token itself (fp32, computed in chunks under no_grad; the logits are not kept).
Slice them to the response positions and hand them to the Recorder (`# entrodiag` lines).

Task, with a verifiable reward: the prompt is two digits and "=", e.g. "37=", the answer is the
digits swapped and a stop mark, "73."; the policy may stop early or run on, so responses have
different lengths and the mask matters. Reward: 0.4 per right digit, 0.2 for stopping right after
them. The policy is a randomly initialised 2-layer GPT-2 built from a transformers config (no
download) over a 12-character vocabulary; 20 of the 100 prompts are held out for a greedy
evaluation. With the defaults (~25 s on 2 CPU cores) the entropy falls and the reward rises.

With --model (smollm2-135m, a .gguf file or a model folder) the same loop runs on a pretrained
instruct model instead: entrodiag's word problems (task word-arith) through the model's chat
template, sampling until its end-of-turn token, reward 1 for the right number (a few minutes per
step of 32 answers on 2 CPU cores; try --steps 2 --prompts 2 --group-size 2 first).

    python training_hooks/logits_tap.py
    python training_hooks/logits_tap.py --model smollm2-135m --steps 2 --prompts 2 --group-size 2 --out runs/tap-smol
    entrodiag inspect runs/logits-tap
"""

import argparse
import os
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--out", default="runs/logits-tap", help="run directory to create (must not hold a run)")
p.add_argument("--steps", type=int, default=150, help="training steps (default: %(default)s)")
p.add_argument("--seed", type=int, default=0, help="seed of model init, prompts and sampling")
p.add_argument("--lr", type=float, help="AdamW learning rate (default: 1e-3; 1e-6 with --model)")
p.add_argument("--model", help="a pretrained causal LM instead of the random GPT-2: smollm2-135m, FILE.gguf or a folder")
p.add_argument("--max-new-tokens", type=int, default=32, help="answer length limit with --model (default: %(default)s)")
p.add_argument("--prompts", type=int, default=32, help="prompts per step (default: %(default)s)")
p.add_argument("--group-size", type=int, default=8, help="answers per prompt, G (default: %(default)s)")
p.add_argument("--token-sample", type=int, default=4, help="answers per step kept as token rows")
p.add_argument("--log-every", type=int, default=10, help="print progress and evaluate every N steps")
args = p.parse_args()
if min(args.steps, args.prompts, args.log_every) < 1 or args.group_size < 2:
    p.error("--steps, --prompts and --log-every must be >= 1, --group-size >= 2")
if os.path.exists(os.path.join(args.out, "run.json")):
    p.error(f"{args.out} already holds a run: pass --out NEW_DIR or delete it")

# heavy imports after the arguments, so that --help and a refused --out answer at once
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from entrodiag import LogitsTap, Recorder, load_run  # noqa: E402
from entrodiag.metrics import group_advantages  # noqa: E402

torch.manual_seed(args.seed)


def pretrained_run(args) -> None:
    """The loop below on a pretrained instruct model: word problems through its chat template."""
    from entrodiag.trainer.model import load_policy
    from entrodiag.trainer.rollout import decode_responses, encode_prompts, generate, padding_kwargs
    from entrodiag.trainer.tasks import make_task

    model, tok = load_policy(args.model)  # a named model is fetched once; prompts use the chat template
    task = make_task("word-arith", 16, args.seed)
    train_enc, val_enc = encode_prompts(tok, task.train_prompts[:1000]), encode_prompts(tok, task.val_prompts)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr or 1e-6)
    print(f"policy: {args.model}, {sum(w.numel() for w in model.parameters()) / 1e6:.0f}M parameters; task: "
          f"{task.name}; {args.steps} steps of {args.prompts}x{args.group_size} samples")
    tap = LogitsTap(model)  # hooks the output head
    rec = Recorder(args.out, config=vars(args), tokenizer=tok, token_sample=args.token_sample)
    t0 = time.time()
    for step in range(args.steps):
        idx = torch.randint(len(train_enc.ids), (args.prompts,)).repeat_interleave(args.group_size)
        group_ids = torch.arange(args.prompts).repeat_interleave(args.group_size)
        prompt = train_enc.take(idx)
        model.eval()
        roll = generate(model, prompt, args.max_new_tokens, tok.eos_token_id, tok.pad_token_id)  # KV cache
        texts = decode_responses(tok, roll)
        rewards = torch.tensor([task.score(t, task.train_answers[i]) for t, i in zip(texts, idx.tolist())])
        advantages = group_advantages(rewards, group_ids)

        model.train()
        P = prompt.ids.shape[1]
        seq, mask = torch.cat([prompt.ids, roll.response], 1), torch.cat([prompt.mask, roll.mask], 1)
        logits = model(input_ids=seq, **padding_kwargs(mask)).logits[:, P - 1 : -1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, roll.response[:, :, None]).squeeze(-1)
        loss = -(advantages[:, None] * logp)[roll.mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec.record_batch(step, token_ids=tap.token_ids[:, P - 1 :], response_mask=roll.mask,
                         entropy=tap.entropy[:, P - 1 :], logprobs=tap.logprobs[:, P - 1 :], advantages=advantages,
                         rewards=rewards, group_ids=group_ids, texts=texts, loss=loss.detach())
        if step % args.log_every == 0 or step == args.steps - 1:
            h = tap.entropy[:, P - 1 :][roll.mask].mean().item()
            model.eval()
            greedy = generate(model, val_enc, args.max_new_tokens, tok.eos_token_id, tok.pad_token_id, greedy=True)
            acc = sum(map(task.score, decode_responses(tok, greedy), task.val_answers)) / len(task.val_answers)
            rec.log_eval(step, "val/accuracy", acc, n=len(task.val_answers))
            print(f"step {step:4d}  entropy {h:.3f}  reward {rewards.mean().item():.3f}  val/accuracy {acc:.2f}  "
                  f"({time.time() - t0:.1f} s)  e.g. {texts[0][:60]!r}", flush=True)
    tap.remove()
    rec.close()


if args.model:
    pretrained_run(args)
    print(f"next: entrodiag inspect {args.out}")
    raise SystemExit(0)

VOCAB = "0123456789=."
STOP = VOCAB.index(".")
P, R = 3, 3  # prompt length ("37="), answer length at most ("73.")


class CharTokenizer:
    """One token per character. entrodiag only needs `decode(list[int]) -> str`."""

    def encode(self, s: str) -> list[int]:
        return [VOCAB.index(c) for c in s]

    def decode(self, ids: list[int]) -> str:
        return "".join(VOCAB[i] for i in ids)


tok = CharTokenizer()
prompts = torch.tensor([tok.encode(f"{i:02d}=") for i in range(100)])
perm = torch.randperm(100)
train_prompts, val_prompts = prompts[perm[20:]], prompts[perm[:20]]


def score(prompt: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """[N, P] prompts, [N, R] answers -> [N] rewards: 0.4 per swapped digit, 0.2 for the stop mark."""
    return (0.4 * (answer[:, 0] == prompt[:, 1]) + 0.4 * (answer[:, 1] == prompt[:, 0])
            + 0.2 * (answer[:, 2] == STOP)).float()


def answer_mask(answer: torch.Tensor) -> torch.Tensor:
    """True up to and including the first stop mark: what the policy actually said."""
    stopped_before = (answer == STOP).long().cumsum(-1) - (answer == STOP).long()
    return stopped_before == 0


@torch.no_grad()
def sample(model, prompt: torch.Tensor, greedy: bool = False) -> torch.Tensor:
    """Append R tokens to each prompt at temperature 1 (tokens after a stop mark are masked out)."""
    seq = prompt
    for _ in range(R):
        logits = model(seq).logits[:, -1].float()
        nxt = logits.argmax(-1) if greedy else torch.multinomial(logits.softmax(-1), 1).squeeze(-1)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    return seq


model = GPT2LMHeadModel(GPT2Config(vocab_size=len(VOCAB), n_positions=8, n_embd=64, n_layer=2, n_head=4,
                                   bos_token_id=None, eos_token_id=None))  # random init
opt = torch.optim.AdamW(model.parameters(), lr=args.lr or 1e-3)
print(f"policy: GPT-2 2x64, {sum(w.numel() for w in model.parameters()) / 1e3:.0f}k parameters, random "
      f"init; task: '37=' -> '73.'; {args.steps} steps of {args.prompts}x{args.group_size} samples")

tap = LogitsTap(model)  # entrodiag (1/4): hooks the output head
rec = Recorder(args.out, config=vars(args), tokenizer=tok, token_sample=args.token_sample)  # entrodiag (2/4)
t0 = time.time()
for step in range(args.steps):
    # --- rollout: G answers per prompt; each prompt's answers form a group
    idx = torch.randint(len(train_prompts), (args.prompts,))
    prompt = train_prompts[idx].repeat_interleave(args.group_size, dim=0)  # [B, P]
    group_ids = torch.arange(args.prompts).repeat_interleave(args.group_size)  # [B]
    seq = sample(model, prompt)                                            # [B, P + R]
    response_mask = answer_mask(seq[:, P:])                                # [B, R]
    rewards = score(prompt, seq[:, P:])
    advantages = group_advantages(rewards, group_ids)

    # --- policy gradient on a teacher-forced forward; the tap sees the logits as they pass
    logits = model(seq).logits[:, P - 1 : -1]  # [B, R, V]: the distributions that chose the answer
    logp = torch.log_softmax(logits.float(), -1).gather(-1, seq[:, P:, None]).squeeze(-1)
    loss = -(advantages[:, None] * logp)[response_mask].mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

    rec.record_batch(  # entrodiag (3/4): tap.*[:, t] is about input_ids[:, t + 1], so answers start at P - 1
        step, token_ids=tap.token_ids[:, P - 1 :], response_mask=response_mask,
        entropy=tap.entropy[:, P - 1 :], logprobs=tap.logprobs[:, P - 1 :],
        advantages=advantages, rewards=rewards, group_ids=group_ids, loss=loss.detach(),
    )

    if step % args.log_every == 0 or step == args.steps - 1:
        h = tap.entropy[:, P - 1 :][response_mask].mean().item()  # before the next forward replaces it
        answer = sample(model, val_prompts, greedy=True)[:, P:]
        acc = (score(val_prompts, answer) > 0.99).float().mean().item()
        rec.log_eval(step, "val/accuracy", acc, n=len(val_prompts))
        print(f"step {step:4d}  entropy {h:.3f}  reward {rewards.mean().item():.3f}  val/accuracy {acc:.2f}  "
              f"({time.time() - t0:.1f} s)")

tap.remove()
rec.close()  # entrodiag (4/4): flush, mark the run finished

# --- read the run back
run = load_run(args.out)
steps, evals = run.steps, run.evals
k = max(1, min(10, steps.height // 5))
first = steps.head(k).select("entropy_mean", "reward_mean", "resp_len_mean").mean()
last = steps.tail(k).select("entropy_mean", "reward_mean", "resp_len_mean").mean()
print(f"\nrun {run.path} ({run.status}): {steps.height} steps, {run.tokens.height} token rows, "
      f"{evals.height} evals")
print(f"entropy       {first['entropy_mean'][0]:.3f} -> {last['entropy_mean'][0]:.3f} nats "
      f"(mean of the first / last {k} steps)")
print(f"reward        {first['reward_mean'][0]:.3f} -> {last['reward_mean'][0]:.3f}")
print(f"answer length {first['resp_len_mean'][0]:.2f} -> {last['resp_len_mean'][0]:.2f} tokens")
print(f"val/accuracy  {evals['value'][0]:.2f} -> {evals['value'][-1]:.2f}")
print(f"next: entrodiag inspect {run.path}")
