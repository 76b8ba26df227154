"""Make the small framework files under tests/data/frameworks/, each written the way the framework's
own writer code writes it (the code cited in each folder's SOURCE.md), with made-up numbers.

    python tests/data/frameworks/make_files.py roll areal nemo_rl verl tinker   # plain Python (areal: tabulate)
    python tests/data/frameworks/make_files.py slime slime_tb                   # needs torch (and tensorboard)

Deterministic (random.Random(seed)); rerunning rewrites the same bytes.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
YELLOW, DIM, RESET = "\x1b[33m", "\x1b[2m", "\x1b[0m"  # colorama.Fore.YELLOW, Style.DIM, Style.RESET_ALL


def roll() -> None:
    """ROLL's StdoutTracker.log (roll/utils/tracking.py): logger.info(f"metrics_tag: {json.dumps(...)}")."""
    rng = random.Random(1)
    lines = ["[2026-12-07 10:00:00,001] [worker_config.py (88)] [INFO] [ROLL] pipeline config: {'max_steps': 5}"]
    for step in range(5):
        values = {"critic/entropy/mean": round(1.2 - 0.15 * step + rng.uniform(-0.02, 0.02), 6),
                  "critic/score/mean": round(0.2 + 0.1 * step + rng.uniform(-0.01, 0.01), 6),
                  "critic/rewards/mean": round(0.2 + 0.1 * step, 6),
                  "critic/advantages/mean": round(rng.uniform(-0.01, 0.01), 6),
                  "actor/pg_loss": round(rng.uniform(-0.1, 0.1), 6),
                  "actor/kl_loss": round(0.001 * step, 6),
                  "tokens/response_length/mean": round(200 - 10 * step + rng.uniform(-3, 3), 3),
                  "time/step_total": round(rng.uniform(50, 60), 3)}
        lines.append(f"[2026-12-07 10:0{step}:30,{step:03d}] [tracking.py (130)] [INFO] [ROLL] "
                     f"metrics_tag: {json.dumps({'step': step, 'metrics': values})}")
        lines.append(f"[2026-12-07 10:0{step}:31,000] [base_pipeline.py (70)] [INFO] [ROLL] pipeline step {step} finished")
    _write(HERE / "roll" / "roll_stdout.log", "\n".join(lines) + "\n")


def _tabulate_stats(data: dict, col: int = 4, floatfmt: str = ".4e") -> str:
    """areal/utils/printing.py tabulate_stats, as written there."""
    from tabulate import tabulate

    items = list(data.items())
    row_count = (len(items) + col - 1) // col
    column_major = []
    for i in range(row_count):
        row = []
        for j in range(col):
            index = i + j * row_count
            if index < len(items):
                row.extend(items[index])
        column_major.append(row)
    return tabulate(column_major, floatfmt=floatfmt, tablefmt="fancy_grid")


def areal() -> None:
    """AReaL's StatsLogger.commit (areal/utils/stats_logger.py) and RLVRWorkflow's dump_dir (areal/workflow/rlvr.py)."""
    rng = random.Random(2)
    out = []
    total = 4
    for g in range(total):
        stats = {"ppo_actor/update/entropy/avg": 0.9 - 0.1 * g + rng.uniform(-0.01, 0.01),
                 "ppo_actor/update/entropy/max": 5.0 + rng.uniform(0, 1),
                 "ppo_actor/update/entropy/min": 1e-4 * rng.uniform(1, 2),
                 "ppo_actor/task_reward/avg": 0.3 + 0.1 * g,
                 "ppo_actor/update/clip_ratio/avg": rng.uniform(0, 0.01),
                 "ppo_actor/update/grad_norm": rng.uniform(0.1, 0.5),
                 "rollout/reward": 0.3 + 0.1 * g + rng.uniform(-0.01, 0.01),
                 "timeperf/train_step": rng.uniform(10, 20)}
        out.append(f"20261207-10:0{g}:00.000 StatsLogger INFO: Epoch 1/1 Step {g + 1}/{total} Train step {g + 1}/{total} done.")
        out.append(f"20261207-10:0{g}:00.001 StatsLogger INFO: Stats (1/1):")
        out.append(f"20261207-10:0{g}:00.002 StatsLogger INFO: \n" + _tabulate_stats(stats))
    _write(HERE / "areal" / "areal_console.log", "\n".join(out) + "\n")
    for version in (0, 1):
        for qid in ("q-17", "q-42"):
            lines = []
            n = 2
            for i in range(n):
                p = f"What is {qid[2:]} + {version}?"
                c = f"The answer is {int(qid[2:]) + version + i}."
                r = 1.0 if i == 0 else 0.0
                info = "\n".join([f"idx: {i + 1} / {n}, seqlen: {30 + 3 * i + version}, reward is {r}.",
                                  f"prompt is \n{YELLOW + DIM}{p}{RESET}",
                                  f"sequence is: \n{YELLOW + DIM}{c}{RESET}"])
                lines.append(info + "\n")
            _write(HERE / "areal" / "dump" / str(version) / f"{qid}.txt", "".join(lines))


