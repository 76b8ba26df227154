"""Entropy-control experiment: can a controller hold tiny-arith's entropy in a band?

For each seed and controller (``none`` = plain GRPO, measured against the same target), trains
the ``tiny-arith`` preset with ``--entropy-target-frac 0.75 --entropy-control-from 50`` in its own
process (``OMP_NUM_THREADS=1``, at most ``--jobs`` at a time), then reports per run: the share of
steps from ``--score-from`` (100) on whose rollout entropy lies within ±20% of the target, the
overshoot and settling steps (``entrodiag.analysis.control``), the largest entropy after the
control start (an explosion check against the start), and the final held-out sampled and greedy
accuracy. A run already finished in ``--out`` is not trained again (rerun to resume a sweep).

``--schedules constant,linear,cosine`` runs each controller once per schedule (issue 28): ``constant``
is the fixed ``--frac`` target, ``linear``/``cosine`` go from the first to the second of
``--schedule-fracs`` (0.9,0.7) × the initial entropy between the control start and the last step
(``--entropy-schedule linear:0.9,0.7``; a full spec such as ``cosine:1.0,0.8@300`` is taken as it
is). Each run then also reports the share of steps from the control start within ±20% of the
scheduled target and the mean relative deviation from it, and whether the guard acted.

    python benchmarks/bench_entropy_control.py --out runs/control
    python benchmarks/bench_entropy_control.py --out runs/control --modes none,pi_coef --seeds 0 --steps 150
    python benchmarks/bench_entropy_control.py --out runs/sched --modes pi_coef --schedules constant,linear,cosine
    # a real model on a GPU (a local Hugging Face folder, a JSONL task):
    python benchmarks/bench_entropy_control.py --out runs/control-real --seeds 0 --steps 200 \
        --train-args "--model models/SmolLM2-135M-Instruct --task probes/arith.jsonl --max-new-tokens 6"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def schedule_spec(schedule: str, args) -> str:
    """``--entropy-schedule``'s value for a ``--schedules`` item ("" = the fixed ``--frac`` target)."""
    if schedule in ("", "constant"):
        return ""
    return schedule if ":" in schedule else f"{schedule}:{args.schedule_fracs}"


def run_dir(out: Path, mode: str, seed: int, schedule: str = "") -> Path:
    tag = "" if schedule in ("", "constant") else "-" + "".join(c if c.isalnum() or c == "." else "_" for c in schedule)
    return out / f"{mode}{tag}-s{seed}"


def finished(path: Path) -> bool:
    try:
        return json.loads((path / "run.json").read_text()).get("status") == "finished"
    except (OSError, ValueError):
        return False


def command(path: Path, mode: str, seed: int, args, schedule: str = "") -> list[str]:
    spec = schedule_spec(schedule, args)
    target = ["--entropy-schedule", spec] if spec else ["--entropy-target-frac", str(args.frac)]
    cmd = [sys.executable, "-m", "entrodiag.cli", "train", "--preset", "tiny-arith", "--out", str(path),
           "--seed", str(seed), "--entropy-control", mode, *target,
           "--entropy-control-from", str(args.control_from), "--no-progress"]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.gains.get(mode):
        cmd += ["--control-gains", args.gains[mode]]
    return cmd + shlex.split(args.train_args)


