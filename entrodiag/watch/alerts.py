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

The code, one job a module: ``alert`` (the ``Alert`` and the severity order), ``sinks`` (the four
transports), ``dispatch`` (``AlertDispatcher``: the episode rule and the delivery thread) and
``alerts_config`` (``load_alert_config``: the TOML section). This module gathers their public
names, where they have always been imported from.
"""

from __future__ import annotations

from .alert import SEVERITIES, Alert
from .alerts_config import load_alert_config
from .alerts_config import tomllib as _toml  # noqa: F401 - the TOML reader, as before the split
from .dispatch import AlertDispatcher
from .sinks import ConsoleSink, EmailSink, Sink, SlackSink, WebhookSink, redact_url

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
