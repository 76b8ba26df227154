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

``--ceilings`` backtests both ceilings instead (issue 28): from the first 30% and 50% of the
evaluations, the final R predicted by the law (``estimate`` above, given the final entropy), by the
compute sigmoid (``compute_law``: ScaleRL's sigmoid of R against cumulative compute, given the
final compute; its 90% interval from ``predict_final``) and by their inverse-variance combination
(``combine``), over the real logs, every run of the wild corpus with a validation series
(``$ENTRODIAG_WILD_LOGS``) and the demo.

Usage::

    python benchmarks/bench_early_prediction.py [--demo /tmp/demo] [--ceilings]
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


# ------------------------------------------------------------------ both ceilings (issue 28)
CEILING_FRACS = (0.3, 0.5)
CEILING_METHODS = ("law", "compute", "combined", "mean")


def wild_runs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Every run of the wild corpus (tests/data/wild/manifest.json, files from $ENTRODIAG_WILD_LOGS)
    with a validation series of 2 points or more, imported into ``tmp``, with the name of its R."""
    sys.path.insert(0, str(ROOT / "tests"))
    from wild import manifest, source  # the corpus's one reader, shared with the tests

    from entrodiag.importers import classify

    out = {}
    for run in manifest():
        if not run.get("val_key") or run["n_val"] < 2:
            continue
        src, why = source(run)
        if src is None:
            print(f"skipped {run['name']}: {why}", file=sys.stderr)
            continue
        try:
            import_run(src, tmp / run["name"])
        except Exception as e:
            print(f"skipped {run['name']}: import refused: {e}", file=sys.stderr)
            continue
        out["wild " + run["name"]] = (tmp / run["name"], classify(run["val_key"]).name)
    return out


def combine(law: tuple[float, float, float], comp: tuple[float, float, float]) -> tuple[float, float, float]:
    """Inverse-variance mean of the two estimates (σ from each 90% half-width); half-width: the
    root sum of squares of the inverse-variance half-width and half their disagreement (the two are
    not independent: the same evaluations feed both)."""
    (e1, l1, h1), (e2, l2, h2) = law, comp
    w1, w2 = 1 / max((h1 - l1) / 2, 1e-9) ** 2, 1 / max((h2 - l2) / 2, 1e-9) ** 2
    est = (w1 * e1 + w2 * e2) / (w1 + w2)
    hw = math.sqrt(1 / (w1 + w2) + ((e1 - e2) / 2) ** 2)
    return est, est - hw, est + hw


def mean_of_two(law: tuple[float, float, float], comp: tuple[float, float, float]) -> tuple[float, float, float]:
    """The plain mean of the two estimates; half-width: the root sum of squares of the mean of the two
    half-widths and half their disagreement."""
    (e1, l1, h1), (e2, l2, h2) = law, comp
    est = (e1 + e2) / 2
    hw = math.sqrt(((h1 - l1 + h2 - l2) / 4) ** 2 + ((e1 - e2) / 2) ** 2)
    return est, est - hw, est + hw


def backtest_ceilings(runs: dict[str, tuple[Path, str | None]]) -> list[dict]:
    """From the first 30% and 50% of the evaluations: each method's estimate of the final R (the law
    given the final entropy, the compute sigmoid given the final compute, their combination), its
    90% interval, and whether it holds the actual final value; plus the compute fit's verdict on
    the prefix (``judge_compute``)."""
    from entrodiag.analysis.compute_law import (
        compute_axis,
        fit_arrays,
        judge_compute,
        metric_points,
        predict_final,
    )
    from entrodiag.analysis.metric import choose_metric
    from entrodiag.analysis.runs import AnalysisError

    rows = []
    for name, (path, metric) in runs.items():
        run = load_run(path)
        try:
            choice = choose_metric(run, metric)
        except AnalysisError as e:
            print(f"skipped {name}: {e}", file=sys.stderr)
            continue
        if choice.is_training:
            continue
        steps, R = metric_points(run, choice)
        try:
            lsteps, H, LR, _ = law_points(run, metric=choice.name)
        except AnalysisError:
            H = None
        axis = compute_axis(run)
        C = axis.at(steps)
        n = len(R)
        for f in CEILING_FRACS:
            k = math.ceil(f * n)
            row = {"run": name, "metric": choice.name, "n": n, "f": f, "k": k, "actual": float(R[-1]),
                   "axis": axis.axis}
            if k >= n:
                continue
            preds = {}
            if H is not None and len(H) == n:
                if k < 4 or np.ptp(H[:k]) <= 0:  # the law's own minimum (law.MIN_POINTS) and a moving entropy
                    row["law_reason"] = f"{k} points" if k < 4 else "entropy flat"
                else:
                    preds["law"] = prediction_interval(H[:k], LR[:k], float(H[-1]))
            else:
                row["law_reason"] = "no entropy at the evaluations"
            try:
                fit = fit_arrays(C[:k], R[:k], n_boot=200, axis=axis, steps=steps[:k])
                preds["compute"] = predict_final(fit, float(C[-1]), PREDICTION_LEVEL)
                row["compute_verdict"] = judge_compute(fit).status
            except AnalysisError as e:
                row["compute_reason"] = "too few points after the cut" if "at least" in str(e) else str(e)[:40]
            if "law" in preds and "compute" in preds:
                preds["combined"] = combine(preds["law"], preds["compute"])
                preds["mean"] = mean_of_two(preds["law"], preds["compute"])
            for m, (est, lo, hi) in preds.items():
                row[m] = {"error": est - R[-1], "half_width": (hi - lo) / 2, "covered": bool(lo <= R[-1] <= hi)}
            rows.append(row)
    return rows


def ceilings_markdown(rows: list[dict]) -> str:
    """The per-case table and the summary per method and fraction."""

    def cell(r, m):
        if m not in r:
            return "— (" + (r.get(f"{m}_reason") or "needs both") + ")"
        e = r[m]
        return f"{e['error']:+.3f} ± {e['half_width']:.3f}{'' if e['covered'] else ' **miss**'}"

    lines = [f"| run | axis | n | f | actual | law error ± {PREDICTION_LEVEL:.0%} | compute error ± {PREDICTION_LEVEL:.0%} "
             "| compute verdict | combined (inverse-variance) | mean of the two |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['axis']} | {r['n']} | {r['f']:.1f} | {r['actual']:.3f} | {cell(r, 'law')} | "
                     f"{cell(r, 'compute')} | {r.get('compute_verdict', '—')} | {cell(r, 'combined')} | {cell(r, 'mean')} |")
    lines += ["", f"Mean |error| of the final R and coverage of the {PREDICTION_LEVEL:.0%} interval, per method "
              "(cases: prefixes where the method gave a number; `compute, fits`: only where the sigmoid's "
              "verdict on the prefix is `fits`; `both`: the cases where law and compute both gave one):", "",
              "| f | method | cases | mean abs error | median abs error | coverage |", "|---|---|---|---|---|---|"]
    for f in CEILING_FRACS:
        at = [r for r in rows if r["f"] == f]
        groups = [(m, [r[m] for r in at if m in r]) for m in CEILING_METHODS]
        groups.insert(2, ("compute, fits", [r["compute"] for r in at if "compute" in r
                                            and r.get("compute_verdict") == "fits"]))
        both = [r for r in at if "combined" in r]
        groups += [(f"{m} (both)", [r[m] for r in both]) for m in ("law", "compute")]
        for m, es in groups:
            if not es:
                lines.append(f"| {f:.1f} | {m} | 0 | — | — | — |")
                continue
            err = [abs(e["error"]) for e in es]
            cov = sum(e["covered"] for e in es)
            lines.append(f"| {f:.1f} | {m} | {len(es)} | {np.mean(err):.3f} | {np.median(err):.3f} | "
                         f"{cov}/{len(es)} ({cov / len(es):.0%}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", default=str(ROOT / "data" / "sample-run"), help="the demo run (default: %(default)s)")
    p.add_argument("--logs", help="the real-logs folder (default: ../shared/real-logs or /work/shared/real-logs)")
    p.add_argument("--ceilings", action="store_true",
                   help="backtest both ceilings (the law and the compute sigmoid) over the real logs, the wild "
                        "corpus ($ENTRODIAG_WILD_LOGS) and the demo instead")
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
        if args.ceilings:
            both = {k: (v, None) for k, v in runs.items()}
            both.update(wild_runs(Path(tmp)))
            print(ceilings_markdown(backtest_ceilings(both)))
            return 0
        print(markdown(backtest(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
