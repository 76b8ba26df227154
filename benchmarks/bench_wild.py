"""The wild corpus (``tests/data/wild/``): how entrodiag reads public runs it was not built on,
reported per half (``tune``: the code was fixed against it; ``heldout``: never tuned to).

For every run of ``manifest.json`` (its log files from ``tests/data/wild/<name>/`` for the runs made
here, else from ``$ENTRODIAG_WILD_LOGS`` or ``../shared/wild-logs``), with no flags:

- **import fidelity**: steps, first and last step, first and last entropy (relative 1e-6) and the
  number of validation points equal the manifest's (our own parse of the raw file, not
  entrodiag's);
- **R**: the series ``analyze`` chose as R is the run's mean task score: the manifest's validation
  key when it has one with at least two points, else its task score (``score_key``; never a
  KL-penalised reward; a single evaluation is no series for the law: a rule added after batch 8's
  tune half was first run), or a series equal to it at every logged point (one number printed
  under two names; a rule added after batches 6-7 were first run, for Tinker's ``pass_rate`` =
  ``reward/total``);
- **verdict agrees with the raw numbers**, by one rule per reading of the manifest, written before
  the held-out half was run (flags by kind; ``law`` is the law verdict's status):

  | reading | agrees when |
  |---|---|
  | healthy | no explosion/volatility flag, and the law is not ``not applicable`` |
  | entropy-collapse | a collapse flag (``early_collapse``, ``entropy_floor``, ``entropy_decline``) |
  | explosion | ``entropy_explosion`` or ``entropy_volatility`` |
  | degeneration, entropy-rise, no-signal | the law's numbers are withheld (law is not ``fits``) |
  | resumed-late | the analysis says that the log starts late |
  | sparse, flat | no collapse and no explosion flag |

- **early prediction**: where the run has a validation series and the law fits, whether the final
  validation score lies in the 90% interval predicted from the first 30% and 50% of the
  evaluations (``early_prediction``'s rows).

Usage::

    ENTRODIAG_WILD_LOGS=/path/to/wild-logs python benchmarks/bench_wild.py [--half tune|heldout|all] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from wild import manifest, r_is_the_manifests, r_key, source  # noqa: E402  (the corpus's one reader, shared with the tests)

COLLAPSE = ("early_collapse", "entropy_floor", "entropy_decline")
EXPLOSION = ("entropy_explosion", "entropy_volatility")


def expected_r(run: dict) -> str:
    from entrodiag.importers import classify

    return classify(r_key(run)).name


def agrees(reading: str, kinds: set[str], law: str | None, late: bool) -> bool:
    """The rule of the module docstring."""
    collapse, explosion = bool(kinds & set(COLLAPSE)), bool(kinds & set(EXPLOSION))
    if reading == "healthy":
        return not explosion and law != "not applicable"
    if reading == "entropy-collapse":
        return collapse
    if reading == "explosion":
        return explosion
    if reading in ("degeneration", "entropy-rise", "no-signal"):
        return law != "fits"
    if reading == "resumed-late":
        return late
    if reading in ("sparse", "flat"):
        return not collapse and not explosion
    raise ValueError(f"no rule for the reading {reading!r}")


def evaluate(run: dict, tmp: Path) -> dict:
    """One run's row (see the module docstring)."""
    from entrodiag import load_run
    from entrodiag.analysis.summary import analyze_run
    from entrodiag.importers import classify, import_run

    row: dict = {"name": run["name"], "half": run["half"], "reading": run["reading"]}
    src, why = source(run)
    if src is None:
        return {**row, "skipped": why}
    try:
        import_run(src, tmp / run["name"])
    except Exception as e:  # a refused import is a fidelity miss, reported with its reason
        return {**row, "import_ok": False, "import_detail": f"refused: {e}".splitlines()[0][:160]}
    imported = load_run(tmp / run["name"])
    steps = imported.steps.sort("step")
    h = steps.filter(steps["entropy_mean"].is_not_null())["entropy_mean"]
    misses = []
    if steps.height != run["n_steps"]:
        misses.append(f"steps {steps.height} (want {run['n_steps']})")
    if steps.height and (steps["step"][0], steps["step"][-1]) != (run["first_step"], run["last_step"]):
        misses.append(f"steps {steps['step'][0]}–{steps['step'][-1]} (want {run['first_step']}–{run['last_step']})")
    if len(h) == 0 or not (math.isclose(h[0], run["entropy_first"], rel_tol=1e-6)
                           and math.isclose(h[-1], run["entropy_last"], rel_tol=1e-6)):
        misses.append(f"entropy {list(h[:1])}…{list(h[-1:])} (want {run['entropy_first']:.4g}…{run['entropy_last']:.4g})")
    if run["val_key"]:
        ev = imported.evals.filter(imported.evals["name"] == classify(run["val_key"]).name)
        if ev["step"].n_unique() != run["n_val"]:
            misses.append(f"validation points {ev['step'].n_unique()} (want {run['n_val']})")
    if len(h) == 0:
        return {**row, "import_ok": False, "import_detail": "; ".join(misses) + "; no entropy: not judged"}
    summary = analyze_run(imported)
    kinds = {f["kind"] for f in (summary.get("flags") or {}).get("items", [])}
    law = ((summary.get("law") or {}).get("verdict") or {}).get("status")
    late = "log starts at step" in json.dumps(summary, default=str)
    r_name = (summary.get("metric") or {}).get("name")
    early = {}
    for r in (summary.get("early_prediction") or {}).get("rows", []) or []:
        if r.get("frac") in (0.3, 0.5) and r.get("covered") is not None and run["val_key"] and law == "fits":
            early[r["frac"]] = bool(r["covered"])
    return {**row, "import_ok": not misses, "import_detail": "; ".join(misses), "r": r_name,
            "r_ok": r_is_the_manifests(imported, r_name, run), "r_want": expected_r(run), "flags": sorted(kinds), "law": law,
            "late": late, "agrees": agrees(run["reading"], kinds, law, late), "early": early}


