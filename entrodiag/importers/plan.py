"""Where each logged column goes: the step column, and a target for every other column.

``plan_columns`` classifies every logged name (``columns.classify``, the user's ``--map``
first), picks the step column (``step_key``: a known step name, else one found by its content),
and settles the clashes: a column that holds no number is skipped, two logged names for one
target leave the first one logged in place and keep the others under their own names, and a
logged name that is one of the columns entrodiag writes itself is kept as ``logged/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .columns import Target, classify
from .failure import ImportFailure, listing
from .step_key import step_column
from .values import number

#: names entrodiag writes itself: a logged column of that name is kept as ``logged/<name>``
OWN_COLUMNS = frozenset({"step", "rank", "entropy_hist", "run_id"})


@dataclass
class ColumnPlan:
    """The outcome of ``plan_columns``."""

    names: list[str]  # every logged name, in the order first logged
    targets: dict[str, Target]  # logged name -> its classification
    step_column: str
    skipped: list[str]  # not numeric, or mapped to skip
    used: dict[str, Target]  # logged name -> the step column or evaluation it fills
    notes: list[str] = field(default_factory=list)  # names kept under another name, said

    @property
    def unrecognised(self) -> list[str]:
        """The logged names kept as extra step columns under their own names."""
        return [n for n, t in self.used.items() if not t.known]

    @property
    def mapped(self) -> dict[str, str]:
        """Logged name -> step column or evaluation name, for the recognised names."""
        return {n: t.name for n, t in self.used.items() if t.known}

    @property
    def entropy_column(self) -> str | None:
        """The logged name that fills ``entropy_mean``, if any."""
        return next((n for n, t in self.used.items() if t.kind == "step" and t.name == "entropy_mean"), None)


def plan_columns(path: Path, rows: list[dict], user_map: dict[str, str]) -> ColumnPlan:
    """The ``ColumnPlan`` of ``rows`` read from ``path`` under the user's mapping.

    Raises ``ImportFailure`` when the mapping names a column the log lacks, or when no step
    column is found.
    """
    names = _logged_names(rows)
    targets = {n: classify(n, user_map) for n in names}
    for col in user_map:
        if col not in targets:
            raise ImportFailure(
                f"--map {col}=...: no column {col!r} in {path}; columns are: {listing(names)}"
            )
    step_col = step_column(path, names, targets, rows, user_map)
    targets[step_col] = Target("key", "step")
    numeric = {n: any(number(r.get(n)) is not None for r in rows) for n in names}
    skipped = [n for n in names if n != step_col and (
        targets[n].kind in ("skip", "key") or (targets[n].kind in ("step", "eval") and not numeric[n]))]
    used: dict[str, Target] = {
        n: t for n, t in targets.items() if n not in skipped and n != step_col and t.kind in ("step", "eval")
    }
    notes = _settle_clashes(used)
    return ColumnPlan(names=names, targets=targets, step_column=step_col, skipped=skipped, used=used,
                      notes=notes)


def _logged_names(rows: list[dict]) -> list[str]:
    """Every name logged in ``rows``, in the order first logged."""
    names: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for k in row:
            if k not in seen:
                seen.add(k)
                names.append(k)
    return names


def _settle_clashes(used: dict[str, Target]) -> list[str]:
    """Rename in ``used`` the logged names that clash; the notes that say so."""
    # two logged names for one target: the first one logged wins, the others stay as they are
    claimed: dict[tuple[str, str], str] = {}
    for n, t in list(used.items()):
        if t.known and (t.kind, t.name) in claimed:
            used[n] = Target("step", n, known=False)
        elif t.known:
            claimed[(t.kind, t.name)] = n
    notes = []
    for n, t in list(used.items()):  # a logged name that is one of the run's own columns
        if t.kind == "step" and t.name in OWN_COLUMNS:
            used[n] = Target("step", f"logged/{t.name}", known=False)
            notes.append(f"column {n!r} kept as 'logged/{t.name}' ({t.name!r} is a column entrodiag writes itself)")
    return notes
