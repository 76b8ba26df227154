"""The published JSON Schemas of entrodiag's machine-readable output, and its ``schema_version``.

Four documents carry ``schema_version`` at their top level and have a schema here (JSON Schema
draft 2020-12, shipped as package data):

- ``diagnosis``: ``entrodiag analyze --json`` and the MCP server's ``diagnose`` tool;
- ``watch-event``: each line of ``entrodiag watch --json`` (one JSON object per line);
- ``query``: ``entrodiag query --json`` and the MCP server's ``query`` tool;
- ``inspect``: ``entrodiag inspect --json`` (what a run directory holds).

``SCHEMA_VERSION`` is ``"MAJOR.MINOR"``. A minor step only adds (a new field, section, event
type or enum value a reader may ignore); a major step removes or renames a field or changes what
a value means or its unit. A reader checks the major version and ignores fields it does not know.

Example:
    >>> from entrodiag.schemas import schema, SCHEMA_VERSION
    >>> schema("diagnosis")["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    True
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

#: The version of every schema here (``"MAJOR.MINOR"``; see the module docstring for what may change).
SCHEMA_VERSION = "1.0"
#: The schema names (each one file, ``<name>.schema.json``, beside this module).
SCHEMAS = ("diagnosis", "watch-event", "query", "inspect")


class SchemaError(ValueError):
    """An output that does not follow its schema (the message names the first failing path)."""


@lru_cache(maxsize=None)
def _load(name: str) -> str:
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}; schemas are {', '.join(SCHEMAS)}")
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (one of ``SCHEMAS``) as a dict (a fresh copy)."""
    return json.loads(_load(name))


def stamp(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``schema_version`` as its first field (the key every published output carries)."""
    return {"schema_version": SCHEMA_VERSION, **{k: v for k, v in doc.items() if k != "schema_version"}}


def validate(name: str, doc: Any) -> None:
    """Check ``doc`` against the schema ``name``; ``SchemaError`` (one line) when it does not follow it.

    Needs the ``jsonschema`` package (``pip install 'entrodiag[mcp]'`` or ``[test]``).
    """
    try:
        import jsonschema
    except ImportError:
        raise SchemaError("validating needs the jsonschema package: pip install 'entrodiag[mcp]'") from None
    validator = jsonschema.Draft202012Validator(schema(name))
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError(f"{name} schema {SCHEMA_VERSION}: at {where}: {error.message[:300]}")


__all__ = ["SCHEMAS", "SCHEMA_VERSION", "SchemaError", "schema", "stamp", "validate"]