def table(rows: list[dict]) -> str:
    out = ["| run | half | reading | import | R chosen | flags | law | verdict agrees | early 30% / 50% |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['name']} | {r['half']} | {r['reading']} | skipped: {r['skipped']} | | | | | |")
            continue
        imp = "full" if r["import_ok"] else f"**miss**: {r['import_detail']}"
        if "r" not in r:
            out.append(f"| {r['name']} | {r['half']} | {r['reading']} | {imp} | | | | | |")
            continue
        r_txt = f"`{r['r']}`" + ("" if r["r"] == r["r_want"] else
                                 f" (= `{r['r_want']}` at every point)" if r["r_ok"] else f" **(want `{r['r_want']}`)**")
        early = " / ".join({True: "in", False: "**out**"}.get(r["early"].get(f), "—") for f in (0.3, 0.5))
        out.append(f"| {r['name']} | {r['half']} | {r['reading']} | {imp} | {r_txt} | {', '.join(r['flags']) or '—'} "
                   f"| {r['law'] or '—'} | {'yes' if r['agrees'] else '**no**'} | {early} |")
    return "\n".join(out)


def totals(rows: list[dict], half: str) -> str:
    rs = [r for r in rows if r["half"] == half and "skipped" not in r]
    done = [r for r in rs if "r" in r]
    cov = {f: [r["early"][f] for r in done if f in r["early"]] for f in (0.3, 0.5)}
    cov_txt = ", ".join(f"{int(f * 100)}%: {sum(v)}/{len(v)}" for f, v in cov.items())
    return (f"{half}: {len(rs)} runs; full import {sum(r['import_ok'] for r in rs)}/{len(rs)}; "
            f"R a mean task score {sum(r['r_ok'] for r in done)}/{len(rs)}; "
            f"verdict agrees {sum(r['agrees'] for r in done)}/{len(rs)}; 90% interval covers the final score ({cov_txt})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--half", choices=("tune", "heldout", "all"), default="all")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    runs = manifest()
    runs = [r for r in runs if args.half == "all" or r["half"] == args.half]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            print(f"… {run['name']}", file=sys.stderr, flush=True)
            rows.append(evaluate(run, Path(tmp)))
    print(table(rows))
    print()
    for half in ("tune", "heldout"):
        if any(r["half"] == half for r in rows):
            print("- " + totals(rows, half))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