def train_all(jobs: list[tuple[str, int, str]], args) -> dict[tuple[str, int, str], float]:
    """Run the missing runs (controller, seed, schedule), ``args.jobs`` at a time; returns wall
    seconds per run trained."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo = [j for j in jobs if not finished(run_dir(args.out, *j))]
    running: dict[tuple[str, int, str], tuple[subprocess.Popen, float]] = {}
    walls: dict[tuple[str, int, str], float] = {}
    print(f"{len(jobs) - len(todo)} run(s) already finished, {len(todo)} to train", file=sys.stderr)
    while todo or running:
        while todo and len(running) < args.jobs:
            m, s, sc = todo.pop(0)
            path = run_dir(args.out, m, s, sc)
            if path.exists():  # an unfinished run: start it again from scratch
                import shutil

                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            log = open(path.parent / f"{path.name}.log", "w")
            running[(m, s, sc)] = (subprocess.Popen(command(path, m, s, args, sc), env=env, stdout=log,
                                                    stderr=log), time.perf_counter())
            print(f"started {path.name}", file=sys.stderr)
        time.sleep(2)
        for key, (p, t0) in list(running.items()):
            if p.poll() is not None:
                del running[key]
                walls[key] = time.perf_counter() - t0
                print(f"done {run_dir(args.out, *key).name} rc={p.returncode} in {walls[key]:.0f} s", file=sys.stderr)
    return walls


def measure(path: Path, score_from: int) -> dict:
    import polars as pl

    from entrodiag import load_run
    from entrodiag.analysis.control import control_summary

    run = load_run(path)
    c = control_summary(run, from_step=score_from)
    s = run.steps.sort("step")
    ev = run.evals.sort("step")
    acc = ev.filter(pl.col("name") == "val/accuracy_sampled")["value"]
    greedy = ev.filter(pl.col("name") == "val/accuracy_greedy")["value"]
    h = s["entropy_mean"]
    after = s.filter(pl.col("step") >= c.control_from)["entropy_mean"]
    return {
        **c.to_dict(), "entropy_start": float(h.head(10).mean()), "entropy_end": float(h.tail(10).mean()),
        "entropy_max_after": float(after.max()), "exploded": bool(after.max() > 1.5 * h.head(10).mean()),
        "guard_steps": int(s["control/guard"].sum()) if "control/guard" in s.columns else 0,
        "sampled_end": float(acc[-1]), "greedy_end": float(greedy[-1]), "steps": s.height,
    }


def label(r: dict) -> str:
    """The controller, with its schedule when it has one."""
    return r["mode"] if r.get("schedule", "constant") == "constant" else f"{r['mode']} {r['schedule']}"


def tables(rows: list[dict]) -> str:
    lines = ["| controller | seed | target (nats) | in band from step 100 | mean abs error | overshoot (nats) | "
             "settling (steps) | "
             "entropy start → end | max after start | knob start → end | sampled acc end | greedy acc end |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        knob = "—" if r["knob_start"] is None else f"{r['knob_start']:.3g} → {r['knob_end']:.3g}"
        settle = "never" if r["settling_steps"] is None else str(r["settling_steps"])
        lines.append(f"| {label(r)} | {r['seed']} | {r['target']:.3f} | {r['time_in_band']:.0%} | "
                     f"{r['tracking_error']:.3f} | {r['overshoot']:.3f} | {settle} | {r['entropy_start']:.3f} → {r['entropy_end']:.3f} | "
                     f"{r['entropy_max_after']:.3f} | {knob} | {r['sampled_end']:.3f} | {r['greedy_end']:.3f} |")
    lines += ["", "| controller | runs | in band (median) | in band (min) | ≥ 80% in band | mean abs error (median) | "
              "exploded | sampled acc end (median) | greedy acc end (median) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in dict.fromkeys(label(r) for r in rows):
        g = [r for r in rows if label(r) == mode]
        tib = [r["time_in_band"] for r in g]
        lines.append(f"| {mode} | {len(g)} | {statistics.median(tib):.0%} | {min(tib):.0%} | "
                     f"{sum(t >= 0.8 for t in tib)}/{len(g)} | "
                     f"{statistics.median(r['tracking_error'] for r in g):.3f} | {sum(r['exploded'] for r in g)} | "
                     f"{statistics.median(r['sampled_end'] for r in g):.3f} | "
                     f"{statistics.median(r['greedy_end'] for r in g):.3f} |")
    return "\n".join(lines)


def schedule_table(rows: list[dict]) -> str:
    """Per controller and schedule: the share of steps from the control start within ±20% of the
    scheduled target, per seed, and the mean relative deviation from it (``analysis.control``)."""
    lines = ["| controller | schedule | within ±20% of the schedule, per seed | ≥ 80% | mean rel. deviation "
             "(median) | entropy start → end (median) | exploded | guard steps | sampled acc end (median) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for key in dict.fromkeys((r["mode"], r["schedule_arg"]) for r in rows):
        g = [r for r in rows if (r["mode"], r["schedule_arg"]) == key]
        ins = [r["in_schedule"] for r in g]
        lines.append(
            f"| {key[0]} | {g[0]['schedule']} | {' / '.join(f'{x:.0%}' for x in ins)} (seeds "
            f"{', '.join(str(r['seed']) for r in g)}) | {sum(x >= 0.8 for x in ins)}/{len(g)} | "
            f"{statistics.median(r['mean_rel_deviation'] for r in g):.1%} | "
            f"{statistics.median(r['entropy_start'] for r in g):.3f} → "
            f"{statistics.median(r['entropy_end'] for r in g):.3f} | {sum(r['exploded'] for r in g)} | "
            f"{sum(r['guard_steps'] for r in g)} | {statistics.median(r['sampled_end'] for r in g):.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/control"))
    p.add_argument("--modes", default="none,pi_coef,pi_clip")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=0, help="steps per run (default: the preset's 450)")
    p.add_argument("--frac", type=float, default=0.75, help="target = FRAC x mean entropy of the first 10 steps")
    p.add_argument("--control-from", type=int, default=50)
    p.add_argument("--score-from", type=int, default=100, help="time in band is counted from this step")
    p.add_argument("--schedules", default="", help="constant,linear,cosine (or full specs): one run per "
                   "controller, seed and schedule; empty: the fixed --frac target only")
    p.add_argument("--schedule-fracs", default="0.9,0.7", help="F0,F1 of a bare linear/cosine schedule")
    p.add_argument("--gains", action="append", default=[], metavar="MODE=GAINS",
                   help="controller gains, e.g. pi_coef=0.5,0.05 (default: the controller's)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (each uses one thread)")
    p.add_argument("--train-args", default="", help="more `entrodiag train` flags for every run (quoted)")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args()
    args.gains = dict(g.split("=", 1) for g in args.gains)
    modes, seeds = args.modes.split(","), [int(s) for s in args.seeds.split(",")]
    schedules = args.schedules.split(",") if args.schedules else [""]
    jobs = [(m, s, sc) for s in seeds for sc in schedules for m in modes]
    walls = train_all(jobs, args)
    rows = []
    for m, s, sc in jobs:
        path = run_dir(args.out, m, s, sc)
        if not finished(path):
            print(f"{path} did not finish: see {path}.log", file=sys.stderr)
            continue
        rows.append({"seed": s, "schedule_arg": sc or "constant", **measure(path, args.score_from),
                     "wall_s": walls.get((m, s, sc))})
    print(tables(rows))
    if args.schedules:
        print()
        print(schedule_table(sorted(rows, key=lambda r: (r["mode"], schedules.index(r["schedule_arg"])
                                                         if r["schedule_arg"] in schedules else 0, r["seed"]))))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
