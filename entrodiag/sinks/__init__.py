"""Sinks: entrodiag's numbers sent to the user's tracker (W&B, TensorBoard, MLflow, Trackio).

``Recorder(..., sinks=["wandb", "tensorboard"])``, ``entrodiag train --log-to wandb``, or
``log_to = ["mlflow"]`` in a training TOML. One module per tracker; each tracker's package is an
optional extra (``pip install 'entrodiag[wandb]'``).
"""

from .base import SINKS, SinkError, SinkSet, TrackerSink, make_sink, sink_names, step_metrics

__all__ = ["SINKS", "SinkError", "SinkSet", "TrackerSink", "make_sink", "sink_names", "step_metrics"]
