"""The four alert transports: console, webhook (JSON POST, optionally templated), Slack and e-mail.

Every sink has a ``name``, a ``min_severity`` and ``send(alert)``, which raises on failure (the
dispatcher catches, logs and counts it). URLs are shown as ``scheme://host/…`` (``redact_url``)
and secrets are read from the environment (``env_value``). The configuration keys and the webhook
template language are described in ``entrodiag.watch.alerts``. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl as _ssl
import string
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any, TextIO

from .alert import Alert, format_value, severity_rank


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: a URL with its path, query and credentials hidden."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<url>"
    if not parts.scheme or not host:
        return "<url>"
    return f"{parts.scheme}://{host}/…"


def env_value(name: Any, env: Mapping[str, str], what: str) -> str:
    """The value of the environment variable ``name`` in ``env``; ``ValueError`` naming ``what``
    when the variable is unset or empty."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: the name of an environment variable must be a non-empty string")
    value = env.get(name)
    if not value:
        raise ValueError(f"{what}: environment variable {name} is not set (or empty)")
    return value


_SAMPLE_ALERT = Alert(run_id="sample-run", run_dir="/runs/sample", step=120, kind="early_collapse",
                      severity="warning", first_step=20, last_step=118,
                      evidence={"h0": 0.6, "ratio": 0.1, "note": 'quote " and \\ backslash'},
                      advice='switch to "kl_cov"', message="entropy fell to 10% of its start",
                      time="2025-01-01T00:00:00+00:00")


class Sink:
    """Base of every sink: ``name``, ``min_severity`` and ``send(alert)``, which raises on failure.

    ``target`` describes the destination without secrets (for logs); ``secrets`` lists strings
    that must never appear in a log message (the dispatcher scrubs error texts with them).
    """

    type: str = "sink"
    #: The sink's deadline in seconds for one whole send (``None``: none, for sinks that cannot
    #: block): a send that has not returned by then is abandoned and counted as failed (a late
    #: answer may still deliver it), and the dispatcher goes on with the next sink.
    timeout: float | None = None

    def __init__(self, *, name: str | None = None, min_severity: str = "info") -> None:
        self.name = name or self.type
        severity_rank(min_severity, f"{self.name}: min_severity")
        self.min_severity = min_severity

    @property
    def target(self) -> str:
        return self.type

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    def accepts(self, alert: Alert) -> bool:
        """Whether ``alert`` is at or above this sink's ``min_severity``."""
        return severity_rank(alert.severity) >= severity_rank(self.min_severity)

    def send(self, alert: Alert) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, target={self.target!r})"


class ConsoleSink(Sink):
    """Prints ``Alert.render_text()`` to ``stream`` (default: ``sys.stderr`` at send time)."""

    type = "console"

    def __init__(self, stream: TextIO | None = None, *, name: str | None = None,
                 min_severity: str = "info") -> None:
        super().__init__(name=name, min_severity=min_severity)
        self.stream = stream

    def send(self, alert: Alert) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(alert.render_text() + "\n")
        stream.flush()


def _check_url(url: Any, what: str) -> str:
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https") \
            or not urllib.parse.urlsplit(url).hostname:
        raise ValueError(f"{what}: the URL must be an http:// or https:// URL with a host, "
                         f"got {redact_url(url) if isinstance(url, str) else url!r}")
    return url


def _timeout(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{name} sink: timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def _post_json(url: str, body: Any, headers: Mapping[str, str], timeout: float) -> None:
    data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    from .. import __version__

    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"entrodiag/{__version__}", **headers})
    # a fresh opener per call, so proxy settings of the environment are read when sending
    with urllib.request.build_opener().open(request, timeout=timeout) as response:
        response.read(65536)
        status = getattr(response, "status", 200)
        if not 200 <= status < 300:
            raise OSError(f"HTTP status {status}")


class WebhookSink(Sink):
    """POSTs the alert as JSON to ``url``: ``alert.to_dict()``, or ``template`` rendered.

    ``template`` is a JSON text or a dict (a TOML table) with ``${...}`` placeholders (see the
    module docstring); it is checked here, so a bad template fails at config time with
    ``ValueError``. ``headers`` are sent as given (put secret header values in ``headers_env`` of
    the config, which resolves them from the environment).
    """

    type = "webhook"
    _TYPED = ("step", "first_step", "last_step", "evidence")

    def __init__(self, url: str, template: str | Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 10.0, *,
                 name: str | None = None, min_severity: str = "info") -> None:
        super().__init__(name=name, min_severity=min_severity)
        self.url = _check_url(url, f"{self.name} sink")
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.timeout = _timeout(timeout, self.name)
        self.template: string.Template | None = None
        if template is not None:
            self.template = self._compile(template)
            self.render(_SAMPLE_ALERT)  # validate now

    def _compile(self, template: str | Mapping[str, Any]) -> string.Template:
        if isinstance(template, Mapping):
            text = json.dumps(template, ensure_ascii=False)
        elif isinstance(template, str):
            text = template
        else:
            raise ValueError(f"{self.name} sink: template must be a JSON string or a table, "
                             f"got {type(template).__name__}")
        typed = "|".join(self._TYPED)
        text = re.sub(r'"\$(?:\{(' + typed + r')\}|(' + typed + r')\b)"',
                      lambda m: "${" + (m.group(1) or m.group(2)) + "}", text)
        return string.Template(text)

    @staticmethod
    def _fields(alert: Alert) -> dict[str, str]:
        def esc(value: Any) -> str:
            return json.dumps(str(value), ensure_ascii=False)[1:-1]

        values = {k: esc(getattr(alert, k)) for k in
                  ("run_id", "run_dir", "kind", "severity", "message", "advice", "time", "reason")}
        values["text"] = esc(alert.summary)
        values.update(step=str(int(alert.step)), first_step=str(int(alert.first_step)),
                      last_step=str(int(alert.last_step)),
                      evidence=json.dumps(alert.evidence, ensure_ascii=False, default=str))
        return values

    def render(self, alert: Alert) -> Any:
        """The JSON body (parsed) for ``alert``."""
        if self.template is None:
            return alert.to_dict()
        fields = self._fields(alert)
        try:
            text = self.template.substitute(fields)
        except KeyError as e:
            raise ValueError(f"{self.name} sink: unknown placeholder ${{{e.args[0]}}} in the "
                             f"template; valid: {', '.join(sorted(fields))}") from None
        except ValueError as e:
            raise ValueError(f"{self.name} sink: invalid placeholder in the template ({e}); "
                             "write $$ for a literal $") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.name} sink: the template does not render to valid JSON ({e}); "
                             "string placeholders go inside quotes, ${step}, ${first_step}, "
                             "${last_step} and ${evidence} outside") from None

    @property
    def target(self) -> str:
        return redact_url(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.url, *(v for v in self.headers.values() if len(v) >= 4))

    def send(self, alert: Alert) -> None:
        _post_json(self.url, self.render(alert), self.headers, self.timeout)


