"""MLflow runs, read through ``mlflow.MlflowClient`` from any tracking store it reads.

The store is a tracking URI: an ``mlruns`` folder (MLflow's file store), an SQLite file or
``sqlite:///...`` (any SQLAlchemy URI), or a tracking server ``http(s)://HOST:PORT``. The run is
named by ``--run`` (a run id, or a run name) or ``--experiment`` (a name, or an id: its newest
run, said in a note); a store that holds one run needs neither.

Every metric key of the run is read with ``get_metric_history`` (each logged value with its step
and timestamp); the rows are built by ``points.rows_by_step`` in step and time order (a step
logged twice keeps its later value, counted by the importer, not dropped unseen), with
``wall_time`` from MLflow's timestamps. The
run's params become run.json's ``config`` (numbers read as numbers: ``temperature`` is found
there), its id, name, experiment, status and own tags go to ``imported.run``.

MLflow 3 refuses to open a file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set (the format is in
maintenance mode); reading a folder the user names is what that switch is for, so it is set
while the folder is read, and restored after. A server gets two retries and a 60 s timeout per
request unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``_TIMEOUT`` say otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..tracker_env import missing_package, mlflow_env, redacted
from .failure import ImportFailure, listing
from .points import rows_by_step

#: runs listed when a store holds several and none was named
_LISTED = 10


def read_mlflow(source: str | Path, run: str | None = None, experiment: str | None = None
                ) -> tuple[list[dict], dict]:
    """``(rows, meta)`` of one run of the MLflow store ``source`` (see the module docstring)."""
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise missing_package("mlflow", "mlflow", "reading an MLflow store", ImportFailure) from None
    uri, folder = tracking_uri(source)
    shown = redacted(uri)
    try:
        with mlflow_env(file_store=folder is not None):
            client = MlflowClient(tracking_uri=uri)
            found, notes = _pick_run(client, run, experiment, shown)
            run_id = found.info.run_id
            points = []
            for key in sorted(found.data.metrics):
                for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)):
                    points.append((m.step, key, m.value, m.timestamp / 1000 if m.timestamp else None))
            exp = client.get_experiment(found.info.experiment_id)
    except MlflowException as e:
        raise ImportFailure(f"MLflow store {shown}: {redacted(_first_line(e.message))}") from None
    except OSError as e:  # a server that does not answer, a folder that cannot be read
        raise ImportFailure(f"MLflow store {shown}: {redacted(_first_line(str(e))) or type(e).__name__}") from None
    info = {"run_id": run_id, "run_name": found.info.run_name, "experiment": exp.name if exp else None,
            "experiment_id": found.info.experiment_id, "status": found.info.status,
            "start_time": found.info.start_time,
            "tags": {k: v for k, v in found.data.tags.items() if not k.startswith("mlflow.")}}
    config = {k: param_value(v) for k, v in found.data.params.items()}
    notes.append(f"MLflow run {run_id} ({found.info.run_name}, experiment {info['experiment']!r}): "
                 f"{len(found.data.metrics)} metric histories, {len(points)} values")
    return rows_by_step(points), {"config": config, "run": info, "notes": notes, "from": f"{shown} run {run_id}"}


def tracking_uri(source: str | Path) -> tuple[str, Path | None]:
    """``(tracking URI, local folder or None)`` of ``source``: an ``mlruns`` folder, an SQLite
    file, or a URI as given. Refuses an SQLite URI whose file does not exist (MLflow would create
    an empty store there)."""
    text = str(source)
    p = Path(text)
    if isinstance(source, Path) or (p.exists() and "://" not in text):
        if p.is_dir():
            return str(p.resolve()), p
        return f"sqlite:///{p.resolve()}", None
    if "://" not in text:
        raise ImportFailure(f"{text}: no such file or directory (an MLflow store is an mlruns folder, an SQLite "
                            "file, sqlite:///PATH or http://HOST:PORT)")
    if text.lower().startswith("sqlite:///"):
        db = text[len("sqlite:///"):]
        if db and db != ":memory:" and not Path(db).exists():
            raise ImportFailure(f"{text}: no such SQLite file ({db})")
    return text, None


def param_value(text: str) -> Any:
    """An MLflow param (always text) as the number it writes, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def _pick_run(client: Any, run: str | None, experiment: str | None, shown: str) -> tuple[Any, list[str]]:
    """The run ``--run``/``--experiment`` name (see the module docstring) and the notes that say
    how it was chosen."""
    from mlflow.exceptions import MlflowException

    exp_ids = None
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None and experiment.isdigit():
            try:
                exp = client.get_experiment(experiment)
            except MlflowException:
                exp = None
        if exp is None:
            names = [e.name for e in client.search_experiments()]
            raise ImportFailure(f"--experiment {experiment}: no such experiment in {shown}; experiments: "
                                f"{listing(names)}")
        exp_ids = [exp.experiment_id]
    else:
        exp_ids = [e.experiment_id for e in client.search_experiments()]
    if run is not None:
        try:
            return client.get_run(run), []
        except MlflowException:
            pass  # not a run id: a run name?
        quoted = run.replace("\\", "\\\\").replace("'", "\\'")
        named = client.search_runs(exp_ids, filter_string=f"attributes.run_name = '{quoted}'",
                                   order_by=["attributes.start_time DESC"], max_results=_LISTED)
        if len(named) == 1:
            return named[0], []
        if named:
            raise ImportFailure(f"--run {run}: {len(named)} runs of that name in {shown}; name one by id: "
                                + listing([r.info.run_id for r in named]))
        raise ImportFailure(f"--run {run}: no run of that id or name in {shown}"
                            + (f" (experiment {experiment!r})" if experiment else ""))
    runs = client.search_runs(exp_ids, order_by=["attributes.start_time DESC"], max_results=_LISTED + 1)
    if not runs:
        raise ImportFailure(f"{shown}: no runs" + (f" in experiment {experiment!r}" if experiment else ""))
    if len(runs) == 1:
        return runs[0], []
    others = listing([f"{r.info.run_id} ({r.info.run_name})" for r in runs[1:_LISTED]])
    if experiment is None:
        raise ImportFailure(f"{shown} holds several runs; name one with --run ID or --experiment NAME (its newest "
                            f"run): {runs[0].info.run_id} ({runs[0].info.run_name}), {others}")
    note = (f"experiment {experiment!r} holds {'over ' if len(runs) > _LISTED else ''}"
            f"{min(len(runs), _LISTED)} runs: imported the newest, {runs[0].info.run_id} "
            f"({runs[0].info.run_name}); pass --run ID for another ({others})")
    return runs[0], [note]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""
