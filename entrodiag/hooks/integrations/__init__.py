"""Attachments for distributed RL frameworks, imported by the framework's worker processes.

- ``entrodiag.hooks.integrations.verl.attach``: verl 0.7.x (``DataParallelPPOActor``) and verl
  >= 0.8 (engine ``TrainingWorker``), chosen by the installed version;
- ``entrodiag.hooks.integrations.openrlhf.attach``: OpenRLHF 0.10-0.11;
- ``finish_run(run_dir)``: the driver's close of a run that the workers record into.

Importing this package imports no framework; each ``attach`` imports its own when called.
"""

from .common import finish_run

__all__ = ["finish_run"]
