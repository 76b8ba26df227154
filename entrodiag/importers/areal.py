"""AReaL's logs: its tabulated console stats and its rollout dumps.

- **Console** (``areal/utils/stats_logger.py``, ``StatsLogger.commit``): for each training step
  ``Epoch e/E Step s/S Train step g/G done.`` (g = global_step + 1), then ``Stats (i/k):`` and the
  step's stats printed by ``areal/utils/printing.py``'s ``tabulate_stats``: a ``fancy_grid``
  table of ``key | value`` pairs, four pairs to a row, column-major, values as ``.4e``. The
  trackers (W&B, SwanLab, TensorBoard) log the i-th stats dict of a commit at step
  ``max(global_step, last + 1) + i - 1``; the rows here use the same step, so a console log and a
  tracker export of one run line up. Values keep the five significant digits printed.
- **Rollout dumps** (``areal/workflow/rlvr.py``, ``RLVRWorkflow(dump_dir=...)``): one folder per
  weight version, one ``<query id>.txt`` per prompt, each sample written as
  ``idx: i / n, seqlen: L, reward is r.``, ``prompt is`` + the prompt, ``sequence is:`` + the
  completion (the texts between colorama codes). They become the samples table (version = step,
  one group per prompt file), and the step rows say the mean reward and the number of responses.

The entropy is ``ppo_actor/update/entropy/avg`` (``/min``, ``/max`` kept as logged).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .console import ANSI, number
from .dump_tables import SAMPLE_FIELDS, steps_from_samples, table
from .failure import ImportFailure
from .values import count

TRAIN_STEP = re.compile(r"Train step (\d+)/(\d+) done\.")
STATS_HEAD = re.compile(r"Stats \((\d+)/(\d+)\):")
_GRID_ROW = re.compile(r"^\s*│(.*)│\s*$")
_SAMPLE_HEAD = re.compile(r"^idx: (\d+) / (\d+), seqlen: (\d+), reward is (.*?)\.?$")


def looks_like_areal_console(text: str) -> bool:
    """Whether ``text`` holds AReaL's ``Train step N/M done.`` and ``Stats (i/k):`` lines."""
    return bool(TRAIN_STEP.search(text) and STATS_HEAD.search(text))


def read_areal_console(path: Path) -> tuple[list[dict], dict]:
    """Rows of an AReaL console log (see the module docstring)."""
    rows: list[dict] = []
    bad: dict[str, int] = {}
    last_commit = 0
    global_step: int | None = None
    current: dict[str, Any] | None = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = ANSI.sub("", raw.rstrip("\n"))
            if (m := TRAIN_STEP.search(line)) is not None:
                global_step = int(m.group(1)) - 1
                base = max(global_step, last_commit + 1) if rows else global_step
                current = None
                continue
            if (m := STATS_HEAD.search(line)) is not None and global_step is not None:
                step = base + int(m.group(1)) - 1
                last_commit = step
                current = {"step": step}
                rows.append(current)
                continue
            if current is not None and (g := _GRID_ROW.match(line)) is not None:
                cells = [c.strip() for c in g.group(1).split("│")]
                for key, value in zip(cells[0::2], cells[1::2]):
                    if not key:
                        continue
                    v = number(value)
                    if isinstance(v, str):
                        count(bad, f"{key}: printed value is not a number (left out)")
                        continue
                    current[key] = v
    rows = [r for r in rows if len(r) > 1]
    if not rows:
        raise ImportFailure(f"{path}: no AReaL stats table after a 'Train step N/M done.' line")
    return rows, {"bad_values": bad, "framework": "areal",
                  "notes": [f"{len(rows)} AReaL stats tables; step = the trackers' step (global_step, from 0)"]}


def looks_like_areal_dumps(folder: Path) -> bool:
    """Whether ``folder`` is an AReaL ``dump_dir``: version folders of ``<qid>.txt`` sample dumps."""
    for sub in folder.iterdir():
        if sub.is_dir() and sub.name.isdigit():
            for f in sub.glob("*.txt"):
                with open(f, encoding="utf-8", errors="replace") as fh:
                    return bool(_SAMPLE_HEAD.match(ANSI.sub("", fh.readline().rstrip("\n"))))
    return False


def _parse_dump(text: str) -> list[dict[str, Any]]:
    """The samples of one ``<qid>.txt``: ``idx``, ``seqlen``, ``reward``, ``prompt``, ``response``."""
    text = ANSI.sub("", text)
    out: list[dict[str, Any]] = []
    heads = [m for m in re.finditer(r"^idx: .*$", text, flags=re.M) if _SAMPLE_HEAD.match(m.group(0))]
    for i, m in enumerate(heads):
        h = _SAMPLE_HEAD.match(m.group(0))
        body = text[m.end() + 1: heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        prompt, sep, response = body.partition("\nsequence is: \n")
        out.append({"idx": int(h.group(1)), "seqlen": int(h.group(3)), "reward": number(h.group(4)),
                    "prompt": prompt.removeprefix("prompt is \n") if sep else None,
                    "response": response[:-1] if sep and response.endswith("\n") else (response if sep else None)})
    return out


def read_areal_dumps(folder: Path) -> tuple[list[dict], dict]:
    """Step rows and the samples table of an AReaL ``dump_dir`` (see the module docstring)."""
    samples: list[dict[str, Any]] = []
    bad: dict[str, int] = {}
    versions = sorted((int(d.name), d) for d in folder.iterdir() if d.is_dir() and d.name.isdigit())
    for version, d in versions:
        for group, f in enumerate(sorted(d.glob("*.txt"))):
            parsed = _parse_dump(f.read_text(encoding="utf-8", errors="replace"))
            if not parsed:
                count(bad, "dump files without a sample (left out)")
            for s in parsed:
                reward = s["reward"] if isinstance(s["reward"], (int, float)) else None
                if reward is None:
                    count(bad, "reward: not a number (left out)")
                samples.append({"step": version, "sample_id": len(samples), "group_id": group, "prompt_id": group,
                                "prompt": s["prompt"], "response": s["response"], "reward": reward})
    if not samples:
        raise ImportFailure(f"{folder}: no AReaL sample dump (<version>/<query id>.txt) holds a sample")
    return steps_from_samples(samples), {
        "bad_values": bad, "framework": "areal", "tables": {"samples": table(samples, SAMPLE_FIELDS)},
        "notes": [f"{len(samples)} samples in {len(versions)} AReaL dump versions (version = step); the dump "
                  "holds the sequence length with the prompt, not the response's, so no response length"]}
