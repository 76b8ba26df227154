"""Intervention experiment: the tiny-arith preset under each policy-loss mode, same seed.

Each intervention trains a fresh run (same warm start, same seed, same prompts per step) and the
script reports, per run: the entropy at the start and at the end (mean of the first / last 10
steps), the final held-out sampled and greedy accuracy, the best sampled accuracy, the law fit's
R² when the analysis layer is installed, and the wall time. Runs go one after the other in this
process, so they share the machine state; compare the rows with each other.

    python benchmarks/bench_interventions.py --out runs/interventions
    python benchmarks/bench_interventions.py --steps 200 --only none,kl_cov
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

MODES = ("none", "clip_cov", "kl_cov", "clip_higher", "entropy_bonus", "forking_only")


def one(mode: str, out: Path, steps: int | None) -> dict:
    from entrodiag import load_run
    from entrodiag.trainer import load_config, train

    t0 = time.perf_counter()
    train(load_config("tiny-arith", intervention=mode, steps=steps), out, progress=False, log=lambda *a: None)
    wall = time.perf_counter() - t0
    run = load_run(out)
    s, ev = run.steps, run.evals.sort("step")
    acc = ev.filter(ev["name"] == "val/accuracy_sampled")["value"]
    greedy = ev.filter(ev["name"] == "val/accuracy_greedy")["value"]
    row = {
        "intervention": mode,
        "entropy_start": s.head(10)["entropy_mean"].mean(),
        "entropy_end": s.tail(10)["entropy_mean"].mean(),
        "sampled_start": acc[0], "sampled_end": acc[-1], "sampled_best": acc.max(),
        "greedy_end": greedy[-1],
        "wall_s": wall,
    }
    try:
        from entrodiag.analysis import fit_entropy_law

        row["law_r2"] = fit_entropy_law(run).r2
    except Exception:  # analysis layer absent, or a fit that is not well posed
        row["law_r2"] = None
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| intervention | entropy start → end (nats) | sampled acc start → end | best sampled | greedy end | law R² | wall (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        r2 = "—" if r["law_r2"] is None else f"{r['law_r2']:.2f}"
        lines.append(
            f"| {r['intervention']} | {r['entropy_start']:.3f} → {r['entropy_end']:.3f} | "
            f"{r['sampled_start']:.3f} → {r['sampled_end']:.3f} | {r['sampled_best']:.3f} | {r['greedy_end']:.3f} | "
            f"{r2} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/interventions", help="folder for the runs (one sub-folder per mode)")
    p.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--only", help="comma-separated modes (default: all)")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args()
    modes = args.only.split(",") if args.only else MODES
    root = Path(args.out)
    rows = []
    for mode in modes:
        out = root / mode
        if (out / "run.json").exists():
            raise SystemExit(f"{out} already holds a run: pass another --out")
        rows.append(one(mode, out, args.steps))
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
