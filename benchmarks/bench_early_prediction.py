"""Backtest of the early prediction: fit the entropy law on the first f of the evaluations,
predict the final validation accuracy (given the entropy at the final evaluation), and check the
90% interval, over every real run with a validation accuracy and over a demo run.

Real runs: ``../shared/real-logs`` (or /work/shared/real-logs), read in place and imported into a
temporary folder. The demo: ``--demo RUN`` (``entrodiag train --preset tiny-arith --out RUN``;
default ``data/sample-run``, the small run shipped with the repository).

Methods compared (the analysis ships ``estimate``; the others are what the literature and the
data suggested, kept here so the choice can be re-checked):

- ``law``: OLS of R on e^H over the whole prefix, entropy paired as a trailing mean of 5 steps
  (``early_prediction``'s ``predicted_final``; Cui et al. 2025's procedure);
- ``law, H at the step``: the same, entropy of the evaluation's own step (no smoothing);
- ``recency-weighted``: weighted least squares, weights 1..k (later points count more);
- ``ln(b − R)``: R = b − e^(c + m·H) with b, c, m free (grid over b, OLS of ln(b − R) on H);
- ``shrunk a``: a shrunk towards the median a of the *other* runs' full fits (precision-weighted,
  prior spread = the spread of those a's), b refitted;
- ``estimate``: ``prediction_interval`` (the later half of the prefix; interval from its
  prediction error, the disagreement with the whole-prefix fit and the evaluation noise).

Usage::

    python benchmarks/bench_early_prediction.py [--demo /tmp/demo] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from entrodiag import load_run
from entrodiag.analysis import stats
from entrodiag.analysis.law import PREDICTION_LEVEL, law_points, prediction_interval
from entrodiag.importers import import_run

FRACS = (0.15, 0.3, 0.5)
ROOT = Path(__file__).resolve().parents[1]


def real_logs() -> Path | None:
    for p in (ROOT / ".." / "shared" / "real-logs", Path("/work/shared/real-logs")):
        if p.is_dir():
            return p.resolve()
    return None


def sources(logs: Path) -> dict[str, Path]:
    """The real files that hold a validation accuracy."""
    out = {}
    for f in sorted((logs / "verl-console-ppo-gsm8k").glob("*.log")):
        out["verl " + f.name.split("-")[0] + ("-2b" if "gemma" in f.name else "-0.5B")] = f
    for d in sorted((logs / "cs336-grpo-qwen2.5-math-1.5b-math").iterdir()):
        if (d / "metrics.jsonl").is_file():
            out[f"cs336 {d.name}"] = d / "metrics.jsonl"
    return out


def _ols(x, y, w=None):
    w = np.ones_like(x) if w is None else w
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    slope = float(np.sum(w * (x - xm) * (y - ym)) / np.sum(w * (x - xm) ** 2))
    return slope, ym - slope * xm


def law(H, R, hn):
    s, i = stats.linregress(np.exp(H), R)
    return i + s * math.exp(hn)


def weighted(H, R, hn):
    s, i = _ols(np.exp(H), R, np.arange(1, len(H) + 1, dtype=float))
    return i + s * math.exp(hn)


def log_gap(H, R, hn):
    best = None
    for b in np.linspace(R.max() + 1e-3, R.max() + 1.0, 400):
        m, c = stats.linregress(H, np.log(b - R))
        sse = float(((R - (b - np.exp(c + m * H))) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, b, c, m)
    _, b, c, m = best
    return b - math.exp(c + m * hn)


def shrunk(H, R, hn, prior):
    a0, tau = prior
    x = np.exp(H)
    s, i = stats.linregress(x, R)
    resid = R - (i + s * x)
    se2 = float((resid**2).sum()) / max(len(x) - 2, 1) / float(((x - x.mean()) ** 2).sum())
    a_hat = -s
    a = (a_hat / se2 + a0 / tau**2) / (1 / se2 + 1 / tau**2)
    b = float(np.mean(R + a * x))
    return b - a * math.exp(hn)


def backtest(runs: dict[str, Path]) -> list[dict]:
    pts = {}
    for name, path in runs.items():
        run = load_run(path)
        _, H, R, metric = law_points(run)
        _, H1, R1, _ = law_points(run, smooth=1)
        x = np.exp(H)
        s, i = stats.linregress(x, R)
        r2 = 1 - float(((R - (i + s * x)) ** 2).sum()) / float(((R - R.mean()) ** 2).sum())
        pts[name] = (H, R, H1, R1, metric, r2, -s)
    rows = []
    for name, (H, R, H1, R1, metric, r2, _) in pts.items():
        others = [v[6] for k, v in pts.items() if k != name]
        prior = (float(np.median(others)), float(np.std(others, ddof=1)) if len(others) > 1 else 1.0)
        n = len(H)
        for f in FRACS:
            k = math.ceil(f * n)
            row = {"run": name, "metric": metric, "n": n, "r2": r2, "f": f, "k": k, "actual": float(R[-1])}
            if k < 4 or k >= n or np.ptp(H[:k]) <= 0:
                row["reason"] = f"{k} points in the prefix"
                rows.append(row)
                continue
            hn = float(H[-1])
            est, lo, hi = prediction_interval(H[:k], R[:k], hn)
            row.update({
                "law": law(H[:k], R[:k], hn) - R[-1],
                "law_h_at_step": law(H1[:k], R1[:k], float(H1[-1])) - R1[-1],
                "weighted": weighted(H[:k], R[:k], hn) - R[-1],
                "log_gap": log_gap(H[:k], R[:k], hn) - R[-1],
                "shrunk_a": shrunk(H[:k], R[:k], hn, prior) - R[-1],
                "estimate": est - R[-1], "half_width": (hi - lo) / 2, "covered": bool(lo <= R[-1] <= hi),
            })
            rows.append(row)
    return rows


METHODS = ("law", "law_h_at_step", "weighted", "log_gap", "shrunk_a", "estimate")


def markdown(rows: list[dict]) -> str:
    lines = [f"| run | R | n | R² (all) | f | fit pts | actual final | law error | estimate ± {PREDICTION_LEVEL:.0%} "
             "| error | covered |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "reason" in r:
            lines.append(f"| {r['run']} | {r['metric']} | {r['n']} | {r['r2']:.2f} | {r['f']:.2f} | {r['k']} "
                         f"| {r['actual']:.3f} | — | — | — | {r['reason']} |")
            continue
        est = r["estimate"] + r["actual"]
        lines.append(f"| {r['run']} | {r['metric']} | {r['n']} | {r['r2']:.2f} | {r['f']:.2f} | {r['k']} | "
                     f"{r['actual']:.3f} | {r['law']:+.3f} | {est:.3f} ± {r['half_width']:.3f} | "
                     f"{r['estimate']:+.3f} | {'yes' if r['covered'] else '**no**'} |")
    lines += ["", "Mean |error| of the final value by method (runs where the law fits, R² ≥ 0.5; "
              "coverage of the shipped 90% interval):", "",
              "| f | cases | " + " | ".join(METHODS) + " | coverage |",
              "|---|---|" + "---|" * len(METHODS) + "---|"]
    for f in FRACS:
        sel = [r for r in rows if r["f"] == f and r["r2"] >= 0.5 and "reason" not in r]
        if not sel:
            continue
        means = " | ".join(f"{np.mean([abs(r[m]) for r in sel]):.3f}" for m in METHODS)
        cov = sum(r["covered"] for r in sel)
        lines.append(f"| {f:.2f} | {len(sel)} | {means} | {cov}/{len(sel)} ({cov / len(sel):.0%}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", default=str(ROOT / "data" / "sample-run"), help="the demo run (default: %(default)s)")
    p.add_argument("--logs", help="the real-logs folder (default: ../shared/real-logs or /work/shared/real-logs)")
    args = p.parse_args(argv)
    logs = Path(args.logs) if args.logs else real_logs()
    if logs is None:
        print("no real-logs folder found (../shared/real-logs beside the repository); pass --logs", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, src in sources(logs).items():
            out = Path(tmp) / name.replace(" ", "_")
            import_run(src, out)
            runs[name] = out
        runs[f"demo ({Path(args.demo).name})"] = Path(args.demo)
        print(markdown(backtest(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
