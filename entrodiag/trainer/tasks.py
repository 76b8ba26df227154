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
    """Zero-padded 2-digit addition (docs/decisions.md): prompt ``37+45=``, answer ``082``.

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


_NAMES = ("Ava", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Hugo", "Ivy", "Jack", "Lena", "Max", "Nora",
          "Omar", "Pia", "Sam", "Tara", "Leo", "Mia", "Noah")
_ITEMS = ("apples", "books", "coins", "stickers", "marbles", "pencils", "cards", "shells", "stamps", "cookies",
          "balloons", "crayons")
WORD_ARITH_LEVELS = {
    1: "an addition or subtraction asked in words ('What is 7 plus 5?'), numbers 1-20",
    2: "a one-step story: gets more or gives away, numbers 1-9",
    3: "a one-step story: addition, subtraction or multiplication, numbers up to 60",
    4: "a two-step story (buys packs, gives some away), numbers up to 60",
    5: "a three-step story, numbers up to 200",
}
WORD_ARITH_DEFAULT_LEVEL = 1
"""Chosen so that SmolLM2-135M-Instruct's sampled (T = 1) starting accuracy lies in 10%-50%
(measured per level in benchmarks/README.md), so that GRPO groups hold both right and wrong answers."""
WORD_ARITH_SUFFIX = " Answer with a single number."


def _sum_or_difference(a: int, b: int, add: bool, plus: str, minus: str) -> tuple[str, int]:
    """``plus`` with ``a + b``, or (``add`` false) ``minus`` with the larger number first and their
    difference (never negative); the templates name the numbers ``{a}`` and ``{b}``."""
    if add:
        return plus.format(a=a, b=b), a + b
    a, b = max(a, b), min(a, b)
    return minus.format(a=a, b=b), a - b


def _word_problem(rng: random.Random, level: int) -> tuple[str, int]:
    """One seeded word problem of ``level`` and its integer answer (never negative)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    if level == 1:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        return _sum_or_difference(a, b, rng.random() < 0.5, "What is {a} plus {b}?", "What is {a} minus {b}?")
    if level == 2:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return _sum_or_difference(a, b, rng.random() < 0.5,
                                  f"{name} has {{a}} {item} and gets {{b}} more. How many {item} does {name} have now?",
                                  f"{name} has {{a}} {item} and gives away {{b}} of them. How many {item} does {name} "
                                  "have left?")
    if level == 3:
        op = rng.choice("+-*")
        if op == "*":
            a, b = rng.randint(2, 9), rng.randint(2, 12)
            return f"{name} buys {a} boxes with {b} {item} in each box. How many {item} does {name} buy?", a * b
        a, b = rng.randint(10, 60), rng.randint(10, 60)
        return _sum_or_difference(a, b, op == "+",
                                  f"{name} collected {{a}} {item} on Monday and {{b}} {item} on Tuesday. How many "
                                  f"{item} did {name} collect in total?",
                                  f"{name} had {{a}} {item} and lost {{b}} of them. How many {item} are left?")
    if level == 4:
        a, b, c = rng.randint(5, 60), rng.randint(2, 6), rng.randint(2, 10)
        if rng.random() < 0.5:
            return (f"{name} has {a} {item}, then buys {b} packs of {c} {item} each. How many {item} does {name} "
                    f"have now?"), a + b * c
        d = rng.randint(1, a)
        return (f"{name} has {a} {item}, gives {d} to a friend, then buys {b} packs of {c} {item} each. How many "
                f"{item} does {name} have now?"), a - d + b * c
    if level == 5:
        a, b, c = rng.randint(20, 200), rng.randint(2, 9), rng.randint(3, 15)
        d = rng.randint(1, a + b * c - 1)
        e = rng.randint(2, 50)
        return (f"{name} has {a} {item}. {name} buys {b} bags of {c} {item} each, gives {d} {item} away and then "
                f"finds {e} more. How many {item} does {name} have now?"), a + b * c - d + e
    raise ValueError(f"word-arith level must be one of {', '.join(map(str, WORD_ARITH_LEVELS))}, got {level}")


def word_arith_task(level: int = WORD_ARITH_DEFAULT_LEVEL, val_size: int = 500, seed: int = 0,
                    n: int = 5000) -> Task:
    """Seeded arithmetic word problems (numeric answers, scored by :func:`math_match`).

    Up to ``n`` distinct problems of ``level`` (see ``WORD_ARITH_LEVELS``) are drawn with ``seed``
    (level 1 has about 600); the first ``val_size`` are held out. Each prompt ends with "Answer with a single number."
    """
    if level not in WORD_ARITH_LEVELS:
        raise ValueError(f"word-arith level must be one of {', '.join(map(str, WORD_ARITH_LEVELS))}, got {level}")
    if not 0 < val_size < n:
        raise ValueError(f"val_size must lie in 1..{n - 1} for the word-arith task, got {val_size}")
    rng = random.Random(f"word-arith:{level}:{seed}")
    seen: dict[str, str] = {}
    misses = 0
    while len(seen) < n and misses < 2000:  # a small level runs out of new problems
        q, a = _word_problem(rng, level)
        before = len(seen)
        seen.setdefault(q + WORD_ARITH_SUFFIX, str(a))
        misses = 0 if len(seen) > before else misses + 1
    prompts, answers = list(seen), list(seen.values())
    if val_size >= len(prompts):
        raise ValueError(f"val_size {val_size} leaves no training prompts: word-arith level {level} has "
                         f"{len(prompts)} distinct problems")
    return Task(f"word-arith-{level}", prompts[val_size:], answers[val_size:], prompts[:val_size],
                answers[:val_size], math_match)


def make_task(spec: str, val_size: int, seed: int) -> Task:
    """``addition``, ``word-arith`` (the default level), ``word-arith:LEVEL`` or a path to a JSONL file."""
    if spec == "addition":
        return addition_task(val_size, seed)
    if spec == "word-arith" or spec.startswith("word-arith:"):
        level = spec.partition(":")[2] or str(WORD_ARITH_DEFAULT_LEVEL)
        if not level.isdigit():
            raise ValueError(f"task {spec!r}: the level after word-arith: must be a number (1-{len(WORD_ARITH_LEVELS)})")
        return word_arith_task(int(level), val_size, seed)
    return jsonl_task(spec, val_size, seed)
