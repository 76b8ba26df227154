"""Alert sinks and the once-per-episode dispatcher (entrodiag.watch.alerts), against local servers."""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import logging
import socket
import socketserver
import threading
import textwrap
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from entrodiag.analysis.collapse import SEVERITIES as COLLAPSE_SEVERITIES
from entrodiag.analysis.collapse import Flag
from entrodiag.watch.alerts import (
    SEVERITIES,
    Alert,
    AlertDispatcher,
    ConsoleSink,
    EmailSink,
    Sink,
    SlackSink,
    WebhookSink,
    load_alert_config,
    redact_url,
)

EVIDENCE = {"h0": 0.61, "h_end": 0.05, "ratio": 0.082, "steps_checked": 40}
ADVICE = "switch to kl_cov (k=2e-3 for 7B-scale models, 2e-4 for 32B; β=1)"


def flag(kind="early_collapse", severity="warning", first=20, last=60, evidence=None):
    return Flag(kind=kind, severity=severity, first_step=first, last_step=last,
                evidence=dict(EVIDENCE if evidence is None else evidence), advice=ADVICE,
                message="entropy fell to 8% of its start in the first 20% of training")


# ------------------------------------------------------------------------------ a local webhook
class _Hook:
    """A local HTTP server: records JSON bodies; ``mode`` is ok | fail (500) | hang (2 s)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.received = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if hook.mode == "hang":
                    time.sleep(2.0)
                hook.bodies.append(json.loads(body))
                hook.paths.append(self.path)
                hook.headers = dict(self.headers)
                hook.received.set()
                status = 500 if hook.mode == "fail" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = _Hook()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Results:
    def __init__(self):
        self.items: list[tuple[Alert, str, bool, str | None]] = []

    def __call__(self, alert, sink_name, ok, error):
        self.items.append((alert, sink_name, ok, error))


# ------------------------------------------------------------------------------ a local SMTP server
class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO (AUTH PLAIN), AUTH, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        box = self.server.box  # type: ignore[attr-defined]
        self.reply("220 stub ESMTP")
        mail: dict = {"rcpt": []}
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-stub")
                self.reply("250 AUTH PLAIN")
            elif verb == "HELO":
                self.reply("250 stub")
            elif verb == "AUTH":
                _, _, user, password = ("\0" + base64.b64decode(line.split()[2]).decode()).split("\0")
                box["auth"] = (user, password)
                self.reply("235 ok")
            elif verb == "MAIL":
                mail = {"from": line[10:].strip("<> "), "rcpt": []}
                self.reply("250 ok")
            elif verb == "RCPT":
                mail["rcpt"].append(line[8:].strip("<> "))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with .")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                mail["data"] = b"".join(data)
                box["mails"].append(mail)
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.box = {"mails": []}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------- tests
def test_severities_match_the_collapse_detectors():
    assert SEVERITIES == COLLAPSE_SEVERITIES


def test_alert_from_flag_is_json_serialisable():
    alert = Alert.from_flag(flag(), step=64, run_id="run-1", run_dir="/runs/run-1")
    d = json.loads(json.dumps(alert.to_dict()))
    assert d["kind"] == "early_collapse" and d["severity"] == "warning" and d["step"] == 64
    assert (d["first_step"], d["last_step"]) == (20, 60)
    assert d["evidence"] == EVIDENCE and d["advice"] == ADVICE and d["reason"] == "new"
    assert d["time"].endswith("+00:00") and d["run_dir"] == "/runs/run-1"


def test_webhook_receives_the_json_alert(hook):
    results = Results()
    dispatcher = AlertDispatcher([WebhookSink(hook.url())], on_result=results)
    assert dispatcher.notify(flag(), step=64, run_id="run-1", run_dir="/runs/run-1")
    assert dispatcher.flush(5)
    dispatcher.close()
    (body,) = hook.bodies
    assert body["kind"] == "early_collapse" and body["severity"] == "warning"
    assert (body["first_step"], body["last_step"], body["step"]) == (20, 60, 64)
    assert body["evidence"] == EVIDENCE and body["advice"] == ADVICE
    assert hook.headers["Content-Type"].startswith("application/json")
    assert [(r[1], r[2], r[3]) for r in results.items] == [("webhook", True, None)]
    assert dispatcher.sent == 1 and dispatcher.failures == 0


def test_webhook_body_template_from_toml(hook, tmp_path):
    (tmp_path / "alerts.toml").write_text(f"""
