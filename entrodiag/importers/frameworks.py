"""The other RL frameworks' logs and dumps: which format a path is, and its reader.

One module per framework holds its reader: ``roll`` (console ``metrics_tag`` lines), ``areal``
(tabulated console stats; rollout dumps), ``nemo_rl`` (``train_data_step{N}.jsonl``), ``slime``
(``--dump-details`` ``.pt`` files, ``torch.load(weights_only=True)`` only), ``verl_rollouts``
(``rollout_data_dir/{step}.jsonl``), ``tinker_rollouts`` (``train_rollout_summaries.jsonl``).
Each reader returns ``(rows, meta)`` like the other readers; ``meta`` may add ``framework``,
``tables`` (``samples``/``tokens`` columns for the run) and ``token_semantics``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .areal import looks_like_areal_console, looks_like_areal_dumps, read_areal_console, read_areal_dumps
from .nemo_rl import read_nemo_rl, step_files
from .roll import looks_like_roll, read_roll_console
from .slime import looks_like_slime, read_slime_dumps
from .tinker_rollouts import SUMMARY_FILE, read_tinker_rollouts, summary_files
from .verl_rollouts import STEP_FILE, is_rollout_record, read_verl_rollouts

Reader = Callable[[Path], tuple[list[dict], dict]]

#: format name -> reader (``--format`` names)
READERS: dict[str, Reader] = {
    "roll_console": read_roll_console,
    "areal_console": read_areal_console,
    "areal_dumps": read_areal_dumps,
    "nemo_rl": read_nemo_rl,
    "slime_dumps": read_slime_dumps,
    "verl_rollouts": read_verl_rollouts,
    "tinker_rollouts": read_tinker_rollouts,
}
FRAMEWORK_FORMATS = tuple(READERS)
#: formats that read a folder (or one file of it)
FOLDER_FORMATS = frozenset({"areal_dumps", "nemo_rl", "slime_dumps", "verl_rollouts", "tinker_rollouts"})


def _first_json(path: Path) -> object:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                try:
                    return json.loads(line.decode("utf-8", "replace"))
                except (ValueError, RecursionError):
                    return None
    return None


def detect_framework(path: Path, text_head: str = "") -> str | None:
    """The framework format of ``path`` (a folder, or a file whose start is ``text_head``), else ``None``."""
    if path.is_dir():
        if looks_like_slime(path):
            return "slime_dumps"
        if step_files(path):
            return "nemo_rl"
        if summary_files(path):
            return "tinker_rollouts"
        dumps = [f for f in path.iterdir() if STEP_FILE.match(f.name) and f.is_file()]
        if dumps and is_rollout_record(_first_json(dumps[0])):
            return "verl_rollouts"
        if looks_like_areal_dumps(path):
            return "areal_dumps"
        return None
    name = path.name
    if name.endswith(".pt") and looks_like_slime(path):
        return "slime_dumps"
    if step_files(path):
        return "nemo_rl"
    if name == SUMMARY_FILE:
        return "tinker_rollouts"
    if name.endswith((".jsonl", ".json")) and is_rollout_record(_first_json(path)):
        return "verl_rollouts"
    if looks_like_roll(text_head):
        return "roll_console"
    if looks_like_areal_console(text_head):
        return "areal_console"
    return None
