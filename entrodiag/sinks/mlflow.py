"""The MLflow sink: entrodiag's series as metrics of the user's active MLflow run, or of one it
starts (experiment ``$MLFLOW_EXPERIMENT_NAME`` or ``entrodiag``, at ``$MLFLOW_TRACKING_URI`` or
MLflow's default). Events are metrics plus a tag ``entrodiag/<kind>/<name>`` holding their text.

MLflow's active run belongs to a thread, so it is looked up in the Recorder's constructor (the
user's thread); the sink then logs through ``MlflowClient`` by run id from the sinks' thread,
with a server's retries and timeout bounded (one retry, 15 s a request) unless
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``_TIMEOUT`` say otherwise: a tracker that does not answer
costs some of entrodiag's series, never training's time.
"""

from __future__ import annotations

import os
import time

from ..tracker_env import mlflow_env
from .base import PREFIX, TrackerSink, require

#: a server's retries and seconds per request while the sink logs (unless the environment says otherwise)
HTTP_RETRIES, HTTP_TIMEOUT_S = 1, 15


class MlflowSink(TrackerSink):
    """Args:
        tracking_uri: the tracking server or store (default: MLflow's, ``$MLFLOW_TRACKING_URI``).
        experiment: the experiment of a run the sink starts.
        run_id: log into this existing run instead of the active one or a new one.
    """

    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 run_id: str | None = None) -> None:
        self.mlflow = require("mlflow", "mlflow")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_id = run_id
        self.owned = False
        self.client = None

    def start(self, meta: dict) -> None:
        super().start(meta)
        if self.run_id is None:
            active = self.mlflow.active_run()
            if active is not None:
                self.run_id = active.info.run_id
                self.tracking_uri = self.tracking_uri or self.mlflow.get_tracking_uri()

    def _open(self):
        if self.client is None:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(self.tracking_uri)
        if self.run_id is None:
            name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "entrodiag"
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            self.run_id = self.client.create_run(exp_id, run_name=str(self.meta.get("run_id") or "entrodiag")).info.run_id
            self.owned = True
        return self.client

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with mlflow_env(HTTP_RETRIES, HTTP_TIMEOUT_S):
            self._open().log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        with mlflow_env(HTTP_RETRIES, HTTP_TIMEOUT_S):
            self._open().set_tag(self.run_id, f"{PREFIX}{kind}/{name}", f"step {step}: {text}"[:5000])

    def close(self, status: str) -> None:
        if self.owned and self.client is not None:
            state = {"finished": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED")
            with mlflow_env(HTTP_RETRIES, HTTP_TIMEOUT_S):
                self.client.set_terminated(self.run_id, state)
