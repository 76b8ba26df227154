"""verl's rollout dumps: ``trainer.rollout_data_dir/{step}.jsonl``.

``RayPPOTrainer._dump_generations`` (``verl/trainer/ppo/ray_trainer.py``) writes, at each step
with ``trainer.rollout_data_dir`` set, ``{global_steps}.jsonl``: one JSON line per response with
``input`` (the decoded prompt), ``output`` (the decoded response), ``score`` (the sequence score,
``token_level_scores`` summed), ``step``, ``gts`` in newer versions, and the reward function's
extra fields of the same length (``acc``, ...). They become the samples table (texts and scores
per step); the step rows say the mean score (``score_mean``) and the number of responses. The
dumps hold no token ids, lengths or log-probabilities, so no entropy and no response length.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .dump_tables import SAMPLE_FIELDS, json_objects, steps_from_samples, table
from .failure import ImportFailure
from .values import count, number

STEP_FILE = re.compile(r"^(\d+)\.jsonl$")
#: the fields every ``_dump_generations`` line holds
FIELDS = frozenset({"input", "output", "score", "step"})


def is_rollout_record(obj: Any) -> bool:
    """Whether a JSON line is one of verl's ``_dump_generations`` records."""
    return isinstance(obj, dict) and FIELDS <= obj.keys()


def rollout_files(path: Path) -> list[tuple[int, Path]]:
    """``(step, file)`` of the ``{step}.jsonl`` dumps at ``path`` (a folder, or one dump file)."""
    if path.is_file():
        m = STEP_FILE.match(path.name)
        return [(int(m.group(1)) if m else -1, path)]
    return sorted((int(m.group(1)), f) for f in path.iterdir() if (m := STEP_FILE.match(f.name)) and f.is_file())


def read_verl_rollouts(path: Path) -> tuple[list[dict], dict]:
    """Step rows (``score_mean``, ``n_responses``) and the samples table of verl's rollout dumps."""
    files = rollout_files(path)
    samples: list[dict[str, Any]] = []
    bad: dict[str, int] = {}
    for _, f in files:
        for lineno, rec in json_objects(f):
            if not is_rollout_record(rec):
                raise ImportFailure(f"{f}:{lineno}: not a verl rollout dump line (needs input, output, score, step)")
            score = number(rec["score"])
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                count(bad, "score: not a number (left out)")
                score = None
            step = rec["step"]
            if not isinstance(step, int) or isinstance(step, bool):
                count(bad, "rows whose step is not a whole number (left out)")
                continue
            samples.append({"step": step, "sample_id": len(samples), "prompt": rec["input"],
                            "response": rec["output"], "reward": score})
    if not samples:
        raise ImportFailure(f"{path}: no verl rollout dump line ({{step}}.jsonl with input, output, score, step)")
    rows = [{("score_mean" if k == "reward_mean" else k): v for k, v in r.items() if k != "reward_std"}
            for r in steps_from_samples(samples)]
    return rows, {"bad_values": bad, "framework": "verl", "tables": {"samples": table(samples, SAMPLE_FIELDS)},
                  "files": [str(f) for _, f in files],
                  "notes": [f"{len(samples)} responses in {len(files)} verl rollout dumps; score_mean is the mean "
                            "sequence score (the samples' reward column holds each response's score)"]}
