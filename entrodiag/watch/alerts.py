"""Alert sinks: send collapse flags to a console, a webhook, Slack or e-mail, once per episode.

Configured in one TOML section, ``[alerts]`` (in the training config file or a file of its own)::

    [alerts]
    cooldown_steps = 50        # episode gap and minimum steps between two alerts of one kind
    cooldown_s = 600           # optional: also at least this many seconds between them
    min_severity = "warning"   # info | warning | critical: quieter flags never alert

    [[alerts.sink]]
    type = "console"                      # stream = "stderr" (default) | "stdout"

    [[alerts.sink]]
    type = "slack"                        # Slack-compatible incoming webhook
    url_env = "ENTRODIAG_SLACK_URL"       # the URL is the credential: environment only

    [[alerts.sink]]
    type = "webhook"                      # POST JSON; default body: Alert.to_dict()
    url = "http://alerts.internal:9000/entrodiag"   # or url_env = "NAME"
    headers_env = { Authorization = "ALERT_TOKEN" } # header value from the environment
    template = '{"title": "${severity}: ${kind}", "from": ${first_step}, "evidence": ${evidence}}'

    [[alerts.sink]]
    type = "email"
    host = "smtp.example.org"
    port = 587                            # starttls = true (default); ssl = true for port 465
    sender = "entrodiag@example.org"
    to = ["ml-oncall@example.org"]
    username_env = "SMTP_USER"
    password_env = "SMTP_PASSWORD"
    min_severity = "critical"             # any sink may be quieter than the section

Every sink table takes ``type``, an optional ``name`` (how results and events name it; defaults to
the type) and an optional ``min_severity``. Keys per type: console: ``stream``; webhook: ``url`` |
``url_env``, ``template``, ``headers``, ``headers_env``, ``timeout``; slack: ``url_env``,
``timeout``; email: ``host``, ``port``, ``sender``, ``to``, ``username`` | ``username_env``,
``password_env``, ``starttls``, ``ssl``, ``timeout``. Unknown keys or types raise ``ValueError``
naming the valid ones.

Secrets (webhook URLs of Slack, passwords, tokens) come from environment variables named in the
config, are read when the config is loaded (a missing variable is an error naming it), and never
come from the run directory. Log messages and ``on_result`` errors show URLs as
``scheme://host/…`` and never contain a secret.

Webhook body template: a JSON text (or a TOML table, turned into JSON) in which ``string.Template``
placeholders are substituted: the strings ``${run_id}``, ``${run_dir}``, ``${kind}``,
``${severity}``, ``${message}``, ``${advice}``, ``${time}``, ``${reason}`` and ``${text}`` (a
one-line summary) arrive JSON-escaped, to be written inside quotes; ``${step}``, ``${first_step}``
and ``${last_step}`` are integers and ``${evidence}`` a JSON object, to be written without quotes.
A JSON string that is exactly one of the latter (``"${evidence}"``, as a TOML table must write it)
becomes the value itself. ``$$`` is a literal ``$``. The template is rendered against a sample
alert at load time; an unknown placeholder or a body that is not valid JSON raises ``ValueError``.

Delivery happens on one background daemon thread; ``AlertDispatcher.notify`` only decides and
queues. Each sink gets its own deadline, its ``timeout`` (default 10 s, for the whole send): a
sink that has not answered by then is abandoned, the time-out is a failure like any other, and
the sinks after it are still tried. Failures are logged on the ``entrodiag`` logger, counted and
reported to ``on_result`` (the watch records them as ``alert_failed`` events), never raised.
Standard library only.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import smtplib
import ssl as _ssl
import string
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..analysis.collapse import Flag

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None  # type: ignore[assignment]

log = logging.getLogger("entrodiag")

#: Severity order; the same as ``entrodiag.analysis.collapse.SEVERITIES`` (kept here so that this
#: module imports nothing heavy).
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

ResultCallback = Callable[["Alert", str, bool, "str | None"], None]

__all__ = [
    "Alert",
    "AlertDispatcher",
    "ConsoleSink",
    "EmailSink",
    "SEVERITIES",
    "Sink",
    "SlackSink",
    "WebhookSink",
    "load_alert_config",
    "redact_url",
]


def _rank(severity: str, what: str = "severity") -> int:
    if severity not in SEVERITIES:
        raise ValueError(f"{what} must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    return SEVERITIES.index(severity)


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


def _env(name: Any, env: Mapping[str, str], what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: the name of an environment variable must be a non-empty string")
    value = env.get(name)
    if not value:
        raise ValueError(f"{what}: environment variable {name} is not set (or empty)")
    return value


# ------------------------------------------------------------------------------------- the alert
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
            lines.append("  evidence: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.evidence.items()))
        if self.advice:
            lines.append(f"  advice: {self.advice}")
        lines.append(f"  run: {self.run_dir}  at {self.time}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_SAMPLE_ALERT = Alert(run_id="sample-run", run_dir="/runs/sample", step=120, kind="early_collapse",
                      severity="warning", first_step=20, last_step=118,
                      evidence={"h0": 0.6, "ratio": 0.1, "note": 'quote " and \\ backslash'},
                      advice='switch to "kl_cov"', message="entropy fell to 10% of its start",
                      time="2025-01-01T00:00:00+00:00")


# ------------------------------------------------------------------------------------- the sinks
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
        _rank(min_severity, f"{self.name}: min_severity")
        self.min_severity = min_severity

    @property
    def target(self) -> str:
        return self.type

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    def accepts(self, alert: Alert) -> bool:
        """Whether ``alert`` is at or above this sink's ``min_severity``."""
        return _rank(alert.severity) >= _rank(self.min_severity)

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
                {"type": "mrkdwn", "text": _clip(f"*{k}*\n{_fmt(v)}", 2000)}
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
        self.username = _env(username_env, env, what) if username_env is not None else username
        self._password = _env(password_env, env, what) if password_env is not None else None
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


