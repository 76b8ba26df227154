"""How an import fails, and how logged names reach a terminal.

``ImportFailure`` is the one error an import raises for bad input (one line, saying what to do);
``shown`` and ``listing`` print logged names with their control characters escaped, so that no
ANSI sequence of a hostile log reaches the terminal.
"""

from __future__ import annotations


class ImportFailure(ValueError):
    """The source cannot be imported; the message (one line, control characters of logged names
    escaped) says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(shown(message, 4000))


def listing(names: list[str], limit: int = 30) -> str:
    """``names`` joined with commas for a terminal, cut after ``limit`` with a count of the rest (a
    log may hold 100k columns), each shown by ``shown``."""
    text = ", ".join(shown(n) for n in names[:limit])
    return text + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def shown(name: str, width: int = 120) -> str:
    """A logged name as a terminal may print it: control characters escaped (no ANSI sequence of a
    hostile log reaches the terminal), cut to ``width`` characters."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= width else text[: width - 3] + "..."
