"""Regenerate ``data/sample-run``: the small run the dashboard tests and demos read.

Trains the tiny model with the built-in GRPO trainer (the ``tiny-arith-test`` preset, 120 steps,
held-out sampled and greedy accuracy every 5 steps, 4 responses per step kept as token, sample and
span rows), with the collapse watcher on (every 10 steps) and two alert sinks: the console, and a
webhook at an address where nothing listens, so that the run's ``events`` table holds a live
``flag``, its ``alert`` and an ``alert_failed``. Only run.json and the tables are kept (no
checkpoints): about 1 MB.

Deterministic up to times and the writer's pid/host: every random draw of the trainer is seeded.
Offline; a few minutes on 2 CPU cores (the tiny model's warm start is cached under
``$ENTRODIAG_CACHE`` or ``~/.cache/entrodiag``).

    .venv/bin/python data/make_sample_run.py            # writes data/sample-run
    .venv/bin/python data/make_sample_run.py OUT_DIR    # somewhere else
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from entrodiag.store.schema import RUN_JSON, TABLES
from entrodiag.trainer import load_config, train

HERE = Path(__file__).resolve().parent
OUT = HERE / "sample-run"

#: Overrides of the ``tiny-arith-test`` preset.
SETTINGS: dict[str, object] = {
    "steps": 120, "eval_every": 5, "val_size": 200, "token_sample": 4, "checkpoint_every": 1000,
    "watch_every": 10, "seed": 0,
}

ALERTS = """\
[alerts]
min_severity = "info"
cooldown_steps = 1000

[[alerts.sink]]
type = "console"

[[alerts.sink]]
type = "webhook"
name = "offline-webhook"
url = "http://127.0.0.1:9/entrodiag"
timeout = 1
"""


def make_sample_run(out: Path = OUT) -> Path:
    """Train the sample run and copy its run.json and tables (no checkpoints) to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        alerts = Path(tmp) / "alerts.toml"
        alerts.write_text(ALERTS, encoding="utf-8")
        cfg = load_config("tiny-arith-test", alerts=str(alerts), **SETTINGS)
        run = Path(train(cfg, Path(tmp) / out.name, progress=False))
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copy2(run / RUN_JSON, out / RUN_JSON)
        for table in TABLES:
            if (run / table).is_dir():
                shutil.copytree(run / table, out / table)
    return out


if __name__ == "__main__":
    target = make_sample_run(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"sample run written to {target} ({size / 1e6:.2f} MB)")
