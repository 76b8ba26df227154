"""``entrodiag import``: a run built from metrics another tool logged (the importers do the work).
"""

from __future__ import annotations

import argparse
import sys


def add_import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="trainer_state.json (or a folder with checkpoint-*/), a verl "
                   "JSONL log or console log, a captured TRL/transformers console, TensorBoard event file(s), a "
                   "CSV/JSONL history (e.g. a W&B export), a JSONL whose records name their kind (type/split/...); "
                   "or a tracker's store: a W&B run folder (wandb/run-*, wandb/offline-run-*) or "
                   "wandb:ENTITY/PROJECT/RUN_ID (online, needs W&B credentials); an MLflow tracking URI (an mlruns "
                   "folder, an SQLite file or sqlite:///PATH, http://HOST:PORT) with --run or --experiment; a "
                   "Trackio project (its PROJECT.db file, or trackio:PROJECT in Trackio's own store)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create (must not hold a run): a local "
                   "path or an object-store URL (s3://bucket/runs/x, gs://...; credentials from the environment)")
    p.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                   help="map a logged column to a step column (entropy_mean, reward_mean, ...), an "
                   "evaluation (val/NAME), 'step' or 'skip'; repeat for more columns")
    p.add_argument("--format", default="auto",
                   choices=("auto", "trainer_state", "json", "verl", "verl_console", "console", "notebook",
                            "jsonl", "csv", "tensorboard", "roll_console", "areal_console", "areal_dumps",
                            "nemo_rl", "slime_dumps", "verl_rollouts", "tinker_rollouts", "wandb", "mlflow",
                            "trackio"),
                   help="input format (default: detect from the name and content): verl_console = verl's "
                   "'step:N - key:value' console lines; json = a JSON document (not a trainer_state.json) "
                   "holding one list of per-step metric objects; console = the metric dicts transformers/TRL "
                   "print; notebook = "
                   "those dicts in a Jupyter notebook's cell outputs; the other frameworks' logs and dumps: see the "
                   "README's framework table")
    p.add_argument("--log-every", type=int, metavar="N",
                   help="console dicts: number the k-th printed dict N*k (the trainer's logging_steps) instead "
                   "of reading the progress-bar counter printed before it")
    p.add_argument("--eval-where", metavar="FIELD=VALUE",
                   help="record-typed JSONL: the field naming each record's kind and the value(s) (comma-"
                   "separated) of evaluation records, e.g. type=eval (default: detected from type/split/phase/mode)")
    p.add_argument("--run", metavar="ID", help="a tracker's store: the run to import, by id or name (MLflow, "
                   "Trackio; the run id in a wandb/ folder of several runs). Default: the only run, or the "
                   "newest of the experiment or project (said)")
    p.add_argument("--experiment", metavar="NAME", help="an MLflow store: the experiment (name or id) whose newest "
                   "run to import, unless --run names one")


def cmd_import(args: argparse.Namespace) -> int:
    """Build a run (steps and evals) from metrics another tool logged: TRL/HF, verl, OpenRLHF, TensorBoard, W&B,
    MLflow, Trackio."""
    from ..importers import ImportFailure, import_run, listing, shown

    refused = _refused(args.source, args.out)
    if refused:
        print(f"entrodiag import: {refused}", file=sys.stderr)
        return 2
    try:
        report = import_run(args.source, args.out, format=args.format, mapping=args.map,
                            log_every=args.log_every, eval_where=args.eval_where, run=args.run,
                            experiment=args.experiment)
    except (ImportFailure, ValueError, FileExistsError, OSError) as e:
        print(f"entrodiag import: {shown(str(e), 2000)}", file=sys.stderr)
        return 2
    # a log may hold 100k columns: each list is cut at 30 names (run.json's "imported" has them all)
    evals = f" ({listing(report.eval_names)})" if report.eval_names else ""
    print(f"imported {report.steps} steps and {report.eval_steps} evaluation steps{evals} from {report.source} "
          f"(format {report.format}, step column {report.step_column!r}) into {report.run_dir}")
    for note in report.notes[:20]:
        print(f"read        {shown(note, 300)}")
    if len(report.notes) > 20:
        print(f"            ... {len(report.notes) - 20} more notes (run.json: imported.notes)")
    sem = report.entropy_semantics
    if sem.get("column"):
        print("entropy     " + shown(f"{sem['column']}: {sem.get('kind') or 'kind unknown'}, "
              f"{sem.get('aggregation') or 'aggregation unknown'}, temperature {sem.get('temperature') or 'unknown'} "
              f"({sem.get('basis')})", 1000))
    elif sem.get("tokens") == "surprisal":
        print("tokens      " + shown(str(sem.get("basis")), 1000))
    if report.bad_values:
        print(f"bad values  {sum(report.bad_values.values())} in all:")
        for what, n in list(report.bad_values.items())[:30]:
            print(f"            {n} x {shown(what, 300)}")
        if len(report.bad_values) > 30:
            print(f"            ... {len(report.bad_values) - 30} more (run.json: imported.bad_values)")
    if report.columns:
        print("mapped      " + listing([f"{k} -> {v}" for k, v in report.columns.items()]))
    if report.unrecognised:
        print(f"unrecognised columns, kept as step columns under their own names ({len(report.unrecognised)}): "
              + listing(report.unrecognised))
        print("            map one with --map COLUMN=FIELD (e.g. --map my_entropy=entropy_mean)")
    if report.skipped:
        print("skipped     " + listing(report.skipped) + " (not numeric, another step counter, or mapped to skip)")
    if not report.evals:
        print("no evaluation columns found: the entropy law's R will be the training reward (said so in every "
              "output); map a held-out metric with --map COLUMN=val/NAME if the log has one")
    print(f"next: entrodiag inspect {report.run_dir}")
    return 0


def _refused(source: str, out: str) -> str | None:
    """Why ``import SOURCE --out OUT`` cannot work, said before any reading: SOURCE is already an
    entrodiag run (or its run.json), or OUT is a file. None when neither."""
    from pathlib import Path

    from ..importers import tracker_uri
    from ..store.location import is_url
    from ..store.schema import RUN_JSON

    if tracker_uri(source) is None and not is_url(source):
        src = Path(source)
        run = src if src.is_dir() else src.parent if src.name == RUN_JSON else None
        if run is not None and (run / RUN_JSON).is_file():
            return (f"{run} is already an entrodiag run (it has {RUN_JSON}): nothing to import; read it with "
                    f"entrodiag inspect {run} or entrodiag analyze {run}")
    if not is_url(out) and Path(out).exists() and not Path(out).is_dir():
        return f"--out {out} is a file; name a run directory to create"
    return None
