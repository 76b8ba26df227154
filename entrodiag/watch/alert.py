"""The alert: what a sink delivers (a collapse ``Flag`` and the run context at the step it was
raised), its text renderings, and the severity order alerts are filtered by.

Part of the alert sinks; the configuration and the delivery rule are described in
``entrodiag.watch.alerts``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..analysis.collapse import Flag

#: Severity order; the same as ``entrodiag.analysis.collapse.SEVERITIES`` (kept here so that this
#: module imports nothing heavy).
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")


def severity_rank(severity: str, what: str = "severity") -> int:
    """The place of ``severity`` in ``SEVERITIES``; ``ValueError`` naming ``what`` for an unknown one."""
    if severity not in SEVERITIES:
        raise ValueError(f"{what} must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Alert:
    """What a sink delivers: a ``Flag`` and the run context at the step it was raised.

    ``reason`` is ``"new"`` for the first alert of an episode and ``"escalation"`` when the
    severity rose within an alerted episode. ``time`` is the ISO 8601 UTC time of the decision.
    """

    run_id: str
    run_dir: str
    step: int
    kind: str
    severity: str
    first_step: int
    last_step: int
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: str = ""
    message: str = ""
    time: str = ""
    reason: str = "new"

    @classmethod
    def from_flag(cls, flag: Flag, *, step: int, run_id: str, run_dir: str | os.PathLike[str],
                  reason: str = "new") -> Alert:
        """The alert for ``flag`` raised at ``step`` in run ``run_id`` (directory ``run_dir``)."""
        return cls(
            run_id=str(run_id), run_dir=str(run_dir), step=int(step), kind=str(flag.kind),
            severity=str(flag.severity), first_step=int(flag.first_step),
            last_step=int(flag.last_step), evidence=dict(flag.evidence or {}),
            advice=str(flag.advice or ""), message=str(getattr(flag, "message", "") or ""),
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"), reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    @property
    def summary(self) -> str:
        """One line: severity, kind, step range, run and the message."""
        head = (f"[entrodiag] {self.severity.upper()} {self.kind} in run {self.run_id} "
                f"(steps {self.first_step}–{self.last_step}, raised at step {self.step})")
        if self.reason == "escalation":
            head += " — escalated"
        return f"{head}: {self.message}" if self.message else head

    def render_text(self) -> str:
        """A readable multi-line block (console and e-mail)."""
        lines = [self.summary]
        if self.evidence:
            evidence = ", ".join(f"{k}={format_value(v)}" for k, v in self.evidence.items())
            lines.append(f"  evidence: {evidence}")
        if self.advice:
            lines.append(f"  advice: {self.advice}")
        lines.append(f"  run: {self.run_dir}  at {self.time}")
        return "\n".join(lines)


def format_value(value: Any) -> str:
    """A value for a reader: floats to four significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
