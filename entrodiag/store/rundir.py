"""Finding a run directory: a local folder or an object-store URL, or the only run inside one.

``find_run_dir`` turns what a user typed into the folder that holds ``run.json``, with a one-line
``RunError`` when it is not there; ``unreachable_error`` is the one message for an object store that
cannot be read (every reader of a run on a store raises it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs

from . import location
from .location import Location, LocationError, locate
from .schema import RUN_JSON

_NOT_FOUND = pafs.FileType.NotFound
_DIRECTORY = pafs.FileType.Directory


class RunError(ValueError):
    """A path that is not a readable entrodiag run; the message says what to do."""


#: Where a run lives: a local folder, or a folder on an object store.
RunPath = Path | Location


def run_path(path: str | os.PathLike | Location) -> RunPath:
    """``path`` as the reader holds it: ``location.run_path``'s ``Path`` for a local folder
    (``file://`` URLs included), a ``Location`` for an object-store URL. Raises ``LocationError``
    for an unusable URL."""
    held = path if isinstance(path, Location) else location.run_path(path)
    if isinstance(held, Path):
        return held
    loc = locate(held)
    return loc.local_path if loc.is_local else loc


def unreachable_error(loc: Location, e: OSError) -> RunError:
    reason = " ".join(str(e).split())
    return RunError(f"{loc}: cannot read the object store ({reason[:300]}); check the URL, the endpoint "
                    "(AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, ...) in the environment")


def _find_remote(loc: Location) -> Location:
    try:
        kind = loc.info().type
        if kind == _NOT_FOUND:
            bucket = loc.fs_path.split("/", 1)[0]
            if "/" in loc.fs_path and loc.fs.get_file_info(bucket).type == _NOT_FOUND:
                raise RunError(f"{loc}: the bucket {bucket!r} does not exist (or these credentials cannot "
                               "see it)")
            raise RunError(f"{loc}: no such run (nothing is stored under this prefix)")
        if kind != _DIRECTORY:
            raise RunError(f"{loc} is an object (a file); a run is a folder holding run.json")
        entries = loc.list()
        if any(e.base_name == RUN_JSON and e.type != _DIRECTORY for e in entries):
            return loc
        inside = [loc / e.base_name for e in entries
                  if e.type == _DIRECTORY and (loc / e.base_name / RUN_JSON).is_file()]
    except OSError as e:
        raise unreachable_error(loc, e) from None
    return _the_only_run(loc, inside)


def find_run_dir(path: str | os.PathLike | Location) -> RunPath:
    """The run directory at ``path`` (a local path or a URL), or the only run directly inside it."""
    try:
        p = run_path(path)
    except LocationError as e:
        raise RunError(str(e)) from None
    if isinstance(p, Location):
        return _find_remote(p)
    try:
        if not p.exists():
            raise RunError(f"{p}: no such file or directory")
        if not p.is_dir():
            raise RunError(f"{p} is a file; a run is a directory holding run.json")
        if (p / RUN_JSON).is_file():
            return p
        inside = sorted(c for c in p.iterdir() if (c / RUN_JSON).is_file())
    except OSError as e:  # no permission to look inside
        raise RunError(f"{p}: cannot be read ({os_reason(e)})") from None
    return _the_only_run(p, inside)


def _the_only_run(folder: RunPath, inside: list) -> RunPath:
    """The one run among the runs ``inside`` a folder that is not a run itself, else why not."""
    if len(inside) == 1:
        return inside[0]
    if inside:
        names = ", ".join(c.name for c in inside[:5]) + (" ..." if len(inside) > 5 else "")
        raise RunError(f"{folder} holds {len(inside)} runs ({names}); name one of them")
    raise RunError(
        f"{folder} is not an entrodiag run: it has no run.json (a run directory is written by "
        "entrodiag.Recorder or `entrodiag train`)"
    )


def os_reason(e: OSError) -> str:
    return f"{type(e).__name__}: {e.strerror or e}"