[train]
lr = 1e-3

[alerts]
cooldown_steps = 10

[[alerts.sink]]
type = "webhook"
name = "ops"
url = "{hook.url('/t1')}"
template = '''{{"title": "${{severity}}: ${{kind}}", "steps": [${{first_step}}, ${{last_step}}],
             "evidence": ${{evidence}}, "advice": "${{advice}}"}}'''

[[alerts.sink]]
type = "webhook"
name = "table"
url = "{hook.url('/t2')}"
template = {{ summary = "${{text}}", at = "${{step}}", ev = "${{evidence}}", cost = "$$5" }}
""", encoding="utf-8")
    dispatcher = load_alert_config(tmp_path / "alerts.toml")
    assert [s.name for s in dispatcher.sinks] == ["ops", "table"] and dispatcher.cooldown_steps == 10
    odd = flag(evidence={"note": 'a "quoted" \\ value', "x": 1.5})
    assert dispatcher.notify(odd, step=61, run_id="r", run_dir="/r")
    assert dispatcher.flush(5)
    dispatcher.close()
    bodies = dict(zip(hook.paths, hook.bodies))
    assert bodies["/t1"] == {"title": "warning: early_collapse", "steps": [20, 60],
                             "evidence": {"note": 'a "quoted" \\ value', "x": 1.5}, "advice": ADVICE}
    table = bodies["/t2"]
    assert table["at"] == 61 and table["ev"] == odd.evidence and table["cost"] == "$5"
    assert "WARNING early_collapse" in table["summary"] and "steps 20–60" in table["summary"]


def test_slack_body_shape(hook, monkeypatch):
    monkeypatch.setenv("ENTRODIAG_SLACK_URL", hook.url("/services/T000/B000/XXXX"))
    config = {"alerts": {"sink": [{"type": "slack", "url_env": "ENTRODIAG_SLACK_URL"}]}}
    dispatcher = load_alert_config(config)
    assert dispatcher.notify(flag(severity="critical"), step=64, run_id="run-1", run_dir="/r")
    assert dispatcher.flush(5)
    dispatcher.close()
    (body,) = hook.bodies
    assert set(body) == {"text", "blocks"}
    text = body["text"]
    for part in ("CRITICAL", "early_collapse", "20–60", ADVICE):
        assert part in text
    assert body["blocks"][0]["type"] == "header"
    assert all(b["type"] in ("header", "section", "context") for b in body["blocks"])
    fields = [f["text"] for b in body["blocks"] for f in b.get("fields", [])]
    assert any("h0" in f and "0.61" in f for f in fields)
    assert any(ADVICE in b.get("text", {}).get("text", "") for b in body["blocks"])


def test_email_over_smtp(smtp_server, monkeypatch):
    monkeypatch.setenv("SMTP_USER", "bot")
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-secret")
    host, port = smtp_server.server_address
    results = Results()
    dispatcher = load_alert_config({"alerts": {"sink": [{
        "type": "email", "host": host, "port": port, "sender": "entrodiag@example.org",
        "to": ["a@example.org", "b@example.org"], "username_env": "SMTP_USER",
        "password_env": "SMTP_PASSWORD", "starttls": False, "timeout": 5}]}}, on_result=results)
    assert dispatcher.notify(flag(), step=64, run_id="run-1", run_dir="/runs/run-1")
    assert dispatcher.flush(5)
    dispatcher.close()
    assert results.items and results.items[0][2], results.items
    (mail,) = smtp_server.box["mails"]
    assert smtp_server.box["auth"] == ("bot", "hunter2-secret")
    assert mail["from"] == "entrodiag@example.org" and mail["rcpt"] == ["a@example.org", "b@example.org"]
    msg = email.message_from_bytes(mail["data"], policy=email.policy.default)
    assert "WARNING early_collapse" in msg["Subject"] and "run-1" in msg["Subject"]
    body = msg.get_content()
    assert ADVICE in body and "h0=0.61" in body
    assert json.loads(body[body.index("{"):])["evidence"] == EVIDENCE


def test_console_sink_prints_a_block():
    stream = io.StringIO()
    ConsoleSink(stream).send(Alert.from_flag(flag(), step=64, run_id="run-1", run_dir="/r"))
    out = stream.getvalue()
    assert out.startswith("[entrodiag] WARNING early_collapse in run run-1 (steps 20–60")
    assert f"advice: {ADVICE}" in out and "h0=0.61" in out


@pytest.mark.parametrize("where", ["500", "closed"])
def test_failing_webhook_is_logged_counted_and_reported(where, caplog):
    server = _Hook("fail") if where == "500" else None
    url = server.url("/hooks/SECRET-TOKEN-123") if server else \
        f"http://127.0.0.1:{closed_port()}/hooks/SECRET-TOKEN-123"
    results = Results()
    dispatcher = load_alert_config({"alerts": {"sink": [{"type": "slack", "url_env": "HOOK", "timeout": 2}]}},
                                   env={"HOOK": url}, on_result=results)
    try:
        with caplog.at_level(logging.DEBUG, logger="entrodiag"):
            t0 = time.perf_counter()
            assert dispatcher.notify(flag(), step=64, run_id="r", run_dir="/r")
            assert time.perf_counter() - t0 < 0.05
            assert dispatcher.flush(5)
        dispatcher.close()
    finally:
        if server:
            server.close()
    assert dispatcher.failures == 1 and dispatcher.sent == 0
    ((alert, name, ok, error),) = results.items
    assert alert.kind == "early_collapse" and name == "slack" and ok is False and error
    if where == "500":
        assert "HTTP Error 500" in error
    else:
        assert "URLError" in error
    assert "failed" in caplog.text and "http://127.0.0.1:" in caplog.text
    for text in (caplog.text, error, repr(dispatcher)):
        assert "SECRET-TOKEN-123" not in text


def test_notify_never_blocks_on_a_hanging_server(caplog):
    server = _Hook("hang")
    results = Results()
    dispatcher = AlertDispatcher([WebhookSink(server.url(), timeout=0.3)], on_result=results)
    try:
        with caplog.at_level(logging.WARNING, logger="entrodiag"):
            times = []
            for kind in ("early_collapse", "entropy_floor", "length_collapse"):
                t0 = time.perf_counter()
                assert dispatcher.notify(flag(kind=kind), step=64, run_id="r", run_dir="/r")
                times.append(time.perf_counter() - t0)
            assert max(times) < 0.05, times
            assert dispatcher.flush(10)
    finally:
        dispatcher.close()
        server.close()
    assert dispatcher.failures == 3
    assert [r[2] for r in results.items] == [False] * 3
    assert "timed out" in caplog.text.lower()


def test_a_failing_sink_does_not_stop_the_others(hook):
    dispatcher = AlertDispatcher([WebhookSink(f"http://127.0.0.1:{closed_port()}/x", name="dead", timeout=1),
                                  WebhookSink(hook.url(), name="live")])
    assert dispatcher.notify(flag(), step=64, run_id="r", run_dir="/r")
    dispatcher.close(5)
    assert dispatcher.failures == 1 and dispatcher.sent == 1 and len(hook.bodies) == 1


class _Recorder:
    name, min_severity, target, secrets = "rec", "info", "rec", ()

    def __init__(self):
        self.alerts: list[Alert] = []

    def accepts(self, alert):
        return True

    def send(self, alert):
        self.alerts.append(alert)


def test_episode_rule_once_per_episode_gap_and_escalation():
    sink = _Recorder()
    d = AlertDispatcher([sink], cooldown_steps=50)
    # the same kind raised at every check while its condition holds: one alert
    queued = [d.notify(flag(first=20, last=s), step=s, run_id="r", run_dir="/r") for s in range(60, 120, 5)]
    assert queued == [True] + [False] * 11
    # another kind has its own episodes
    assert d.notify(flag(kind="entropy_floor", first=100, last=115), step=115, run_id="r", run_dir="/r")
    # raised again after a gap of at most cooldown_steps: still the same episode
    assert not d.notify(flag(first=160, last=170), step=170, run_id="r", run_dir="/r")
    # escalation within the episode: once more, and only once
    assert d.notify(flag(severity="critical", first=160, last=175), step=175, run_id="r", run_dir="/r")
    assert not d.notify(flag(severity="critical", first=160, last=180), step=180, run_id="r", run_dir="/r")
    assert not d.notify(flag(severity="warning", first=160, last=185), step=185, run_id="r", run_dir="/r")
    # a gap longer than cooldown_steps after the episode's last step: a new episode, a new alert
    assert d.notify(flag(first=236, last=240), step=240, run_id="r", run_dir="/r")
    assert not d.notify(flag(first=236, last=250), step=250, run_id="r", run_dir="/r")
    d.close(5)
    assert [(a.kind, a.severity, a.reason, a.step) for a in sink.alerts] == [
        ("early_collapse", "warning", "new", 60), ("entropy_floor", "warning", "new", 115),
        ("early_collapse", "critical", "escalation", 175), ("early_collapse", "warning", "new", 240)]


def test_cooldown_seconds_and_min_severity():
    now = [0.0]
    sink = _Recorder()
    d = AlertDispatcher([sink], cooldown_steps=5, cooldown_s=60, min_severity="warning",
                        clock=lambda: now[0])
    assert not d.notify(flag(severity="info", first=0, last=10), step=10, run_id="r", run_dir="/r")
    assert d.notify(flag(first=0, last=12), step=12, run_id="r", run_dir="/r")  # info→warning: first alert
    now[0] = 30.0
    # a new episode (gap > 5 steps) but only 30 s since the last alert: pending
    assert not d.notify(flag(first=30, last=31), step=31, run_id="r", run_dir="/r")
    now[0] = 61.0
    # the pending episode alerts once the cooldown has passed, while it is still raised
    assert d.notify(flag(first=30, last=33), step=33, run_id="r", run_dir="/r")
    assert not d.notify(flag(first=30, last=35), step=35, run_id="r", run_dir="/r")
    d.close(5)
    assert [a.step for a in sink.alerts] == [12, 33]


def test_per_sink_min_severity_and_closed_dispatcher():
    warn, crit = _Recorder(), _Recorder()
    crit.name = "crit"
    crit.accepts = lambda alert: alert.severity == "critical"
    d = AlertDispatcher([warn, crit])
    d.notify(flag(), step=60, run_id="r", run_dir="/r")
    d.notify(flag(severity="critical"), step=61, run_id="r", run_dir="/r")
    assert d.close(5)
    assert [a.severity for a in warn.alerts] == ["warning", "critical"]
    assert [a.severity for a in crit.alerts] == ["critical"]
    assert not d.notify(flag(kind="other"), step=70, run_id="r", run_dir="/r") and d.dropped == 1
    assert SlackSink("https://hooks.example/x", min_severity="critical").accepts(
        Alert.from_flag(flag(severity="critical"), step=1, run_id="r", run_dir="/r"))


def test_on_result_errors_are_logged_not_raised(hook, caplog):
    def boom(*args):
        raise RuntimeError("callback broke")

    d = AlertDispatcher([WebhookSink(hook.url())], on_result=boom)
    with caplog.at_level(logging.WARNING, logger="entrodiag"):
        assert d.notify(flag(), step=60, run_id="r", run_dir="/r")
        assert d.close(5)
    assert d.sent == 1 and "callback broke" in caplog.text


@pytest.mark.parametrize("section, message", [
    ({"sink": [{"type": "slack", "url_env": "NO_SUCH_VAR_XYZ"}]}, "NO_SUCH_VAR_XYZ"),
    ({"sink": [{"type": "email", "host": "h", "sender": "a@b", "to": "c@d", "username": "u",
                "password_env": "NO_SMTP_PASSWORD"}]}, "NO_SMTP_PASSWORD"),
    ({"sink": [{"type": "webhook", "url": "http://h/x", "headers_env": {"Authorization": "NO_TOKEN"}}]},
     "NO_TOKEN"),
    ({"sink": [{"type": "pager"}]}, "valid: console, webhook, slack, email"),
    ({"sink": [{"type": "console", "colour": "red"}]}, "'colour'"),
    ({"cooldown": 5, "sink": [{"type": "console"}]}, "valid: cooldown_steps, cooldown_s, min_severity, sink"),
    ({"min_severity": "fatal", "sink": [{"type": "console"}]}, "info, warning, critical"),
    ({"sink": []}, "at least one"),
    ({"sink": [{"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}]}, "url_env"),
    ({"sink": [{"type": "email", "host": "h", "sender": "a@b", "to": "c@d", "password": "pw"}]},
     "password_env"),
    ({"sink": [{"type": "webhook", "url": "ftp://h/x"}]}, "http"),
    ({"sink": [{"type": "webhook", "url": "http://h/x", "template": '{"k": "${nope}"}'}]}, "${nope}"),
    ({"sink": [{"type": "webhook", "url": "http://h/x", "template": '{"k": ${kind}}'}]}, "valid JSON"),
    ({"sink": [{"type": "console"}, {"type": "console"}]}, "name"),
    ({"sink": [{"type": "webhook", "url": "http://h/x", "timeout": "ten"}]}, "timeout must be a positive number"),
    ({"sink": [{"type": "email", "host": "h", "sender": "a@b", "to": "c@d", "timeout": 0}]}, "got 0"),
])
def test_config_errors_are_clear(section, message):
    with pytest.raises(ValueError) as e:
        load_alert_config({"alerts": section}, env={})
    assert message in str(e.value)
    assert "hooks.slack.com/services" not in str(e.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_alert_config(tmp_path / "missing.toml")
    (tmp_path / "t.toml").write_text("[train]\nlr = 1\n")
    with pytest.raises(ValueError, match=r"no \[alerts\] section"):
        load_alert_config(tmp_path / "t.toml")
    (tmp_path / "bad.toml").write_text("[alerts\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_alert_config(tmp_path / "bad.toml")


def test_module_docstring_example_loads(monkeypatch):
    import entrodiag.watch.alerts as alerts

    doc = alerts.__doc__
    example = textwrap.dedent(doc[doc.index("    [alerts]"):doc.index("Every sink table")])
    data = alerts._toml.loads(example)
    env = {"ENTRODIAG_SLACK_URL": "https://hooks.slack.com/services/T/B/X", "ALERT_TOKEN": "Bearer t0k3n",
           "SMTP_USER": "bot", "SMTP_PASSWORD": "pw"}
    d = load_alert_config(data, env=env)
    assert [s.type for s in d.sinks] == ["console", "slack", "webhook", "email"]
    assert d.cooldown_steps == 50 and d.cooldown_s == 600 and d.min_severity == "warning"
    assert d.sinks[3].min_severity == "critical"
    body = d.sinks[2].render(Alert.from_flag(flag(), step=64, run_id="r", run_dir="/r"))
    assert body == {"title": "warning: early_collapse", "from": 20, "evidence": EVIDENCE}
    assert "t0k3n" not in repr(d) and "services/T/B/X" not in repr(d)


def test_redact_url():
    assert redact_url("https://user:pw@hooks.slack.com/services/T/B/X?a=1") == "https://hooks.slack.com/…"
    assert redact_url("http://127.0.0.1:8080/secret") == "http://127.0.0.1:8080/…"
    assert redact_url("not a url") == "<url>"


def test_email_password_never_shown(caplog):
    env = {"SMTP_PASSWORD": "pw-very-secret"}
    sink = EmailSink("127.0.0.1", closed_port(), "a@example.org", "b@example.org", username="bot",
                     password_env="SMTP_PASSWORD", starttls=False, timeout=2, env=env)
    results = Results()
    d = AlertDispatcher([sink], on_result=results)
    with caplog.at_level(logging.DEBUG, logger="entrodiag"):
        assert d.notify(flag(), step=60, run_id="r", run_dir="/r")
        assert d.close(5)
    assert d.failures == 1 and results.items[0][2] is False
    for text in (caplog.text, results.items[0][3], repr(sink), repr(d)):
        assert "pw-very-secret" not in text
    with pytest.raises(ValueError, match="SMTP_PASSWORD"):
        EmailSink("h", 587, "a@example.org", "b@example.org", username="bot",
                  password_env="SMTP_PASSWORD", env={})


# ------------------------------------------------------------------------------ per-sink deadlines
class _Stuck(Sink):
    """A sink whose send blocks until ``release`` is set (a server that never answers)."""

    type = "stuck"

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.release = threading.Event()
        self.calls = 0

    def send(self, alert):
        self.calls += 1
        self.release.wait(30)


def test_each_sink_has_its_own_deadline_and_the_next_sinks_are_tried(caplog):
    stuck, after = _Stuck(timeout=0.4), _Recorder()
    results = Results()
    d = AlertDispatcher([stuck, after], on_result=results)
    try:
        with caplog.at_level(logging.WARNING, logger="entrodiag"):
            t0 = time.perf_counter()
            assert d.notify(flag(), step=64, run_id="r", run_dir="/r")
            assert d.flush(3), "the sink after a stuck one was never tried"
            took = time.perf_counter() - t0
            # a second alert while the abandoned send still hangs: not tried again, the others are
            assert d.notify(flag(kind="entropy_floor"), step=70, run_id="r", run_dir="/r")
            assert d.flush(0.3)
    finally:
        stuck.release.set()
        d.close(2)
    assert 0.4 <= took < 1.5
    assert [a.kind for a in after.alerts] == ["early_collapse", "entropy_floor"] and stuck.calls == 1
    assert [(name, ok) for _, name, ok, _ in results.items] == [("stuck", False), ("rec", True)] * 2
    assert "timed out" in results.items[0][3] and "0.4 s deadline" in results.items[0][3]
    assert "not tried" in results.items[2][3]
    assert d.failures == 2 and d.sent == 2 and "timed out" in caplog.text


class _Trickle(BaseHTTPRequestHandler):
    """Answers a POST one byte at a time, never ending its status line: each read of the client
    gets a byte within its socket timeout, so only a deadline on the whole send ends it."""

    stop = threading.Event()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.wfile.write(b"HTTP/1.1 200 ")
        while not self.stop.wait(0.1):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, *args):
        pass


def test_one_shot_watch_tries_email_after_a_slack_endpoint_that_never_answers(smtp_server, tmp_path,
                                                                             monkeypatch):
    """The issue's case: in a one-shot ``watch``, a Slack endpoint that never answers used the whole
    budget and the e-mail sink after it was never tried, with no trace. Now Slack is abandoned at its
    own deadline, recorded as ``alert_failed``, and every alert still reaches the e-mail."""
    import numpy as np
    import polars as pl
    from analysis_runs import make_run

    from entrodiag import load_run
    from entrodiag.watch import follow

    handler = type("Trickle", (_Trickle,), {"stop": threading.Event()})
    slack = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    slack.daemon_threads = True
    threading.Thread(target=slack.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("ENTRODIAG_SLACK_URL", f"http://127.0.0.1:{slack.server_port}/services/T/B/SECRET")
    host, port = smtp_server.server_address
    cfg = tmp_path / "alerts.toml"
    cfg.write_text(textwrap.dedent(f"""
        [alerts]
        min_severity = "critical"
        [[alerts.sink]]
        type = "slack"
        url_env = "ENTRODIAG_SLACK_URL"
        timeout = 1
        [[alerts.sink]]
        type = "email"
        host = "{host}"
        port = {port}
        sender = "entrodiag@example.org"
        to = "oncall@example.org"
        starttls = false
        timeout = 5
    """))
    run = make_run(tmp_path / "run", steps=80, entropy=np.where(np.arange(80) < 30, 0.8, 0.03), reward=0.4,
                   cov=0.05, law=(0.4, 1.3), config={"steps": 200})
    try:
        t0 = time.perf_counter()
        assert follow(run.path, alerts_config=cfg, out=io.StringIO()) == 0
        took = time.perf_counter() - t0
    finally:
        handler.stop.set()
        slack.shutdown()
        slack.server_close()
    events = load_run(run.path).events
    failed = events.filter(pl.col("kind") == "alert_failed")
    sent = events.filter(pl.col("kind") == "alert")
    n = events.filter((pl.col("kind") == "flag") & (pl.col("severity") == "critical")).height
    assert n >= 1 and len(smtp_server.box["mails"]) == n
    assert sorted(set(sent["name"])) == ["email"] and sent.height == n
    assert sorted(set(failed["name"])) == ["slack"] and failed.height == n
    errors = [json.loads(d)["error"] for d in failed["detail"]]
    assert "timed out" in errors[0] and "1 s deadline" in errors[0]
    assert all("SECRET" not in e for e in errors)
    assert took < 6  # Slack's 1 s deadline once: later alerts skip it while its abandoned send hangs
