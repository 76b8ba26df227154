"""``entrodiag import``: build a run (steps and evals) from metrics that another tool logged.

Formats (``format=`` / ``--format``; ``auto`` picks one from the path and the content):

- ``trainer_state``: a Hugging Face ``trainer_state.json`` (every TRL run leaves one in each
  checkpoint): its ``log_history``. A folder holding ``trainer_state.json`` or ``checkpoint-N``
  folders works too (the newest checkpoint is read).
- ``json``: a JSON document of a trainer of its own (a checkpoint's ``state.json``) that holds one
  list of per-step metric objects; the list and its step by the rule of ``json_history`` (a JSON
  object without ``log_history`` is read so).
- ``verl``: verl's JSONL file logger (``trainer.logger=['file']``), ``{"step": N, "data": {...}}``
  per line.
- ``jsonl``: one JSON object per line (nested objects are flattened with ``/``).
- ``csv``: a CSV (or TSV) history with a header, e.g. a W&B export (``run.history()``).
- ``tensorboard``: ``events.out.tfevents.*`` files (a file, or a folder holding them); parsed
  without TensorFlow or the tensorboard package (see ``tfevents``).
- ``verl_console``: verl's console output (``step:N - key:value - ...`` lines, with or without
  Ray's ``(main_task pid=...)`` prefix and colour codes; see ``console``).
- ``console``: the metric dicts transformers/TRL print at each logging step; the step is the
  progress counter printed before each, ``log_every``·k, or, where stdout was block-buffered into
  the file (several dicts after one counter), the logging interval read off the log times k
  (see ``console``). Numbers printed as text or inside numpy/torch/Decimal wrappers are numbers.
- ``notebook``: a Jupyter notebook (``.ipynb``) whose cell outputs hold such dicts (the last
  cell that trained with a reward is the run; see ``console.read_notebook``).
- the other RL frameworks (see ``frameworks``): ``roll_console`` (ROLL's ``metrics_tag`` lines),
  ``areal_console`` and ``areal_dumps`` (AReaL's stats tables; its rollout dumps), ``nemo_rl``
  (``train_data_step{N}.jsonl``: token rows of surprisal, not entropy), ``slime_dumps``
  (``--dump-details`` ``.pt`` files, ``torch.load(weights_only=True)`` only), ``verl_rollouts``
  (``rollout_data_dir/{step}.jsonl``) and ``tinker_rollouts`` (``train_rollout_summaries.jsonl``);
  their dumps also fill the run's ``samples`` and ``tokens`` tables (``dump_tables``).

- ``wandb``, ``mlflow``, ``trackio``: a tracker's own store, read with the tracker's reader (an
  optional extra each; see ``trackers``): a W&B run folder or run path, an MLflow tracking URI
  with ``run=``/``experiment=``, a Trackio project.

A JSONL whose records name their kind (``type``/``split``/``phase``/``mode``...: train, rollout,
eval...) is split by kind (see ``typed``): evaluation records become evaluations, the others step
columns, several training records for one step are combined (``eval_where`` overrides the
detection). run.json's ``entropy_semantics`` says what the entropy column measures (see
``semantics``), and values that cannot be right are counted in ``ImportReport.bad_values``.

Each logged column goes through ``columns.classify``: recognised names (TRL, verl incl. its
Dec-2024 names, OpenRLHF, custom loops' ``token_entropy``/``grpo_step``)
become entrodiag step columns (``entropy_mean``, ``reward_mean``, ...) or evaluations
(``val/...``), ``mapping`` (``--map column=field``) overrides or adds names, and every other
numeric column is kept as an extra step column under its own name and listed in
``ImportReport.unrecognised``. Rows logged for the same step merge (a later, different value
wins and is counted as a bad value).

The run is written through the store's ``RunWriter`` (no torch import), with
``source="import:<format>"`` in run.json and the column mapping under ``imported``.

The code, one job a module: ``detect`` (which format), ``readers`` (the per-format readers;
``console``, ``tfevents``, ``typed`` and ``json_history`` for the harder ones; ``trackers`` with
``wandb_store``,
``mlflow_store`` and ``trackio_store`` for the trackers' stores, ``points`` for stores of one
series per metric), ``columns`` (the column-name table),
``plan`` (where each logged column goes), ``values`` (what a logged value is worth, and what was
left out, counted), ``semantics`` (what the entropy column measures), ``build`` (``import_run``
itself) and ``failure`` (``ImportFailure``, names shown safely).
"""

from __future__ import annotations

from .build import ImportReport, import_run
from .columns import classify, parse_map
from .detect import FORMATS, detect_format
from .failure import ImportFailure, listing, shown
from .readers import read_history
from .trackers import TRACKER_FORMATS, tracker_uri

__all__ = [
    "FORMATS", "TRACKER_FORMATS", "ImportFailure", "ImportReport", "classify", "detect_format",
    "import_run", "listing", "parse_map", "read_history", "shown", "tracker_uri",
]
