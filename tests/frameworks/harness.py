"""Run a framework driver (tests/frameworks/drive_*.py) in the framework's cached environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .envs import ROOT, env_python

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def framework_python(framework: str) -> Path:
    """The cached environment's python (built on first use); skips when
    ``ENTRODIAG_SKIP_FRAMEWORK_TESTS=1``."""
    if os.environ.get("ENTRODIAG_SKIP_FRAMEWORK_TESTS") == "1":
        pytest.skip("ENTRODIAG_SKIP_FRAMEWORK_TESTS=1")
    return env_python(framework, log=lambda m: print(m, flush=True))


def drive(framework: str, driver: str, snippet: str, tmp_path: Path, timeout: float = 600) -> dict:
    """Run ``driver`` with the README block ``snippet`` under ``framework``'s environment.

    Returns ``{"run_dir", "out", "own" (the driver's own.json), "stdout", "seconds"}``.
    """
    python = framework_python(framework)
    snippet_file = tmp_path / "snippet.py"
    snippet_file.write_text(snippet, encoding="utf-8")
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MASTER_PORT": str(_free_port()),
           "TOKENIZERS_PARALLELISM": "false", "RAY_DISABLE_IMPORT_WARNING": "1"}
    t0 = time.time()
    proc = subprocess.run([str(python), str(HERE / driver), str(snippet_file), str(run_dir), str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{driver} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return {"run_dir": run_dir, "out": out, "own": json.loads((out / "own.json").read_text()),
            "stdout": proc.stdout, "stderr": proc.stderr, "seconds": time.time() - t0}
