"""Cached virtual environments holding the real verl and OpenRLHF, for the framework tests.

Each environment is created on first use under ``$ENTRODIAG_FRAMEWORK_ENVS`` (default
``~/.cache/entrodiag/framework-envs``) in a folder named after it and a hash of its pinned install
steps, so a changed pin makes a new one and an unchanged one is reused. It holds the CPU torch
(``torch==2.13.0`` is pinned in every step, so pip never swaps in a CUDA build), entrodiag's own
dependencies (entrodiag itself is imported from the checkout through ``PYTHONPATH``) and the
framework, installed the way found to work on a CPU:

- verl 0.9.1 without extras (``[cpu]``, ``[fsdp]``, ``[vllm]``, ``[sglang]`` pin a CUDA torch) plus
  what ``verl.workers.engine_workers`` imports from the ``verl-core`` extra;
- verl 0.7.1 (it pins ``numpy<2``; numpy 2 is put back for pyarrow, verl runs on it) and, in the same
  environment, OpenRLHF 0.11.2 with ``--no-deps`` (flash-attn and vLLM are CUDA-only; the driver
  stubs their module-level imports) and its other requirements, DeepSpeed built without ops.

A finished environment has a ``.complete`` marker; a folder without one (an interrupted build) is
removed and built again. A lock file serialises concurrent builds of the same environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"


def _entrodiag_deps() -> list[str]:
    import re

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # (no tomllib on Python 3.10)
    deps = re.findall(r'"([^"]+)"', re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1))
    return [d for d in deps if not d.replace(" ", "").startswith("torch")]


#: OpenRLHF 0.11.2's requirements that the modules the driver imports need (its others, e.g. wandb,
#: optimum, torchmetrics, loralib, are for features not exercised here), pinned as OpenRLHF pins them
OPENRLHF_DEPS = [
    "accelerate", "aiohttp", "datasets", "einops", "grpcio>=1.74.0", "huggingface-hub>=1.0.0", "optree>=0.15.0",
    "packaging", "peft", "pylatexenc", "pynvml>=12.0.0", "ray[default]==2.55.0", "sympy", "tensorboard",
    "torchdata", "tqdm", "transformers==5.15.0", "wheel", "numpy>=2",
]

#: name -> pip steps: (arguments after ``pip install``, extra environment variables)
ENVS: dict[str, list[tuple[list[str], dict[str, str]]]] = {
    "verl-0.9.1": [
        ([TORCH, *_entrodiag_deps(), "verl==0.9.1", "uvicorn", "cachetools", "fastapi"], {}),
    ],
    "verl-0.7.1-openrlhf-0.11.2": [
        ([TORCH, *_entrodiag_deps(), "verl==0.7.1"], {}),
        ([TORCH, "numpy>=2"], {}),
        (["--no-deps", "openrlhf==0.11.2"], {}),
        ([TORCH, *OPENRLHF_DEPS], {}),
        (["--no-build-isolation", TORCH, "deepspeed==0.19.6"], {"DS_BUILD_OPS": "0"}),
    ],
}
#: which environment holds which framework
ENV_OF = {"verl-0.9.1": "verl-0.9.1", "verl-0.7.1": "verl-0.7.1-openrlhf-0.11.2",
          "openrlhf-0.11.2": "verl-0.7.1-openrlhf-0.11.2"}


def envs_root() -> Path:
    return Path(os.environ.get("ENTRODIAG_FRAMEWORK_ENVS") or Path.home() / ".cache/entrodiag/framework-envs")


def env_dir(name: str) -> Path:
    key = json.dumps([sys.version_info[:2], ENVS[name]], sort_keys=True)
    return envs_root() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def env_python(framework: str, log=print) -> Path:
    """The python of the cached environment that holds ``framework`` (e.g. ``verl-0.9.1``), built
    first if needed. Raises ``RuntimeError`` with pip's output when a step fails, or when the
    result holds a CUDA torch."""
    name = ENV_OF[framework]
    path = env_dir(name)
    python = path / "bin" / "python"
    if (path / ".complete").exists():
        return python
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / ".complete").exists():  # built by another process meanwhile
            return python
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.time()
        log(f"entrodiag tests: creating {path} (once; a few minutes)")
        _run([sys.executable, "-m", "venv", str(path)], {})
        for i, (args, extra_env) in enumerate(ENVS[name], 1):
            log(f"  [{i}/{len(ENVS[name])}] pip install {' '.join(args)}")
            _run([str(python), "-m", "pip", "install", "-q", *args], extra_env)
        check = subprocess.run(
            [str(python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
            capture_output=True, text=True,
        )
        version, cuda = check.stdout.split()
        if cuda != "None" or not version.startswith("2.13.0"):
            raise RuntimeError(f"{path}: torch {version} (CUDA {cuda}) was installed, not the CPU 2.13.0")
        (path / ".complete").write_text(json.dumps({"seconds": round(time.time() - t0, 1), "steps": ENVS[name]}))
        log(f"entrodiag tests: {path.name} ready in {time.time() - t0:.0f} s")
    return python


def prebuild(frameworks: list[str]) -> None:
    """Build the environments of ``frameworks`` in a background thread, one after the other, so
    that a test session overlaps their creation with the tests that come first. A test that needs
    one waits on its lock; a failure here is left to that test's own ``env_python`` call to report."""
    missing = [f for f in frameworks if not (env_dir(ENV_OF[f]) / ".complete").exists()]
    if not missing:
        return

    def build() -> None:
        for framework in missing:
            try:
                env_python(framework, log=lambda message: None)
            except Exception:
                pass

    import threading

    threading.Thread(target=build, name="entrodiag-framework-envs", daemon=True).start()


def _run(cmd: list[str], extra_env: dict[str, str]) -> None:
    env = {**os.environ, **extra_env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


if __name__ == "__main__":  # python tests/frameworks/envs.py verl-0.9.1 ...: build ahead of the tests
    for fw in sys.argv[1:] or list(ENV_OF):
        print(env_python(fw))
