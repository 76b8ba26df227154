"""Every --json output the tests parse goes through here: parsed and checked against its published
JSON Schema (``entrodiag/schemas/``), so a field that drifts from the schema fails the test that
produced it."""

from __future__ import annotations

import json
from typing import Any

from entrodiag.schemas import SCHEMA_VERSION, validate


def checked(name: str, text: str | dict) -> Any:
    """``text`` (JSON text or an already parsed document) validated against the schema ``name``."""
    doc = json.loads(text) if isinstance(text, str) else text
    validate(name, doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    return doc


def diagnosis(text: str | dict) -> dict:
    """``analyze --json``'s document, checked."""
    return checked("diagnosis", text)


def query_rows(text: str | dict) -> list[dict]:
    """The rows of ``query --json``, checked."""
    return checked("query", text)["rows"]


def watch_events(text: str) -> list[dict]:
    """The events of ``watch --json`` (one JSON object per line), each checked."""
    return [checked("watch-event", line) for line in text.splitlines() if line.strip()]


def inspected(text: str | dict) -> dict:
    """``inspect --json``'s summary, checked."""
    return checked("inspect", text)
