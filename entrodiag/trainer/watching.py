"""The built-in trainer watching its own run: every ``watch_every`` steps the collapse detectors
run on what has been recorded (``entrodiag.watch.Watcher``), and a new flag can stop the run
(``--stop-on``) or switch the loss mode or the entropy controller (``--on-collapse``).
"""

from __future__ import annotations

from enum import IntEnum

import torch

from .config import TrainConfig
from .controllers import CONTROLLERS, from_config


class WatchDecision(IntEnum):
    """What a watch decided (an int, as the ranks agree on it through a broadcast)."""

    CARRY_ON = 0
    STOP = 1
    """Stop the run: a new flag at ``stop_on`` or worse."""
    SWITCH = 2
    """Switch to ``on_collapse`` from the next step."""


def switches_controller(cfg: TrainConfig) -> bool:
    """Whether ``on_collapse`` names an entropy controller (else a policy loss, ``none`` included)."""
    return cfg.on_collapse in CONTROLLERS and cfg.on_collapse != "none"


class CollapseWatch:
    """The watch's part of ``loop.Trainer`` (mixed into it): it uses the trainer's ``cfg``,
    ``rank``, ``world``, ``device``, ``rec``, ``log``, ``watcher`` (rank 0), ``control``,
    ``intervention`` and ``out``."""

    def watch(self, step: int, bar=None) -> WatchDecision:
        """Run the collapse detectors on everything recorded up to ``step`` (rank 0 decides, every
        rank follows): ``STOP`` on a new flag at ``stop_on`` or worse; ``SWITCH`` (the loss mode
        or entropy controller becomes ``on_collapse`` from the next step, recorded as an event) on
        the first new flag at ``on_collapse_severity`` or worse; else ``CARRY_ON``."""
        from ..analysis.collapse import at_or_above  # only a watching run needs the detectors
        from ..watch import describe_flag

        cfg = self.cfg
        self.rec.flush()
        if self.world > 1:
            torch.distributed.barrier()
        decision = WatchDecision.CARRY_ON
        if self.rank == 0:
            new = self.watcher.poll()
            self.rec.log_outlook(step, self.watcher.status)  # the trackers' ceiling and forecast, where changed
            for flag in new:
                (bar.write if bar is not None else self.log)(describe_flag(flag, step))
            stops = at_or_above(new, cfg.stop_on) if cfg.stop_on else []
            if stops:
                self.watcher.record_stop(step, stops[0], cfg.stop_on)
                decision = WatchDecision.STOP
            elif cfg.on_collapse and self.intervention != cfg.on_collapse and self.control.mode != cfg.on_collapse:
                hits = at_or_above(new, cfg.on_collapse_severity)
                if hits:
                    was = self.control.mode if switches_controller(cfg) else self.intervention
                    self.rec.log_event(step, "switch", cfg.on_collapse, severity=hits[0].severity,
                                       first_step=hits[0].first_step, last_step=hits[0].last_step,
                                       message=f"{was} -> {cfg.on_collapse} on {hits[0].kind}",
                                       detail={"from": was, "to": cfg.on_collapse,
                                               "flag": hits[0].kind, "from_step": step + 1})
                    decision = WatchDecision.SWITCH
        if self.world > 1:
            t = torch.tensor([int(decision)], device=self.device)
            torch.distributed.broadcast(t, 0)
            decision = WatchDecision(int(t.item()))
        if decision is WatchDecision.SWITCH and switches_controller(cfg):
            self.log(f"step {step}: switching the entropy controller {self.control.mode} -> {cfg.on_collapse}")
            self.control = self.control.hand_over(from_config(cfg, cfg.on_collapse), step + 1)
            self.rec.update_meta(entropy_control=cfg.on_collapse)
        elif decision is WatchDecision.SWITCH:
            self.log(f"step {step}: switching the policy loss {self.intervention} -> {cfg.on_collapse}")
            self.intervention = cfg.on_collapse
            self.rec.update_meta(intervention=self.intervention)
        if decision is WatchDecision.STOP:
            self.log(f"step {step}: stopping on a flag at {cfg.stop_on} or worse (--stop-on); "
                     f"checkpoint saved, resume with --resume {self.out}")
        return decision
