"""Every run of the wild corpus (``tests/data/wild/``) imports with no flags and loses nothing:
its steps, first and last entropy and validation points as its ``manifest.json`` reads them (our
own parse of the raw file, not entrodiag's), no entropy or validation value left out as "not
numeric" (numpy-wrapped verl values), buffered TRL dicts each at their own step, and the series
``analyze`` takes as R is the run's mean task score (the validation score, else the task score).

Both halves are here. A held-out run that misses is listed in ``HELDOUT_MISSES`` (an expected
failure, strict: it fails the suite once fixed, so the list only shrinks) and in the held-out
table of ``benchmarks/README.md``: a held-out miss is reported, not patched in the change that
tuned on the other half. The public runs' files are not in the repository (see ``tests/wild.py``);
a run whose files are absent is skipped with the reason. The runs made here always run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from entrodiag import load_run
from entrodiag.analysis import analyze_run
from entrodiag.importers import classify, import_run
from wild import manifest, r_is_the_manifests, r_key, source

RUNS = manifest()
pytestmark = pytest.mark.skipif(not RUNS, reason="no wild-corpus manifest in tests/data/wild")

#: held-out runs that miss (benchmarks/README.md, "The wild corpus"): reported, fixed in a later change.
#: Batches 1-5's four held-out misses were fixed in one change, batches 6-7's two import misses
#: (verl's getting-started notebook, refused on import; TRL's closing train_runtime dict holding the
#: last step's metrics) in the next, batch 8's (a ROLL metrics.jsonl whose step is `system/step`,
#: refused with "no step column") in a later one; those runs have been looked at and count as tuned
#: on from then on. Batch 9's two (axiom-rl's state.json, a JSON document whose per-step dicts have
#: no step field, refused; an `entropy_volatility` on a healthy low-entropy run, a verdict this test
#: does not check) were fixed in the change after the batch's report, and count as tuned on too.
HELDOUT_MISSES: dict[str, str] = {}


def _param(run: dict):
    miss = HELDOUT_MISSES.get(run["name"])
    marks = [pytest.mark.xfail(strict=True, reason=miss)] if miss else []
    return pytest.param(run, id=run["name"], marks=marks)


def _source(run: dict) -> Path:
    path, why = source(run)
    if path is None:
        pytest.skip(why)
    return path


@pytest.mark.parametrize("run", [_param(r) for r in RUNS])
def test_run_imports_with_its_full_series_and_r_is_its_mean_score(run, tmp_path):
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
    chosen = analyze_run(imported)["metric"]["name"]
    assert r_is_the_manifests(imported, chosen, run), (chosen, r_key(run))
