"""The release a stranger takes: build the wheel, install it in a fresh virtual environment outside
the checkout, and run ``entrodiag demo --steps 5`` and the dashboard from the installed package.

SLOW-ISH: about 15 s on 2 idle cores when the session's warm-start cache is filled (the trainer
tests run first in the suite), plus about 15 s for the tiny model's warm start when it is not
(this file alone). One test, one build.

How it stays quick and honest:

- the wheel is built from a copy of the source tree (``pip wheel --no-deps --no-build-isolation``),
  so the build leaves nothing behind in the checkout;
- the fresh environment (``python -m venv --without-pip``) sees the dependencies (torch, polars,
  streamlit, ...) through a ``.pth`` line naming this interpreter's site-packages, so nothing is
  downloaded or reinstalled; only the wheel is installed into it (``--no-deps --ignore-installed``,
  so pip never touches the environment the tests run in);
- every command runs from a temporary working directory with ``PYTHONPATH`` unset, and the test
  checks that ``entrodiag`` and its app were imported from the fresh environment, never from the
  checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
#: The dashboard's folder in the checkout (``app/``, installed as ``entrodiag/app/``).
APP = next(p for p in (REPO / "entrodiag" / "app", REPO / "app") if (p / "streamlit_app.py").is_file())

#: Folders of the checkout a wheel build never needs (copying them would only cost time).
_SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "runs", "build", "dist", "*.egg-info", "__pycache__",
                               ".pytest_cache", "reports", "benchmarks", "tests", "node_modules")

#: Run by the fresh environment's python: the dashboard's first page and every page it lists, from
#: the installed package, on the demo's run. Prints one JSON line for the test to check.
_DASHBOARD_CHECK = r"""
import json, os, sys
from pathlib import Path
import entrodiag, entrodiag.dashboard as d
from streamlit.testing.v1 import AppTest

app = d.app_dir() / d.APP_ENTRY
os.environ[d.ROOT_ENV] = sys.argv[1]
at = AppTest.from_file(str(app), default_timeout=60)
at.run()
out = {"entrodiag": entrodiag.__file__, "app": str(app), "first_page_errors": [e.message for e in at.exception],
       "metrics": {m.label: m.value for m in at.metric},
       "runs": at.dataframe[0].value["run"].tolist() if len(at.dataframe) else [],
       "steps": at.dataframe[0].value["steps"].tolist() if len(at.dataframe) else [],
       "app_modules": sorted({m.__file__ for m in list(sys.modules.values())
                              if str(getattr(m, "__file__", None) or "").startswith(str(app.parent))}),
       "pages": {}}
for name in sorted(p.name for p in app.parent.glob("page_*.py")):
    at.switch_page(name)
    at.run()
    out["pages"][name] = [e.message for e in at.exception]
print(json.dumps(out))
"""


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    # one thread: the tiny model gains nothing from more, and on a loaded machine torch's spinning
    # worker threads made the demo 3x slower (98 s against 35 s measured side by side, load 13 on 2 cores)
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_installs_and_runs_demo_and_dashboard(tmp_path: Path, warm_start_cache: Path) -> None:
    pytest.importorskip("streamlit")
    t0 = time.perf_counter()
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_SKIP)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(src)], cwd=tmp_path, timeout=120)
    (wheel,) = wheels.glob("entrodiag-*.whl")
    t_build = time.perf_counter() - t0

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, timeout=60)
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp_path, timeout=30).stdout.strip())
    deps = sysconfig.get_paths()["purelib"]
    (purelib / "_entrodiag_test_deps.pth").write_text(deps + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--no-compile", str(wheel)],
         cwd=tmp_path, timeout=120)

    # what the wheel holds: the package, its dashboard, the licence; never the tests or the checkout's app/
    installed = purelib / "entrodiag"
    assert (installed / "app" / "streamlit_app.py").is_file()
    assert sorted(p.name for p in (installed / "app").glob("page_*.py")) == sorted(
        p.name for p in APP.glob("page_*.py"))
    (dist_info,) = purelib.glob("entrodiag-*.dist-info")
    assert "Apache License" in next(dist_info.rglob("LICENSE*")).read_text()
    # the published JSON Schemas of the --json outputs (package data), loadable from the installed package
    assert sorted(p.name for p in (installed / "schemas").glob("*.schema.json")) == sorted(
        p.name for p in (REPO / "entrodiag" / "schemas").glob("*.schema.json"))
    _run([str(py), "-c", "from entrodiag.schemas import SCHEMAS, schema; [schema(n) for n in SCHEMAS]"],
         cwd=tmp_path, timeout=60)

    # the demo, from the console script the wheel installed, outside the checkout
    work = tmp_path / "work"
    work.mkdir()
    t1 = time.perf_counter()
    demo = _run([str(venv / "bin" / "entrodiag"), "demo", "--steps", "5", "--out", str(work / "demo"),
                 "--no-progress"], cwd=work, timeout=300)
    t_demo = time.perf_counter() - t1
    steps = pq.read_table(work / "demo" / "steps").to_pydict()
    assert sorted(steps["step"]) == [0, 1, 2, 3, 4]
    assert json.loads((work / "demo" / "run.json").read_text())["status"] == "finished"
    assert "entropy" in demo.stdout

    # the dashboard: first page and every page, from the installed app, on the demo's run
    t2 = time.perf_counter()
    dash = _run([str(py), "-c", _DASHBOARD_CHECK, str(work / "demo")], cwd=work, timeout=180)
    t_dash = time.perf_counter() - t2
    out = json.loads(dash.stdout.strip().splitlines()[-1])
    for key in ("entrodiag", "app"):
        assert Path(out[key]).resolve().is_relative_to(purelib.resolve()), (key, out[key])
    assert len(out["app_modules"]) > 1, out["app_modules"]  # the pages' helpers, loaded from the wheel
    assert out["first_page_errors"] == []
    assert out["runs"] == ["demo"] and out["steps"] == [5]
    last = steps["entropy_mean"][steps["step"].index(4)]
    assert out["metrics"]["Entropy now (nats)"] == format(last, ".3f")
    assert set(out["pages"]) == {p.name for p in APP.glob("page_*.py")}
    assert all(errors == [] for errors in out["pages"].values()), out["pages"]
    print(f"wheel test: build {t_build:.1f} s, demo --steps 5 {t_demo:.1f} s, dashboard {t_dash:.1f} s, "
          f"total {time.perf_counter() - t0:.1f} s")
