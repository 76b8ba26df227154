"""Tasks with verifiable rewards: the built-in addition task and JSONL prompt/answer files.

A task is a train and a held-out list of (prompt, answer) strings plus a ``score`` that turns a
decoded response into a reward in [0, 1].
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class Task:
    name: str
    train_prompts: list[str]
    train_answers: list[str]
    val_prompts: list[str]
    val_answers: list[str]
    score: Callable[[str, str], float]
    """``score(response_text, reference_answer) -> reward``."""


def exact_match(response: str, answer: str) -> float:
    """1.0 when the response (up to <eos>) is exactly the answer, else 0.0."""
    return float(response.strip() == answer)


def addition_task(val_size: int = 500, seed: int = 0) -> Task:
    """Zero-padded 2-digit addition (DESIGN §5): prompt ``37+45=``, answer ``082``.

    All 10,000 pairs are shuffled with ``seed``; the first ``val_size`` are held out.
    """
    pairs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(seed).shuffle(pairs)
    prompts = [f"{a:02d}+{b:02d}=" for a, b in pairs]
    answers = [f"{a + b:03d}" for a, b in pairs]
    if not 0 < val_size < len(pairs):
        raise ValueError(f"val_size must lie in 1..{len(pairs) - 1} for the addition task, got {val_size}")
    return Task("addition", prompts[val_size:], answers[val_size:], prompts[:val_size], answers[:val_size], exact_match)


_BOXED = re.compile(r"\\boxed\s*\{")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces balanced; None if there is none."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    i, depth = starts[-1], 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a math response: the last ``\\boxed{}`` content, else the last number."""
    boxed = _boxed(text)
    if boxed is not None:
        return boxed.strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def as_number(s: str) -> float | None:
    s = s.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return float(num) / float(den)
        return float(s)
    except (ValueError, ZeroDivisionError):
        return None


def math_match(response: str, answer: str) -> float:
    """1.0 when the response's final answer (last ``\\boxed{}`` or last number) equals the
    reference: numerically when both parse as numbers (``1,000`` = ``1000.0``, ``3/4`` = ``0.75``),
    else as whitespace-normalised strings."""
    pred = extract_answer(response)
    if pred is None:
        return 0.0
    ref = extract_answer(answer) or answer
    a, b = as_number(pred), as_number(ref)
    if a is not None and b is not None:
        return float(abs(a - b) <= 1e-6 * max(1.0, abs(b)))
    return float(" ".join(pred.split()) == " ".join(ref.split()))


def jsonl_task(path: str | Path, val_size: int = 500, seed: int = 0) -> Task:
    """A JSONL file of ``{"prompt": ..., "answer": ...}`` lines, scored by :func:`math_match`.

    Lines with ``"split": "val"`` (or ``"test"``) form the held-out split; without any, a seeded
    ``min(val_size, n // 5)`` lines are held out.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"task file {path} does not exist (a JSONL file of {{'prompt', 'answer'}} lines)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or "answer" not in row:
            raise ValueError(f'{path}:{i}: each line needs "prompt" (a string) and "answer"')
        rows.append((row["prompt"], str(row["answer"]), row.get("split")))
    if len(rows) < 2:
        raise ValueError(f"{path} holds {len(rows)} example(s); a task needs at least 2 (train and held-out)")
    val = [r for r in rows if r[2] in ("val", "test")]
    train = [r for r in rows if r[2] not in ("val", "test")]
    if not val:
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        k = max(1, min(val_size, len(rows) // 5))
        val, train = shuffled[:k], shuffled[k:]
    if not train:
        raise ValueError(f"{path}: every line is held out; mark fewer lines as val")
    return Task(
        path.stem, [r[0] for r in train], [r[1] for r in train], [r[0] for r in val], [r[1] for r in val], math_match
    )


def make_task(spec: str, val_size: int, seed: int) -> Task:
    """``addition`` or a path to a JSONL file."""
    if spec == "addition":
        return addition_task(val_size, seed)
    return jsonl_task(spec, val_size, seed)
