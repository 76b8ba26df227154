"""slime's ``--dump-details`` folders: ``rollout_data/{rollout_id}.pt`` and ``train_data/{rollout_id}_{rank}.pt``.

slime (THUDM/slime, ``slime/utils/arguments.py``) turns ``--dump-details DIR`` into
``--save-debug-rollout-data DIR/rollout_data/{rollout_id}.pt`` and
``--save-debug-train-data DIR/train_data/{rollout_id}_{rank}.pt``:

- a rollout file is ``torch.save(dict(rollout_id=..., samples=[Sample.to_dict(), ...]))``
  (``slime/ray/rollout.py``): each sample's ``prompt``, ``response``, ``response_length``,
  ``reward`` (a number, or a dict of them), ``index``/``group_index``, ``status``, ...;
- a train file is ``torch.save(dict(rollout_id=..., rank=..., rollout_data=...))``
  (``slime/utils/train_dump_utils.py``): the batch the actor trained on, one entry per sample
  in each list: ``tokens``, ``response_lengths``, ``loss_masks``, ``log_probs``,
  ``advantages`` and, where the actor computed it, ``entropy`` (per response token).

Both are read **only** with ``torch.load(weights_only=True)``, which loads tensors and plain
containers and refuses any other pickled object: a file that holds one is refused with the
reason, never loaded in full (that would run whatever code the file names). torch is imported
only here and only when a dump is read.

The rollout files become the samples table (step = ``rollout_id``) and the step rows' reward
and length; the train files the token rows (``entropy``, ``logprob``, ``advantage`` of each
response token) and the step columns ``entropy_mean`` (token mean over the loss mask, when the
dump has the entropy), ``logprob_mean`` and ``advantage_mean``. slime's logged
``train/entropy_loss`` (the mean entropy) and ``rollout/entropy`` come through the tracker
sources (TensorBoard, W&B).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .dump_tables import SAMPLE_FIELDS, TOKEN_FIELDS, merge_rows, steps_from_samples, table
from .failure import ImportFailure
from .values import count

ROLLOUT_FILE = re.compile(r"^(\d+)\.pt$")
TRAIN_FILE = re.compile(r"^(\d+)_(\d+)\.pt$")


def dump_files(path: Path) -> tuple[list[tuple[int, Path]], list[tuple[int, int, Path]]]:
    """``(rollout files, train files)`` of a ``--dump-details`` folder (or of one ``.pt`` file)."""
    if path.is_file():
        if (m := TRAIN_FILE.match(path.name)) and path.parent.name == "train_data":
            return [], [(int(m.group(1)), int(m.group(2)), path)]
        m = ROLLOUT_FILE.match(path.name)
        return ([(int(m.group(1)), path)] if m else [(-1, path)]), []
    rollouts = sorted((int(m.group(1)), f) for f in (path / "rollout_data").glob("*.pt") if (m := ROLLOUT_FILE.match(f.name)))
    trains = sorted((int(m.group(1)), int(m.group(2)), f) for f in (path / "train_data").glob("*.pt")
                    if (m := TRAIN_FILE.match(f.name)))
    return rollouts, trains


def looks_like_slime(path: Path) -> bool:
    """Whether ``path`` is a slime ``--dump-details`` folder, or one of its dumps
    (``rollout_data/<id>.pt``, ``train_data/<id>_<rank>.pt``): any other ``.pt`` file (a
    checkpoint) is not."""
    if path.is_file():
        return bool((path.parent.name == "rollout_data" and ROLLOUT_FILE.match(path.name))
                    or (path.parent.name == "train_data" and TRAIN_FILE.match(path.name)))
    return path.is_dir() and any(dump_files(path))


def load_dump(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``; a file that needs more is refused with the reason."""
    try:
        import torch
    except ImportError:
        raise ImportFailure(f"{path}: reading slime's .pt dumps needs torch (pip install torch)") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        why = str(e).strip().splitlines()
        named = next((ln.strip() for ln in why if "Unsupported global" in ln or "GLOBAL" in ln), None)
        if named is not None or "weights only" in str(e).lower():
            raise ImportFailure(
                f"{path}: refused: torch.load(weights_only=True) will not load it ({(named or why[0])[:200]}); the "
                "dump holds objects other than tensors and plain containers, and entrodiag loads dumps only that "
                "way, since loading it in full would run the code it names"
            ) from None
        raise ImportFailure(f"{path}: not a readable torch file ({(why[0] if why else type(e).__name__)[:200]})") from None


