"""The wild corpus (``tests/data/wild/``): its manifest and where each run's files are.

Runs made here are committed with their files (``tests/data/wild/<name>/``). The public runs'
files are not in the repository (third-party files, some without a licence): they are read from
the folder named by ``ENTRODIAG_WILD_LOGS``, else ``../shared/wild-logs/`` beside the checkout,
one sub-folder per run. A run whose files are absent or differ from the manifest's sha256 has no
source, and the reason says why.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WILD = REPO / "tests" / "data" / "wild"


def manifest() -> list[dict]:
    """Every run of the corpus (both halves), as ``manifest.json`` lists them."""
    path = WILD / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else []


def logs_folder() -> Path:
    return Path(os.environ.get("ENTRODIAG_WILD_LOGS") or REPO.parent / "shared" / "wild-logs")


def source(run: dict) -> tuple[Path | None, str]:
    """The run's first file (the one ``entrodiag import`` is given), or ``None`` and why not."""
    for folder in (WILD / run["name"], logs_folder() / run["name"]):
        paths = [folder / f["name"] for f in run["files"]]
        if all(p.is_file() for p in paths):
            for p, f in zip(paths, run["files"]):
                if hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
                    return None, f"{p} differs from the sha256 in the manifest"
            return paths[0], ""
    return None, (f"the files of {run['name']} are absent (set ENTRODIAG_WILD_LOGS to the folder of the "
                  f"corpus logs; looked in {WILD / run['name']} and {logs_folder() / run['name']})")


def r_key(run: dict) -> str:
    """The logged name R should be: the manifest's validation key when the run was evaluated at two
    steps or more, else its task score (a single evaluation is no series to relate to the entropy;
    the runs' SOURCE.md say so: "a single evaluation cannot carry a law")."""
    return run["val_key"] if run["val_key"] and run["n_val"] >= 2 else run["score_key"]


def r_is_the_manifests(imported, chosen: str, run: dict) -> bool:
    """Whether the R that ``analyze`` chose (column or evaluation name ``chosen``) is the run's mean
    task score (``r_key``), or a series equal to it at every logged point (two names a logger prints
    for one number, e.g. Tinker's ``pass_rate`` and ``reward/total`` where the environment's reward
    is its pass rate)."""
    from entrodiag.importers import classify

    wanted = classify(r_key(run)).name
    if chosen == wanted:
        return True

    def points(name: str) -> list[tuple[int, float]]:
        ev = imported.evals.filter(imported.evals["name"] == name)
        if ev.height:
            return sorted(zip(ev["step"].to_list(), ev["value"].to_list()))
        steps = imported.steps
        if name not in steps.columns:
            return []
        kept = steps.filter(steps[name].is_not_null())
        return sorted(zip(kept["step"].to_list(), kept[name].to_list()))

    mine = points(chosen)
    return bool(mine) and mine == points(wanted)


def steps_run(path: Path, cols: dict):
    """A finished run at ``path`` whose step rows are ``cols`` (name -> values) at steps 1..n: the
    hand-made series of the class tests."""
    from entrodiag import load_run
    from entrodiag.store.writer import RunWriter

    n = len(next(iter(cols.values())))
    w = RunWriter(path, meta={"source": "test", "world_size": 1})
    w.append("steps", {"step": list(range(1, n + 1)), "rank": [0] * n,
                       **{k: [float(x) for x in v] for k, v in cols.items()}})
    w.close("finished")
    return load_run(path)
