"""Cost of the mutual-information proxy in the built-in trainer (``mi_every``, ``mi_k``).

Runs tiny-arith (64 prompts x 8 answers, the demo's settings) for ``--steps`` steps with
``mi_every=1`` and with ``mi_every=0``, alternated ``--repeats`` times in this process, and one run
with ``mi_every=2``, whose steps with and without the MI proxy alternate (robust to a load that
drifts between runs). It reports the median recorded ``step_time`` of each (steps 0 and the last,
which evaluate, left out), the median time of the MI computation itself
(``trainer.mutual_info.step_mi``, timed around its call) and its share of a step without it. Run it
with ``nice -n 10`` on a shared machine::

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/bench_mutual_info.py --steps 12 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import entrodiag.trainer.loop as loop
from entrodiag import load_run
from entrodiag.trainer import load_config, train


def one_run(mi_every: int, steps: int, k: int, root: Path, tag: str) -> list[float]:
    return [t for _, t in step_times(mi_every, steps, k, root, tag)]


def step_times(mi_every: int, steps: int, k: int, root: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, step_time)`` of one run, steps 0 and the last (which evaluate) left out."""
    cfg = load_config("tiny-arith", steps=steps, eval_every=1000, checkpoint_every=10_000, mi_every=mi_every, mi_k=k)
    out = train(cfg, root / tag, progress=False, log=lambda *a, **kw: None)
    df = load_run(out).steps.sort("step")
    return [(s, t) for s, t in zip(df["step"], df["step_time"]) if 0 < s < steps - 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", type=int, default=3)
    a = p.parse_args()
    inner, mi_times = loop.step_mi, []

    def timed(*args, **kw):
        t0 = time.perf_counter()
        out = inner(*args, **kw)
        if out:
            mi_times.append(time.perf_counter() - t0)
        return out

    loop.step_mi = timed
    with_mi, without = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            with_mi += one_run(1, a.steps, a.k, Path(tmp), f"mi-{r}")
            without += one_run(0, a.steps, a.k, Path(tmp), f"off-{r}")
        n_calls = len(mi_times)
        alt = step_times(2, 2 * a.steps, a.k, Path(tmp), "alternate")
        even, odd = [t for s, t in alt if s % 2 == 0], [t for s, t in alt if s % 2]
    res = {"load": os.getloadavg(), "threads": os.environ.get("OMP_NUM_THREADS"), "k": a.k,
           "step_s_mi_every_1": statistics.median(with_mi), "step_s_mi_every_0": statistics.median(without),
           "mi_call_s": statistics.median(mi_times[:n_calls]), "n_steps_each": len(with_mi),
           "alternating_step_s_with_mi": statistics.median(even), "alternating_step_s_without": statistics.median(odd),
           "alternating_mi_call_s": statistics.median(mi_times[n_calls:])}
    res["mi_share_of_step"] = res["mi_call_s"] / res["step_s_mi_every_0"]
    res["step_ratio"] = res["step_s_mi_every_1"] / res["step_s_mi_every_0"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
