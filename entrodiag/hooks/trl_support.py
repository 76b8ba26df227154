"""What the TRL drop-in knows about TRL without importing it: the supported versions and their
check, and the names it adds to TRL's generation batch and checkpoints.

Shared by :mod:`entrodiag.hooks.trl` (the public, trl-free entry point) and
:mod:`entrodiag.hooks.trl_trainer` (the class, which imports trl).
"""

from __future__ import annotations

#: TRL versions whose GRPOTrainer has the hooks used here (source-checked: 0.20, 0.24, 0.29,
#: 1.0, 1.5, 1.10, 1.16)
SUPPORTED_TRL = ">=0.20,<2"
#: the version the tests run against
TESTED_TRL = "1.16.0"

ROW_KEY = "entrodiag_row"  # the key added to TRL's generation batch
CONTROL_FILE = "entrodiag_control.json"  # the entropy controller's state in a TRL checkpoint


def check_trl_version(version: str) -> None:
    """Raise ``RuntimeError`` unless ``version`` is in ``SUPPORTED_TRL``."""
    try:
        parts = [int(x) for x in version.split("+")[0].split(".")[:2] if x.isdigit()]
        major, minor = parts[0], parts[1] if len(parts) > 1 else 0
    except (ValueError, IndexError):
        major, minor = -1, -1
    if not ((major, minor) >= (0, 20) and major < 2):
        raise RuntimeError(
            f"entrodiag's RecordingGRPOTrainer supports trl {SUPPORTED_TRL} (tested with {TESTED_TRL}); "
            f"found trl {version}. Install a supported one: pip install 'trl{SUPPORTED_TRL}' "
            "(or pip install 'entrodiag[trl]')"
        )


def tracker_sinks(args, log_to) -> list:
    """The sinks of a TRL run (``RecordingGRPOTrainer(entrodiag_log_to=...)``): ``log_to`` (names,
    or a comma list) when given, else the trackers of TRL's ``report_to`` that entrodiag can send
    to (wandb, tensorboard, mlflow, trackio). W&B: entrodiag's series join TRL's own run, one run
    not two (the sink finds ``wandb.run`` when it first logs); TensorBoard: TRL's ``logging_dir``.
    MLflow and Trackio: a run of their own, named after the entrodiag run, beside TRL's (TRL opens
    its run in ``on_train_begin``, after the Recorder is built, and MLflow's active run belongs to
    TRL's thread)."""
    from ..sinks import SINKS, sink_names
    from ..sinks.tensorboard import TensorBoardSink

    if log_to is None:
        report_to = getattr(args, "report_to", None) or []
        report_to = [report_to] if isinstance(report_to, str) else list(report_to)
        log_to = [n for n in report_to if n in SINKS]
    names = sink_names(log_to)
    return [TensorBoardSink(args.logging_dir) if n == "tensorboard" and getattr(args, "logging_dir", None) else n
            for n in names]
