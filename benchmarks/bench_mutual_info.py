"""Cost of the mutual-information proxy in the built-in trainer (``mi_every``, ``mi_k``).

Runs tiny-arith (64 prompts x 8 answers, the demo's settings) for ``--steps`` steps with
``mi_every=1`` and with ``mi_every=0``, alternated ``--repeats`` times in this process. Reports,
steps 0 and the last (which evaluate) left out:

- the median recorded ``step_time`` (wall) of each setting;
- the median wall and CPU time (``time.process_time``) of the MI computation itself
  (``trainer.mutual_info.step_mi``) and of the rest of a step (rollout, update, after-update
  entropy: ``Trainer.rollout``, ``Trainer.update``, ``Trainer.entropy_after``), each timed around
  its call; the MI proxy's share of a step is the ratio of the two. CPU time is the number to read
  on a shared machine (with ``OMP_NUM_THREADS=1`` it does not count other processes' load).

Run it with ``nice -n 10`` on a shared machine::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_mutual_info.py --steps 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from entrodiag import load_run
from entrodiag.trainer import load_config, loop, train

#: (setting, part) -> [(step, wall s, cpu s)]
TIMES: dict[tuple[str, str], list[tuple[int, float, float]]] = defaultdict(list)
SETTING = ["off"]


def timed(name: str, fn, step_of):
    def wrapper(*args, **kw):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        if name != "mi" or out:  # step_mi returns {} on the steps it skips
            TIMES[SETTING[0], name].append((step_of(args), time.perf_counter() - w, time.process_time() - c))
        return out
    return wrapper


def one_run(mi_every: int, steps: int, k: int, root: Path, tag: str) -> list[float]:
    """Recorded step times (wall) of one run, steps 0 and the last left out."""
    SETTING[0] = tag.split("-")[0]
    cfg = load_config("tiny-arith", steps=steps, eval_every=1000, checkpoint_every=10_000, mi_every=mi_every, mi_k=k)
    out = train(cfg, root / tag, progress=False, log=lambda *a, **kw: None)
    df = load_run(out).steps.sort("step")
    return [t for s, t in zip(df["step"], df["step_time"]) if 0 < s < steps - 1]


def median_of(setting: str, parts: tuple[str, ...], steps: int, col: int) -> float:
    """Median over the timed steps of the summed time (``col`` 1: wall, 2: CPU) of ``parts``."""
    per_step: dict[tuple[int, int], float] = defaultdict(float)  # (repeat, step) -> seconds
    for part in parts:
        seen: dict[int, int] = defaultdict(int)
        for s, *t in TIMES[setting, part]:
            if 0 < s < steps - 1:
                per_step[seen[s], s] += t[col - 1]
            seen[s] += 1
    return statistics.median(per_step.values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--k", type=int, default=3)
    a = p.parse_args()
    trainer = loop.Trainer
    step_counter = {"step": -1}

    def rollout_step(args):
        step_counter["step"] = args[1]
        return args[1]

    trainer.rollout = timed("rollout", trainer.rollout, rollout_step)
    trainer.update = timed("update", trainer.update, lambda args: step_counter["step"])
    trainer.entropy_after = timed("entropy_after", trainer.entropy_after, lambda args: step_counter["step"])
    loop.step_mi = timed("mi", loop.step_mi, lambda args: args[1])
    walls: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            walls["mi"] += one_run(1, a.steps, a.k, Path(tmp), f"mi-{r}")
            walls["off"] += one_run(0, a.steps, a.k, Path(tmp), f"off-{r}")
    rest = ("rollout", "update", "entropy_after")
    res = {"load_before_after": os.getloadavg(), "threads": os.environ.get("OMP_NUM_THREADS"), "k": a.k,
           "steps_timed": len(walls["mi"]),
           "step_time_s_mi_every_1": statistics.median(walls["mi"]),
           "step_time_s_mi_every_0": statistics.median(walls["off"]),
           "mi_wall_s": median_of("mi", ("mi",), a.steps, 1), "mi_cpu_s": median_of("mi", ("mi",), a.steps, 2),
           "rest_wall_s_mi_every_0": median_of("off", rest, a.steps, 1),
           "rest_cpu_s_mi_every_0": median_of("off", rest, a.steps, 2),
           "rest_cpu_s_mi_every_1": median_of("mi", rest, a.steps, 2)}
    res["mi_share_cpu"] = res["mi_cpu_s"] / res["rest_cpu_s_mi_every_0"]
    res["mi_share_wall"] = res["mi_wall_s"] / res["rest_wall_s_mi_every_0"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