class SlackSink(Sink):
    """POSTs to a Slack-compatible incoming webhook: ``{"text": ..., "blocks": [...]}``.

    ``text`` (the fallback shown in notifications, and all that Mattermost/Rocket.Chat-style
    endpoints need) summarises kind, severity, step range, message and advice; ``blocks`` hold a
    header, the message, up to ten evidence fields, the advice and the run.
    """

    type = "slack"
    _EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}

    def __init__(self, url: str, timeout: float = 10.0, *, name: str | None = None,
                 min_severity: str = "info") -> None:
        super().__init__(name=name, min_severity=min_severity)
        self.url = _check_url(url, f"{self.name} sink")
        self.timeout = _timeout(timeout, self.name)

    @classmethod
    def body(cls, alert: Alert) -> dict[str, Any]:
        """The Slack message for ``alert``."""
        text = alert.summary
        if alert.advice:
            text += f" Advice: {alert.advice}"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "emoji": True, "text": _clip(
                f"{cls._EMOJI.get(alert.severity, '')} {alert.severity.upper()}: {alert.kind}"
                .strip(), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(
                f"*{alert.message or alert.kind}*\nsteps {alert.first_step}–{alert.last_step}, "
                f"raised at step {alert.step}" + (" (escalated)" if alert.reason == "escalation"
                                                  else ""), 3000)}},
        ]
        if alert.evidence:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{k}*\n{format_value(v)}", 2000)}
                for k, v in list(alert.evidence.items())[:10]]})
        if alert.advice:
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": _clip(f"*Advice:* {alert.advice}", 3000)}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(
            f"run `{alert.run_id}` · {alert.run_dir} · {alert.time}", 3000)}]})
        return {"text": text, "blocks": blocks}

    @property
    def target(self) -> str:
        return redact_url(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.url,)

    def send(self, alert: Alert) -> None:
        _post_json(self.url, self.body(alert), {}, self.timeout)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EmailSink(Sink):
    """Sends the alert as a plain-text e-mail (the readable block plus the JSON) over SMTP.

    The user name comes from ``username`` or the environment variable ``username_env``, the
    password from the environment variable ``password_env``; both are read here, so a missing
    variable fails at config time. ``starttls`` upgrades a plain connection (port 587); ``ssl``
    connects with TLS from the start (port 465). ``env`` defaults to ``os.environ``.
    """

    type = "email"

    def __init__(self, host: str, port: int = 587, sender: str = "", to: str | Sequence[str] = (),
                 username_env: str | None = None, password_env: str | None = None,
                 starttls: bool = True, timeout: float = 10.0, *, username: str | None = None,
                 ssl: bool = False, name: str | None = None, min_severity: str = "info",
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(name=name, min_severity=min_severity)
        env = os.environ if env is None else env
        what = f"{self.name} sink"
        if not isinstance(host, str) or not host:
            raise ValueError(f"{what}: host must be a non-empty string")
        if not isinstance(sender, str) or "@" not in sender:
            raise ValueError(f"{what}: sender must be an e-mail address, got {sender!r}")
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ValueError(f"{what}: to must be an e-mail address or a list of them, got {to!r}")
        if username is not None and username_env is not None:
            raise ValueError(f"{what}: give username or username_env, not both")
        self.host, self.port, self.sender, self.to = host, int(port), sender, recipients
        self.username = env_value(username_env, env, what) if username_env is not None else username
        self._password = env_value(password_env, env, what) if password_env is not None else None
        if self._password is not None and not self.username:
            raise ValueError(f"{what}: a password needs a user name (username or username_env)")
        if starttls and ssl:
            starttls = False  # already encrypted
        self.starttls, self.ssl, self.timeout = bool(starttls), bool(ssl), _timeout(timeout, self.name)

    def message(self, alert: Alert) -> EmailMessage:
        """The e-mail for ``alert``."""
        msg = EmailMessage()
        msg["Subject"] = (f"[entrodiag] {alert.severity.upper()} {alert.kind} in run {alert.run_id} "
                          f"(steps {alert.first_step}–{alert.last_step})")
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(alert.render_text() + "\n\n"
                        + json.dumps(alert.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
        return msg

    @property
    def target(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password,) if self._password else ()

    def send(self, alert: Alert) -> None:
        msg = self.message(alert)
        if self.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=_ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls:
                smtp.starttls(context=_ssl.create_default_context())
            if self._password is not None:
                smtp.login(self.username or "", self._password)
            smtp.send_message(msg)

