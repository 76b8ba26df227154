"""Reading the ``[alerts]`` TOML section (a file, or a dict) into an ``AlertDispatcher``.

The keys, the secrets rule and the template language are described in ``entrodiag.watch.alerts``;
every problem raises ``ValueError`` with the key or the environment variable named.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .dispatch import AlertDispatcher, ResultCallback
from .sinks import ConsoleSink, EmailSink, Sink, SlackSink, WebhookSink, env_value

#: the TOML reader: the standard library's (Python >= 3.11), else tomli, else ``None``
try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

_SECTION_KEYS = ("cooldown_steps", "cooldown_s", "min_severity", "sink")
_COMMON = ("type", "name", "min_severity")
_SINK_KEYS: dict[str, tuple[str, ...]] = {
    "console": ("stream",),
    "webhook": ("url", "url_env", "template", "headers", "headers_env", "timeout"),
    "slack": ("url_env", "timeout"),
    "email": ("host", "port", "sender", "to", "username", "username_env", "password_env",
              "starttls", "ssl", "timeout"),
}


def _check_keys(table: Mapping[str, Any], valid: Sequence[str], what: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(valid)}")


def _url(table: Mapping[str, Any], env: Mapping[str, str], what: str) -> str:
    if ("url" in table) == ("url_env" in table):
        raise ValueError(f"{what}: give exactly one of url or url_env")
    if "url_env" in table:
        return env_value(table["url_env"], env, what)
    return table["url"]


def _make_sink(table: Any, index: int, env: Mapping[str, str]) -> Sink:
    if not isinstance(table, Mapping):
        raise ValueError(f"alerts.sink[{index}] must be a table, got {type(table).__name__}")
    kind = table.get("type")
    if kind not in _SINK_KEYS:
        raise ValueError(f"alerts.sink[{index}]: unknown sink type {kind!r}; "
                         f"valid: {', '.join(_SINK_KEYS)}")
    what = f"alerts.sink[{index}] ({kind})"
    if "password" in table:
        raise ValueError(f"{what}: passwords are never read from a config file; export it and "
                         "name the variable with password_env")
    if kind == "slack" and "url" in table:
        raise ValueError(f"{what}: a Slack webhook URL is a credential; export it and name the "
                         "variable with url_env")
    _check_keys(table, _COMMON + _SINK_KEYS[kind], what)
    common: dict[str, Any] = {"name": table.get("name"), "min_severity": table.get("min_severity", "info")}
    if common["name"] is not None and not isinstance(common["name"], str):
        raise ValueError(f"{what}: name must be a string")
    try:
        if kind == "console":
            stream_name = table.get("stream", "stderr")
            if stream_name not in ("stderr", "stdout"):
                raise ValueError(f"{what}: stream must be 'stderr' or 'stdout', got {stream_name!r}")
            return ConsoleSink(sys.stdout if stream_name == "stdout" else None, **common)
        if kind == "webhook":
            headers = dict(table.get("headers", {}))
            for header, var in dict(table.get("headers_env", {})).items():
                headers[header] = env_value(var, env, f"{what} header {header}")
            return WebhookSink(_url(table, env, what), template=table.get("template"),
                               headers=headers, timeout=table.get("timeout", 10.0), **common)
        if kind == "slack":
            if "url_env" not in table:
                raise ValueError(f"{what}: url_env (the environment variable holding the webhook "
                                 "URL) is required")
            return SlackSink(env_value(table["url_env"], env, what), timeout=table.get("timeout", 10.0),
                             **common)
        missing = [k for k in ("host", "sender", "to") if k not in table]
        if missing:
            raise ValueError(f"{what}: missing key(s) {', '.join(missing)}")
        return EmailSink(table["host"], table.get("port", 587), table["sender"], table["to"],
                         username_env=table.get("username_env"),
                         password_env=table.get("password_env"),
                         starttls=table.get("starttls", True), timeout=table.get("timeout", 10.0),
                         username=table.get("username"), ssl=table.get("ssl", False), env=env,
                         **common)
    except (TypeError, AttributeError) as e:
        raise ValueError(f"{what}: {e}") from None


def load_alert_config(source: str | os.PathLike[str] | Mapping[str, Any], *,
                      env: Mapping[str, str] | None = None,
                      on_result: ResultCallback | None = None) -> AlertDispatcher:
    """An ``AlertDispatcher`` from the ``[alerts]`` section of a TOML file or a dict.

    ``source`` is a path to a TOML file holding an ``[alerts]`` section (other sections are
    ignored), or a dict: either the parsed file (with an ``"alerts"`` key) or the section itself.
    Secrets are resolved from ``env`` (default ``os.environ``) now; every problem raises
    ``ValueError`` with the key or variable named.
    """
    env = os.environ if env is None else env
    if isinstance(source, Mapping):
        data: Mapping[str, Any] = source
        where = "alert config"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"alert config file {path} does not exist")
        if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
            raise ValueError("reading TOML needs Python >= 3.11 or the tomli package "
                             "(pip install tomli)")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"alert config file {path} is not valid TOML: {e}") from None
        where = str(path)
        if "alerts" not in data:
            raise ValueError(f"{path} has no [alerts] section")
    section = data.get("alerts", data) if isinstance(data.get("alerts", None), Mapping) else data
    if "alerts" in section:
        raise ValueError(f"{where}: [alerts] must be a table")
    _check_keys(section, _SECTION_KEYS, "[alerts]")
    tables = section.get("sink", [])
    if isinstance(tables, Mapping):
        tables = [tables]
    if not isinstance(tables, list) or not tables:
        raise ValueError("[alerts] needs at least one [[alerts.sink]] table with type = "
                         f"{' | '.join(map(repr, _SINK_KEYS))}")
    sinks = [_make_sink(table, i, env) for i, table in enumerate(tables)]
    names = [s.name for s in sinks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"[alerts]: two sinks share the name {', '.join(duplicates)}; "
                         "give each a distinct name = \"...\"")
    return AlertDispatcher(sinks, cooldown_steps=section.get("cooldown_steps", 50),
                           cooldown_s=section.get("cooldown_s"),
                           min_severity=section.get("min_severity", "info"), on_result=on_result)
