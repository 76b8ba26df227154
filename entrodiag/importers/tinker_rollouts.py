"""Tinker's per-rollout summaries: ``iteration_NNNNNN/train_rollout_summaries.jsonl``.

tinker-cookbook's RL loop writes, for each training iteration, one JSON line per trajectory
(``serialize_rollout_summaries`` in ``tinker_cookbook/rl/rollout_logging.py``, schema 1):
``split``, ``iteration``, ``group_idx``, ``traj_idx``, ``tags``, ``total_reward``,
``final_reward``, ``trajectory_metrics``, ``final_ob_len`` and ``steps`` (one per transition:
``ob_len``, ``ac_len``, ``reward``, ``episode_done``, ``stop_reason``, ``metrics``, ``logs``).
Each trajectory is a sample (step = ``iteration``, group = ``group_idx``, reward =
``total_reward``, length = the action tokens summed over its transitions); the summaries hold no
text and no log-probabilities.

Given the run's ``log_path`` (the folder holding ``metrics.jsonl`` and the ``iteration_*``
folders), the step rows are ``metrics.jsonl``'s (its names in the name table: ``optim/entropy``,
``env/all/reward/total``, ...) with ``n_responses`` and ``n_groups`` from the summaries; without
``metrics.jsonl`` they are computed from the summaries (mean reward, mean action tokens).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .dump_tables import SAMPLE_FIELDS, json_objects, merge_rows, steps_from_samples, table
from .failure import ImportFailure
from .values import count

SUMMARY_FILE = "train_rollout_summaries.jsonl"
ITERATION_DIR = re.compile(r"^iteration_(\d+)$")


def summary_files(path: Path) -> list[Path]:
    """The train rollout summaries at ``path``: the file itself, or ``iteration_*/`` of a folder."""
    if path.is_file():
        return [path] if path.name == SUMMARY_FILE else []
    found = [(int(m.group(1)), d / SUMMARY_FILE) for d in path.iterdir()
             if (m := ITERATION_DIR.match(d.name)) and (d / SUMMARY_FILE).is_file()]
    return [f for _, f in sorted(found)]


def _jsonl(path: Path) -> list[dict]:
    return [obj for _, obj in json_objects(path, cut_last_ok=True)]


def read_tinker_rollouts(path: Path) -> tuple[list[dict], dict]:
    """Step rows and the samples table of Tinker's rollout summaries (see the module docstring)."""
    files = summary_files(path)
    if not files:
        raise ImportFailure(f"{path}: no iteration_*/{SUMMARY_FILE}")
    samples: list[dict[str, Any]] = []
    bad: dict[str, int] = {}
    for f in files:
        for rec in _jsonl(f):
            if rec.get("split", "train") != "train" or not isinstance(rec.get("iteration"), int):
                count(bad, "summaries that are not training records with an iteration (left out)")
                continue
            steps = rec.get("steps") if isinstance(rec.get("steps"), list) else []
            ac = [s.get("ac_len") for s in steps if isinstance(s, dict)]
            reward = rec.get("total_reward")
            samples.append({
                "step": rec["iteration"], "sample_id": len(samples), "group_id": rec.get("group_idx"),
                "prompt_id": rec.get("group_idx"),
                "reward": reward if isinstance(reward, (int, float)) and not isinstance(reward, bool) else None,
                "length": sum(ac) if ac and all(isinstance(a, int) for a in ac) else None,
            })
    if not samples:
        raise ImportFailure(f"{path}: the rollout summaries hold no training trajectory")
    derived = steps_from_samples(samples)
    metrics = path / "metrics.jsonl" if path.is_dir() else path.parent.parent / "metrics.jsonl"
    notes = [f"{len(samples)} trajectories in {len(files)} Tinker train rollout summaries (iteration = step)"]
    if metrics.is_file():
        rows = merge_rows(_jsonl(metrics), derived, ("n_responses", "n_groups"))
        notes.append(f"step metrics from {metrics.name}; n_responses and n_groups from the summaries")
    else:
        rows = derived
        notes.append("no metrics.jsonl beside them: the step rows are the summaries' mean reward and action tokens")
    return rows, {"bad_values": bad, "framework": "tinker", "tables": {"samples": table(samples, SAMPLE_FIELDS)},
                  "files": [str(f) for f in files], "notes": notes}