def nemo_rl() -> None:
    """NeMo-RL's grpo.py log_data + Logger.log_batched_dict_as_jsonl (nemo_rl/utils/logger.py): a
    micro-batch of one per line (each field a one-element list), plus idx."""
    rng = random.Random(3)
    for step in (1, 2):
        n, width = 4, 9
        log_data = {"content": [], "rewards": [], "input_lengths": [], "token_ids": [], "token_loss_mask": [],
                    "sample_loss_mask": [], "advantages": [], "generation_logprobs": [], "prev_logprobs": []}
        for i in range(n):
            prompt, gen = 3, 3 + i % 3
            length = prompt + gen
            reward = float(i % 2)
            adv = reward - 0.5
            lp = [0.0] * prompt + [round(math.log(rng.uniform(0.05, 0.95)), 6) for _ in range(gen)] + [0.0] * (width - length)
            log_data["content"].append(f"<user>q{i}</user><assistant>answer {i}</assistant>")
            log_data["rewards"].append(reward)
            log_data["input_lengths"].append(length)
            log_data["token_ids"].append([rng.randrange(1000) for _ in range(length)] + [0] * (width - length))
            log_data["token_loss_mask"].append([0] * prompt + [1] * gen + [0] * (width - length))
            log_data["sample_loss_mask"].append(1)
            log_data["advantages"].append([0.0] * prompt + [adv] * gen + [0.0] * (width - length))
            log_data["generation_logprobs"].append(lp)
            log_data["prev_logprobs"].append([x + 0.001 if x else 0.0 for x in lp])
        lines = []
        for i in range(n):
            sample = {k: v[i:i + 1] for k, v in log_data.items()}
            lines.append(json.dumps({**sample, "idx": i}) + "\n")
        _write(HERE / "nemo_rl" / f"train_data_step{step}.jsonl", "".join(lines))


def verl() -> None:
    """verl's RayPPOTrainer._dump_generations (verl/trainer/ppo/ray_trainer.py)."""
    for step in (1, 2):
        inputs = [f"user: what is {i} + {step}? assistant:" for i in range(3)]
        outputs = [f"<think>add</think> {i + step + (i == 2)}" for i in range(3)]
        gts = [str(i + step) for i in range(3)]
        scores = [1.0, 1.0, 0.0] if step == 1 else [1.0, 0.0, 0.0]
        n = len(inputs)
        base_data = {"input": inputs, "output": outputs, "gts": gts, "score": scores, "step": [step] * n,
                     "acc": [s > 0 for s in scores]}
        lines = [json.dumps({k: v[i] for k, v in base_data.items()}, ensure_ascii=False) for i in range(n)]
        _write(HERE / "verl" / "rollout_data" / f"{step}.jsonl", "\n".join(lines) + "\n")


