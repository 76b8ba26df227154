"""Confinement of the agent tools to one root folder: a run named by an agent is opened only when
it lies under the root, through no symlink that leaves it, and holds no file that leads out.

``ConfinedIndex`` is the root's query index (``store.index.RunsIndex``) listing only such runs, so
``list_runs`` and ``query`` see nothing outside the root either.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..store.index import RunFiles, RunsIndex, default_index_dir
from ..store.location import is_url, locate
from ..store.rundir import RunError
from ..store.schema import RUN_JSON, TABLES


class ConfinementError(RunError):
    """A path an agent gave that leaves the server's root (the message says which and why)."""


def checked_root(root: str | os.PathLike) -> Path:
    """``root`` as an absolute, symlink-free local folder; ``RunError`` when it is not one."""
    if is_url(str(root)):
        raise RunError(f"{root}: entrodiag mcp serves a local folder of runs, not a URL")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise RunError(f"{root}: no such folder (entrodiag mcp ROOT takes the folder holding the runs)")
    return path


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with every symlink and ``..`` resolved, lies in ``root`` (resolved already)."""
    return path.resolve().is_relative_to(root)


def resolve_run(root: Path, run: str) -> Path:
    """The run directory an agent named (relative to ``root``, or absolute inside it), checked:
    ``ConfinementError`` when it, or a file in it, leads outside ``root``; ``RunError`` when it is
    not a run. A folder holding exactly one run names that run, as on the command line."""
    text = str(run).strip()
    if not text:
        raise RunError("name a run: its path under the root, as list_runs gives it (run_id)")
    if is_url(text):
        raise ConfinementError(f"{text}: a URL; this server reads only the runs under {root}")
    given = Path(text)
    path = given if given.is_absolute() else root / given
    if not inside(root, path):
        raise ConfinementError(f"{text}: outside the server's root {root} (a '..', a symlink out or an absolute "
                               "path elsewhere); name a run as list_runs gives it")
    path = path.resolve()
    if not (path / RUN_JSON).is_file():
        inner = [p for p in path.iterdir() if (p / RUN_JSON).is_file()] if path.is_dir() else []
        if len(inner) != 1:
            raise RunError(f"{text}: not a run (no {RUN_JSON}); list_runs names the runs under the root")
        return resolve_run(root, str(inner[0]))
    check_contents(root, path)
    return path


def check_contents(root: Path, run_dir: Path) -> None:
    """``ConfinementError`` when run.json or a table's part file is a link that leads out of ``root``."""
    entries = [run_dir / RUN_JSON, *(run_dir / t for t in TABLES)]
    for table in TABLES:
        folder = run_dir / table
        if folder.is_dir() and inside(root, folder):
            entries += list(folder.iterdir())
    for entry in entries:
        if entry.is_symlink() and not inside(root, entry):
            raise ConfinementError(f"{entry.relative_to(run_dir.parent)}: a link out of the server's root {root}; "
                                   "refused")


#: per (root, run_id): the listing's fingerprints of the run when it was checked, and why it was
#: refused (None: kept). A run is checked again only when its files changed, not at every call.
_CHECKED: dict[tuple[str, str], tuple[tuple, str | None]] = {}


class ConfinedIndex(RunsIndex):
    """The root's ``RunsIndex`` listing only the runs that ``resolve_run`` would open. Its index
    folder is its own (``default_index_dir`` of the root with ``#agents``), so the runs it leaves
    out are not pruned from the index that ``entrodiag query`` and the dashboard keep for the root.
    A run is checked again only when its files changed (the listing's fingerprints); a run that
    cannot be checked (a symlink loop, no permission) is left out with the reason (``refused``)."""

    def __init__(self, root: Path, **kwargs) -> None:
        kwargs.setdefault("index_dir", default_index_dir(f"{root}#agents"))
        super().__init__(root, **kwargs)
        self.confined_root = root
        self._kept: tuple[list[RunFiles], list[RunFiles]] | None = None  # (the listing, the runs kept)
        self._refused: dict[str, str] = {}

    def runs(self) -> list[RunFiles]:
        listed = super().runs()
        if self._kept is None or self._kept[0] is not listed:
            self._kept = (listed, [r for r in listed if self._refusal(r) is None])
        return self._kept[1]

    def refused(self) -> dict[str, str]:
        """The runs under the root left out (as of the last listing), by run_id, with the reason."""
        self.runs()
        return dict(self._refused)

    def _refusal(self, run: RunFiles) -> str | None:
        key = (str(self.confined_root), run.run_id)
        stamp = (run.url, run.meta_fp, tuple(sorted(run.table_fps.items())))
        seen = _CHECKED.get(key)
        if seen is None or seen[0] != stamp:
            seen = _CHECKED[key] = (stamp, self._check(run))
        if seen[1] is not None:
            self._refused[run.run_id] = seen[1]
        else:
            self._refused.pop(run.run_id, None)
        return seen[1]

    def _check(self, run: RunFiles) -> str | None:
        try:
            resolve_run(self.confined_root, str(locate(run.url).local_path))
            why = None
        except RunError as e:
            why = str(e)
        except (OSError, RuntimeError) as e:  # a symlink loop, a folder that cannot be read
            why = f"{run.run_id}: cannot be checked ({type(e).__name__}: {e})"
        return why
