"""NeMo-RL's per-step training dumps: ``train_data_step{N}.jsonl``.

NeMo-RL's GRPO loop (``nemo_rl/algorithms/grpo.py``) writes, at each step N (from 1), the batch it
trained on through ``Logger.log_batched_dict_as_jsonl`` (``nemo_rl/utils/logger.py``): one line
per sequence, every field a one-element list (a micro-batch of one), plus ``idx``:
``content``, ``rewards``, ``input_lengths``, ``token_ids``, ``token_loss_mask``,
``sample_loss_mask``, ``advantages``, ``generation_logprobs``, ``prev_logprobs`` (the token
lists padded to the batch's longest sequence; ``input_lengths`` is the real length).

The dumps hold the log-probability of each *sampled* token, never the distribution it was drawn
from, so no entropy can be read from them: −log p of a sampled token is its **surprisal**, one
Monte-Carlo sample of the entropy at that position. The token rows therefore hold ``logprob``
(``generation_logprobs``: the sampler's) and leave ``entropy`` empty, and the step column is
``surprisal_mean`` (the mean −log p over the generated tokens), never ``entropy_mean``;
run.json's ``entropy_semantics.tokens`` says ``surprisal`` and the analysis says so. The step
rows also hold ``reward_mean``/``reward_std`` (over sequences), ``resp_len_mean`` (generated
tokens per sequence), ``advantage_mean`` (over generated tokens) and ``logprob_mean``. A sample's
``response`` holds NeMo-RL's ``content``: the sequence's messages as one text (prompt included).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .dump_tables import SAMPLE_FIELDS, TOKEN_FIELDS, json_objects, steps_from_samples, table
from .failure import ImportFailure
from .values import count

STEP_FILE = re.compile(r"^train_data_step(\d+)\.jsonl$")
#: what the token rows hold, for run.json's ``entropy_semantics.tokens``
TOKEN_SEMANTICS = "surprisal"


def step_files(path: Path) -> list[tuple[int, Path]]:
    """``(N, file)`` of every ``train_data_step{N}.jsonl`` at ``path`` (a file or a folder)."""
    if path.is_file():
        m = STEP_FILE.match(path.name)
        return [(int(m.group(1)), path)] if m else []
    return sorted((int(m.group(1)), f) for f in path.iterdir() if (m := STEP_FILE.match(f.name)) and f.is_file())


def _one(v: Any) -> Any:
    """The value of a micro-batch-of-one field (``[x]`` -> ``x``)."""
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def read_nemo_rl(path: Path) -> tuple[list[dict], dict]:
    """Step rows, samples and surprisal token rows of NeMo-RL's ``train_data_step*.jsonl``."""
    files = step_files(path)
    if not files:
        raise ImportFailure(f"{path}: no NeMo-RL train_data_step<N>.jsonl file")
    samples: list[dict[str, Any]] = []
    tokens: list[dict[str, Any]] = []
    bad: dict[str, int] = {}
    per_step: dict[int, dict[str, list[float]]] = {}
    for step, f in files:
        acc = per_step.setdefault(step, {"logprob": [], "advantage": []})
        for lineno, rec in json_objects(f):
            sid = len(samples)
            ids, mask = _one(rec.get("token_ids")), _one(rec.get("token_loss_mask"))
            lps, advs = _one(rec.get("generation_logprobs")), _one(rec.get("advantages"))
            length = _one(rec.get("input_lengths"))
            n_gen = None
            if isinstance(lps, list) and isinstance(mask, list):
                end = length if isinstance(length, int) else len(lps)
                n_gen, pos = 0, 0
                for i in range(min(end, len(lps), len(mask))):
                    if not mask[i]:
                        continue
                    lp = _num(lps[i])
                    adv = _num(advs[i]) if isinstance(advs, list) and i < len(advs) else None
                    if lp is None or lp > 0:
                        count(bad, "generation_logprobs: not a log-probability (left out)")
                        lp = None  # left out of the token row too
                    else:
                        acc["logprob"].append(lp)
                    if adv is not None:
                        acc["advantage"].append(adv)
                    tokens.append({"step": step, "sample_id": sid, "pos": pos, "logprob": lp, "advantage": adv,
                                   "token_id": ids[i] if isinstance(ids, list) and i < len(ids) else None})
                    n_gen += 1
                    pos += 1
            elif lps is not None:
                count(bad, "sequences without token_loss_mask (their tokens left out)")
            content = _one(rec.get("content"))
            samples.append({"step": step, "sample_id": sid, "reward": _num(_one(rec.get("rewards"))),
                            "length": n_gen, "response": content if isinstance(content, str) else None})
    rows = steps_from_samples(samples)
    for row in rows:
        acc = per_step[row["step"]]
        if acc["logprob"]:
            row["logprob_mean"] = sum(acc["logprob"]) / len(acc["logprob"])
            row["surprisal_mean"] = -row["logprob_mean"]
            row["n_tokens"] = len(acc["logprob"])
        if acc["advantage"]:
            row["advantage_mean"] = sum(acc["advantage"]) / len(acc["advantage"])
    tables = {"samples": table(samples, SAMPLE_FIELDS)}
    if tokens:
        tables["tokens"] = table(tokens, TOKEN_FIELDS)
    return rows, {"bad_values": bad, "framework": "nemo_rl", "tables": tables, "token_semantics": TOKEN_SEMANTICS,
                  "files": [str(f) for _, f in files],
                  "notes": [f"{len(files)} NeMo-RL train_data_step files, {len(samples)} sequences, {len(tokens)} "
                            "generated tokens: the token rows hold log p of the sampled token "
                            "(generation_logprobs), labelled surprisal (−log p), not entropy; "
                            "surprisal_mean is the mean −log p, not entropy_mean"]}