def _listed(v: Any) -> list | None:
    """A tensor or a list as a Python list (``None`` for anything else)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    return v if isinstance(v, list) else None


def _num(v: Any) -> float | None:
    if hasattr(v, "item"):
        v = v.item()
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _reward(v: Any) -> float | None:
    if isinstance(v, dict):  # a reward model that returns several values: slime's reward_key picks one
        return _num(v.get("score", next(iter(v.values()), None)))
    return _num(v)


def _rollout_samples(files: list[tuple[int, Path]], bad: dict[str, int]) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    for rid, f in files:
        obj = load_dump(f)
        if not isinstance(obj, dict) or not isinstance(obj.get("samples"), list):
            raise ImportFailure(f"{f}: not a slime rollout dump (a dict with 'samples')")
        step = obj.get("rollout_id", rid)
        for s in obj["samples"]:
            if not isinstance(s, dict):
                count(bad, "rollout samples that are not dicts (left out)")
                continue
            prompt, response = s.get("prompt"), s.get("response")
            samples.append({"step": step, "sample_id": len(samples), "group_id": s.get("group_index"),
                            "prompt": prompt if isinstance(prompt, str) else None,
                            "response": response if isinstance(response, str) else None,
                            "reward": _reward(s.get("reward")), "length": s.get("response_length")})
    return samples


def _train_tokens(files: list[tuple[int, int, Path]], bad: dict[str, int]) -> tuple[list[dict], dict[int, dict]]:
    tokens: list[dict[str, Any]] = []
    sums: dict[int, dict[str, list[float]]] = {}
    sample = 0
    for rid, rank, f in files:
        obj = load_dump(f)
        data = obj.get("rollout_data") if isinstance(obj, dict) else None
        if not isinstance(data, dict):
            raise ImportFailure(f"{f}: not a slime train dump (a dict with 'rollout_data')")
        step = obj.get("rollout_id", rid)
        acc = sums.setdefault(step, {"entropy": [], "logprob": [], "advantage": []})
        cols = {k: data.get(k) for k in ("entropy", "log_probs", "advantages", "loss_masks", "tokens", "response_lengths")}
        n = max((len(v) for v in cols.values() if isinstance(v, list)), default=0)
        for i in range(n):
            per = {k: (_listed(v[i]) if isinstance(v, list) and i < len(v) else None) for k, v in cols.items()}
            resp_len = next((len(per[k]) for k in ("entropy", "log_probs", "advantages") if per[k] is not None), 0)
            mask = per["loss_masks"] or [1] * resp_len
            toks = per["tokens"][-resp_len:] if per["tokens"] and resp_len else None
            for pos in range(resp_len):
                if pos < len(mask) and not mask[pos]:
                    continue
                row: dict[str, Any] = {"step": step, "rank": rank, "sample_id": sample, "pos": pos,
                                       "token_id": toks[pos] if toks else None}
                for key, src in (("entropy", "entropy"), ("logprob", "log_probs"), ("advantage", "advantages")):
                    v = _num(per[src][pos]) if per[src] is not None and pos < len(per[src]) else None
                    row[key] = v
                    if v is not None:
                        acc[key].append(v)
                if row["entropy"] is not None and row["entropy"] < 0:
                    count(bad, "entropy: negative (left out)")
                    acc["entropy"].remove(row["entropy"])
                    row["entropy"] = None
                tokens.append(row)
            sample += 1
    return tokens, sums


def read_slime_dumps(path: Path) -> tuple[list[dict], dict]:
    """Step rows, samples and token rows of a slime ``--dump-details`` folder (see the module docstring)."""
    rollouts, trains = dump_files(path)
    if not rollouts and not trains:
        raise ImportFailure(f"{path}: no slime dump (rollout_data/<id>.pt or train_data/<id>_<rank>.pt)")
    bad: dict[str, int] = {}
    samples = _rollout_samples(rollouts, bad)
    tokens, sums = _train_tokens(trains, bad)
    rows = steps_from_samples(samples) if samples else []
    derived = []
    for step, acc in sorted(sums.items()):
        d: dict[str, Any] = {"step": step}
        for key, col in (("entropy", "entropy_mean"), ("logprob", "logprob_mean"), ("advantage", "advantage_mean")):
            if acc[key]:
                d[col] = sum(acc[key]) / len(acc[key])
        if acc["entropy"]:
            d["n_tokens"] = len(acc["entropy"])
        derived.append(d)
    rows = merge_rows(rows, derived, ("entropy_mean", "logprob_mean", "advantage_mean", "n_tokens"))
    tables: dict[str, dict] = {}
    if samples:
        tables["samples"] = table(samples, SAMPLE_FIELDS)
    if tokens:
        tables["tokens"] = table(tokens, TOKEN_FIELDS)
    has_entropy = any(acc["entropy"] for acc in sums.values())
    return rows, {"bad_values": bad, "framework": "slime", "tables": tables,
                  "files": [str(f) for _, f in rollouts] + [str(f) for *_, f in trains],
                  **({"dump_entropy": True} if has_entropy else {}),
                  "notes": [f"slime dumps read with torch.load(weights_only=True): {len(rollouts)} rollout and "
                            f"{len(trains)} train files, {len(samples)} samples, {len(tokens)} response tokens"
                            + ("" if has_entropy else "; the train dumps hold no per-token entropy")]}