def tinker() -> None:
    """tinker-cookbook's serialize_rollout_summaries (tinker_cookbook/rl/rollout_logging.py) and its metrics.jsonl."""
    rng = random.Random(4)
    metrics = []
    for it in (0, 1):
        records = []
        for group_idx in range(2):
            for traj_idx in range(2):
                ac = [rng.randrange(5, 20)]
                reward = float((group_idx + traj_idx + it) % 2)
                steps = [{"step_idx": 0, "ob_len": 12, "ac_len": ac[0], "reward": reward, "episode_done": True,
                          "stop_reason": "stop", "metrics": {"correct": reward}, "logs": {}}]
                records.append({"schema_version": 1, "split": "train", "iteration": it, "group_idx": group_idx,
                                "traj_idx": traj_idx, "tags": ["arithmetic"], "sampling_client_step": it,
                                "total_reward": reward, "final_reward": 0.0,
                                "trajectory_metrics": {}, "steps": steps, "final_ob_len": 12 + ac[0]})
        _write(HERE / "tinker" / "log" / f"iteration_{it:06d}" / "train_rollout_summaries.jsonl",
               "".join(json.dumps(r) + "\n" for r in records))
        metrics.append({"step": it, "optim/entropy": round(0.8 - 0.1 * it, 6),
                        "env/all/reward/total": sum(r["total_reward"] for r in records) / len(records),
                        "optim/lr": 1e-5, "progress/batch": it})
    _write(HERE / "tinker" / "log" / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))


def slime() -> None:
    """slime's --dump-details (slime/utils/arguments.py): rollout_data/{id}.pt as in slime/ray/rollout.py
    (torch.save(dict(rollout_id=..., samples=[Sample.to_dict()]))), train_data/{id}_{rank}.pt as in
    slime/utils/train_dump_utils.py (torch.save({"rollout_id", "rank", "rollout_data"}))."""
    import torch

    g = torch.Generator().manual_seed(5)
    for rid in (0, 1):
        samples = []
        rollout_data = {"tokens": [], "response_lengths": [], "loss_masks": [], "log_probs": [], "advantages": [],
                        "entropy": [], "rewards": []}
        for i in range(4):
            resp_len = 3 + i % 2
            prompt_tokens = [11, 12, 13]
            resp_tokens = torch.randint(0, 1000, (resp_len,), generator=g).tolist()
            reward = float((i + rid) % 2)
            samples.append({"group_index": i // 2, "index": i, "prompt": f"Q{i}: 2+{i}=?", "tokens": prompt_tokens + resp_tokens,
                            "response": f"A: {2 + i}", "response_length": resp_len, "label": str(2 + i), "reward": reward,
                            "loss_mask": [1] * resp_len, "rollout_log_probs": (-torch.rand(resp_len, generator=g)).tolist(),
                            "status": "completed", "metadata": {}})
            rollout_data["tokens"].append(torch.tensor(prompt_tokens + resp_tokens))
            rollout_data["response_lengths"].append(resp_len)
            rollout_data["loss_masks"].append(torch.tensor([1] * (resp_len - 1) + [0]))
            rollout_data["log_probs"].append(-torch.rand(resp_len, generator=g))
            rollout_data["advantages"].append(torch.full((resp_len,), reward - 0.5))
            rollout_data["entropy"].append(torch.rand(resp_len, generator=g) * 2)
            rollout_data["rewards"].append(reward)
        path = HERE / "slime" / "dump" / "rollout_data" / f"{rid}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(dict(rollout_id=rid, samples=samples), path)
        path = HERE / "slime" / "dump" / "train_data" / f"{rid}_0.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"rollout_id": rid, "rank": 0, "rollout_data": rollout_data}, path)


def slime_tb() -> None:
    """slime's TensorBoard logging (slime/utils/tensorboard_utils.py, _TensorboardAdapter.log: add_scalar per key
    at the dict's step): the rollout dicts (rollout/..., at rollout/step) and the train dicts (train/..., at
    train/step), one train step per rollout."""
    from torch.utils.tensorboard import SummaryWriter

    rng = random.Random(6)
    folder = HERE / "slime" / "tensorboard"
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(str(folder), filename_suffix=".made")
    for rid in range(4):
        rollout = {"rollout/raw_reward": 0.2 + 0.15 * rid, "rollout/rewards": rng.uniform(-0.01, 0.01),
                   "rollout/response_lengths": 300.0 - 20 * rid, "rollout/entropy": 0.9 - 0.12 * rid, "rollout/step": rid}
        train = {"train/entropy_loss": 0.88 - 0.12 * rid, "train/pg_loss": rng.uniform(-0.05, 0.05),
                 "train/pg_clipfrac": rng.uniform(0, 0.02), "train/step": rid}
        for data in (rollout, train):
            for key in data:
                writer.add_scalar(key, data[key], rid)
    writer.close()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        globals()[name]()