# -------------------------------------------------------------------------------- the dispatcher
@dataclass
class _Episode:
    end: int                 # the largest last_step seen in this episode
    alerted_rank: int = -1   # highest severity rank alerted in this episode (-1: none yet)


@dataclass
class _KindState:
    episode: _Episode
    last_alert_step: int | None = None
    last_alert_time: float | None = None


_STOP = object()


class AlertDispatcher:
    """Decides which flags alert and delivers them to the sinks on one background thread.

    The rule, per flag ``kind`` (``notify`` is called each time a detector raises the flag, at
    ``step``):

    1. **Episodes.** A flag continues the kind's current episode when its ``first_step`` is at most
       the episode's end + ``cooldown_steps``, the end being the largest ``last_step`` seen in the
       episode (each continuing flag extends it). Otherwise, i.e. when the kind was not raised
       for more than ``cooldown_steps`` steps, it opens a new episode.
    2. **Severity floor.** Flags below ``min_severity`` never alert (they still open and extend
       episodes).
    3. **First alert of an episode.** An episode not alerted yet alerts at the first flag for which
       the kind's cooldown since its previous alert has passed: ``step - last_alert_step >=
       cooldown_steps`` and, when ``cooldown_s`` is set, at least ``cooldown_s`` seconds
       (monotonic clock). Until then its flags are suppressed, and the episode stays pending.
    4. **Escalation.** Within an alerted episode, a flag whose severity is higher than every
       severity alerted so far in the episode (warning → critical) alerts once more, regardless
       of the cooldown. So an episode alerts at most once per severity level.

    ``notify`` returns whether an alert was queued and never blocks on delivery. Each queued alert
    goes to every sink whose own ``min_severity`` it meets; a sink that raises is logged on the
    ``entrodiag`` logger (secrets scrubbed), counted in ``failures`` and reported to
    ``on_result(alert, sink_name, ok, error)`` (called on the delivery thread; its own errors are
    logged), never raised. ``flush`` waits for the queue, ``close`` flushes and stops the thread;
    the dispatcher is a context manager.
    """

    def __init__(self, sinks: Iterable[Sink], *, cooldown_steps: int = 50,
                 cooldown_s: float | None = None, min_severity: str = "info",
                 on_result: ResultCallback | None = None, max_queue: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks: list[Sink] = list(sinks)
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique (set name = ...), got {names}")
        if isinstance(cooldown_steps, bool) or not isinstance(cooldown_steps, int) or cooldown_steps < 0:
            raise ValueError(f"cooldown_steps must be an integer >= 0, got {cooldown_steps!r}")
        if cooldown_s is not None and (isinstance(cooldown_s, bool)
                                       or not isinstance(cooldown_s, (int, float)) or cooldown_s < 0):
            raise ValueError(f"cooldown_s must be a number >= 0, got {cooldown_s!r}")
        _rank(min_severity, "min_severity")
        self.cooldown_steps = cooldown_steps
        self.cooldown_s = None if cooldown_s is None else float(cooldown_s)
        self.min_severity = min_severity
        self.on_result = on_result
        self.sent = 0       # successful (alert, sink) deliveries
        self.failures = 0   # failed (alert, sink) deliveries
        self.dropped = 0    # alerts not queued because the queue was full or the dispatcher closed
        self._clock = clock
        self._state: dict[str, _KindState] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._abandoned: dict[str, threading.Thread] = {}  # sink name -> a send past its deadline

    # ---------------------------------------------------------------------------- deciding
    def notify(self, flag: Flag, *, step: int, run_id: str, run_dir: str | os.PathLike[str]) -> bool:
        """Apply the episode rule to ``flag`` raised at ``step``; queue an alert if it is due.

        Returns whether an alert was queued. Never raises for delivery problems.
        """
        step = int(step)
        rank = _rank(flag.severity, "flag severity")
        with self._lock:
            if self._closed:
                log.warning("alert for %s not sent: the alert dispatcher is closed", flag.kind)
                self.dropped += 1
                return False
            state = self._state.get(flag.kind)
            if state is None:
                state = self._state[flag.kind] = _KindState(_Episode(end=int(flag.last_step)))
            elif int(flag.first_step) > state.episode.end + self.cooldown_steps:
                state.episode = _Episode(end=int(flag.last_step))
            else:
                state.episode.end = max(state.episode.end, int(flag.last_step))
            episode = state.episode
            if rank < _rank(self.min_severity):
                return False
            now = self._clock()
            if episode.alerted_rank < 0:
                if state.last_alert_step is not None and step - state.last_alert_step < self.cooldown_steps:
                    return False
                if (self.cooldown_s is not None and state.last_alert_time is not None
                        and now - state.last_alert_time < self.cooldown_s):
                    return False
                reason = "new"
            elif rank > episode.alerted_rank:
                reason = "escalation"
            else:
                return False
            alert = Alert.from_flag(flag, step=step, run_id=run_id, run_dir=run_dir, reason=reason)
            try:
                self._enqueue(alert)
            except queue.Full:
                log.warning("alert for %s not sent: the alert queue is full", flag.kind)
                self.dropped += 1
                return False
            episode.alerted_rank = max(episode.alerted_rank, rank)
            state.last_alert_step = step
            state.last_alert_time = now
            return True

    # ---------------------------------------------------------------------------- delivering
    def _enqueue(self, alert: Alert) -> None:
        with self._idle:
            self._queue.put_nowait(alert)
            self._pending += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="entrodiag-alerts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._deliver(item)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                if not sink.accepts(alert):
                    continue
            except Exception:  # noqa: BLE001 - a broken sink must not stop the others
                continue
            error: str | None = None
            try:
                self._send(sink, alert)
            except Exception as e:  # noqa: BLE001 - delivery failures are logged, never raised
                error = _scrub(f"{type(e).__name__}: {e}", sink)
            if error is None:
                self.sent += 1
                log.debug("alert %s/%s sent via %s (%s)", alert.kind, alert.severity, sink.name,
                          sink.target)
            else:
                self.failures += 1
                log.warning("alert %s/%s via %s (%s) failed: %s", alert.kind, alert.severity,
                            sink.name, sink.target, error)
            if self.on_result is not None:
                try:
                    self.on_result(alert, sink.name, error is None, error)
                except Exception as e:  # noqa: BLE001
                    log.warning("alert on_result callback failed: %s: %s", type(e).__name__,
                                _scrub(str(e), sink))

    def _send(self, sink: Sink, alert: Alert) -> None:
        """``sink.send(alert)`` within the sink's deadline (``sink.timeout``): on a thread of its
        own, abandoned when it has not returned in time (``TimeoutError``). A sink whose abandoned
        send still hangs is not tried again until that one ends (one hung thread per sink)."""
        limit = getattr(sink, "timeout", None)
        if limit is None:
            sink.send(alert)
            return
        hung = self._abandoned.get(sink.name)
        if hung is not None and hung.is_alive():
            raise TimeoutError(f"not tried: its previous send timed out ({limit:g} s deadline) and still "
                               "hangs")
        outcome: list[BaseException] = []

        def send() -> None:
            try:
                sink.send(alert)
            except BaseException as e:  # noqa: BLE001 - handed to the delivery thread
                outcome.append(e)

        worker = threading.Thread(target=send, name=f"entrodiag-alert-{sink.name}", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            self._abandoned[sink.name] = worker
            raise TimeoutError(f"timed out: no answer within its {limit:g} s deadline (timeout); abandoned, "
                               "the next sinks are tried")
        if outcome:
            raise outcome[0]

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert went through every sink; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the delivery thread; later ``notify`` calls queue nothing. Waits until
        every queued alert was offered to every sink (each within its own deadline), or at most
        ``timeout`` seconds when given. Returns whether every queued alert went through."""
        with self._lock:
            self._closed = True
        done = self.flush(timeout)
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=0.1)
            except queue.Full:  # pragma: no cover - the daemon thread dies with the process
                pass
            if done:
                self._thread.join(timeout=1.0)
        return done

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"AlertDispatcher(sinks={self.sinks!r}, cooldown_steps={self.cooldown_steps}, "
                f"cooldown_s={self.cooldown_s}, min_severity={self.min_severity!r})")


def _scrub(text: str, sink: Sink) -> str:
    try:
        secrets = sorted((s for s in sink.secrets if s), key=len, reverse=True)
    except Exception:  # noqa: BLE001
        secrets = []
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, redact_url(secret) if "://" in secret else "***")
    return text


# ------------------------------------------------------------------------------------- the config
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
        return _env(table["url_env"], env, what)
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
                headers[header] = _env(var, env, f"{what} header {header}")
            return WebhookSink(_url(table, env, what), template=table.get("template"),
                               headers=headers, timeout=table.get("timeout", 10.0), **common)
        if kind == "slack":
            if "url_env" not in table:
                raise ValueError(f"{what}: url_env (the environment variable holding the webhook "
                                 "URL) is required")
            return SlackSink(_env(table["url_env"], env, what), timeout=table.get("timeout", 10.0),
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
        if _toml is None:  # pragma: no cover - Python 3.10 without tomli
            raise ValueError("reading TOML needs Python >= 3.11 or the tomli package "
                             "(pip install tomli)")
        try:
            data = _toml.loads(path.read_text(encoding="utf-8"))
        except _toml.TOMLDecodeError as e:
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
