"""The tune half of the wild corpus (``tests/data/wild/``) imports with no flags and loses nothing:
each run's steps, first and last entropy and validation points as its ``manifest.json`` reads them
(our own parse of the raw file, not entrodiag's), no entropy or validation value left out as "not
numeric" (numpy-wrapped verl values), and buffered TRL dicts each at their own step.

Only runs whose ``half`` is ``tune`` are read here: the held-out half is reported on elsewhere and
never tuned to. The log files are not in the repository: they are read from ``ENTRODIAG_WILD_LOGS``
(else ``../shared/wild-logs/`` beside the checkout); a run whose files are absent or differ from
their sha256 is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from entrodiag import load_run
from entrodiag.importers import classify, import_run

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "tests" / "data" / "wild" / "manifest.json"
LOGS = Path(os.environ.get("ENTRODIAG_WILD_LOGS") or REPO.parent / "shared" / "wild-logs")


def _tune_runs() -> list[dict]:
    if not MANIFEST.is_file():
        return []
    return [r for r in json.loads(MANIFEST.read_text()) if r.get("half") == "tune"]


RUNS = _tune_runs()
pytestmark = pytest.mark.skipif(not RUNS, reason=f"no wild-corpus manifest at {MANIFEST}")


def _source(run: dict) -> Path:
    folder = LOGS / run["name"]
    for f in run["files"]:
        path = folder / f["name"]
        if not path.is_file():
            pytest.skip(f"{path} is absent (set ENTRODIAG_WILD_LOGS to the folder of the corpus logs)")
        if hashlib.sha256(path.read_bytes()).hexdigest() != f["sha256"]:
            pytest.skip(f"{path} differs from the sha256 in the manifest")
    return folder / run["files"][0]["name"]


@pytest.mark.parametrize("run", RUNS, ids=[r["name"] for r in RUNS])
def test_tune_run_imports_with_its_full_series(run, tmp_path):
    src = _source(run)
    report = import_run(src, tmp_path / "run")
    imported = load_run(tmp_path / "run")
    steps = imported.steps.sort("step")
    assert steps.height == run["n_steps"], report.notes
    assert (steps["step"][0], steps["step"][-1]) == (run["first_step"], run["last_step"])
    h = steps.filter(steps["entropy_mean"].is_not_null())["entropy_mean"]
    assert (h[0], h[-1]) == pytest.approx((run["entropy_first"], run["entropy_last"]), rel=1e-9)
    lost = {k: n for k, n in report.bad_values.items()
            if "not numeric" in k and k.split(": ")[0] in (run["entropy_key"], run["val_key"])}
    assert not lost
    if run["val_key"]:
        name = classify(run["val_key"]).name
        ev = imported.evals.filter(imported.evals["name"] == name)
        assert ev["step"].n_unique() == run["n_val"], sorted(imported.evals["name"].unique())[:20]
    if run["format"].startswith("trl-console") and run["n_steps"] > 1:
        assert "logged twice" not in " ".join(report.bad_values), report.bad_values  # one step per dict
