"""Live watch: following a run another process writes, events, callbacks, the CLI, alerts."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from analysis_runs import cached_run, healthy, make_run

from entrodiag import load_run
from entrodiag.analysis import detect_collapse
from entrodiag.cli import main
from entrodiag.watch import AlertDispatcher, Watcher, follow
from entrodiag.watch.alerts import WebhookSink

TESTS = Path(__file__).parent
FLUSH_S = 1.5

# entropy 0.8 for 30 steps, then 0.03: raises several kinds of flag within a few steps
COLLAPSE = dict(steps=80, entropy=np.where(np.arange(80) < 30, 0.8, 0.03), reward=0.4, cov=0.05, law=(0.4, 1.3),
                config={"steps": 200})

WRITER = """
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, {tests!r})
from analysis_runs import make_run
times, go = {{}}, Path({go!r})
def on_step(t):
    times[t] = time.time()
    if t == 0:
        while not go.exists():
            time.sleep(0.02)
    time.sleep(0.05)
make_run({run!r}, steps=80, entropy=np.where(np.arange(80) < 30, 0.8, 0.03), reward=0.4, cov=0.05, law=(0.4, 1.3),
         config={{"steps": 200}}, flush_interval_s={flush}, heartbeat_s=1.0, on_step=on_step)
Path({times!r}).write_text(json.dumps(times))
"""


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_follow_reports_each_flag_once_within_two_flush_intervals(tmp_path):
    run_dir, go, times_file = tmp_path / "run", tmp_path / "go", tmp_path / "times.json"
    script = WRITER.format(tests=str(TESTS), go=str(go), run=str(run_dir), flush=FLUSH_S, times=str(times_file))
    writer = subprocess.Popen([sys.executable, "-c", script], env=_env(), stderr=subprocess.PIPE, text=True)
    watcher = None
    try:
        deadline = time.time() + 60
        while not (run_dir / "run.json").exists():
            assert writer.poll() is None and time.time() < deadline, "the writer did not start the run"
            time.sleep(0.05)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "entrodiag.cli", "watch", str(run_dir), "--follow", "--interval", "0.25"],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        lines: list[tuple[float, str]] = []

        def read():
            for line in watcher.stdout:
                lines.append((time.time(), line.rstrip("\n")))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while not lines:  # the watcher is up and has read the (still empty) run
            assert watcher.poll() is None and time.time() < deadline, "the watcher did not start"
            time.sleep(0.05)
        go.touch()
        assert writer.wait(120) == 0, writer.stderr.read()
        assert watcher.wait(60) == 0, "\n".join(t for _, t in lines)
        reader.join(5)
    finally:
        for p in (writer, watcher):
            if p is not None and p.poll() is None:
                p.kill()
    recorded = {int(k): v for k, v in json.loads(times_file.read_text()).items()}
    printed = {}
    for t, line in lines:
        if line.startswith("[step ") and "(steps " in line:
            severity, kind = line.split("] ", 1)[1].split()[:2]
            assert (kind, severity.lower()) not in printed, f"{kind} {severity} reported twice"
            printed[(kind, severity.lower())] = t
    run = load_run(run_dir)
    final = {f.kind for f in detect_collapse(run)}
    assert final and final <= {kind for kind, _ in printed}, (final, printed)
    rank = {"info": 0, "warning": 1, "critical": 2}
    for (kind, severity), t_seen in printed.items():
        trigger = next(s for s in range(80) if any(
            f.kind == kind and rank[f.severity] >= rank[severity] for f in detect_collapse(run.until(s))))
        latency = t_seen - recorded[trigger]
        assert latency <= 2 * FLUSH_S, f"{kind} {severity}: seen {latency:.2f} s after step {trigger}"
    # every flag it reported is in the run's events/ table, once
    flags = run.events.filter(run.events["kind"] == "flag")
    assert sorted(zip(flags["name"], flags["severity"])) == sorted(printed)
    assert "the run is finished" in lines[-1][1]


HEARTBEAT_S = 1.5

# a trainer stand-in: records six steps, then only keeps its heartbeat until it is killed
LIVE_WRITER = """
import sys, time
from entrodiag import Recorder
rec = Recorder(sys.argv[1], flush_interval_s=0.1, heartbeat_s={heartbeat})
for step in range(6):
    rec.log_scalars(step, entropy_mean=0.8 - 0.01 * step, reward_mean=0.4)
rec.flush()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_follow_exits_interrupted_within_two_heartbeats_of_a_sigkill(tmp_path):
    """No file changes once the trainer is killed; the watch still sees it ``interrupted`` (the
    rule of ``inspect``) and exits with EXIT_INTERRUPTED within two heartbeat intervals."""
    from entrodiag.watch.follow import EXIT_INTERRUPTED

    run_dir = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER.format(heartbeat=HEARTBEAT_S), str(run_dir)],
                              env=_env(), stdout=subprocess.PIPE, text=True)
    watcher = None
    try:
        assert writer.stdout.readline().strip() == "ready"
        watcher = subprocess.Popen(
            [sys.executable, "-m", "entrodiag.cli", "watch", str(run_dir), "--follow", "--interval", "0.2",
             "--no-events"],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        first = [watcher.stdout.readline() for _ in range(2)]  # R = ... (which metric), then the status
        assert "[running] step 5" in first[1], first
        # kill just after a heartbeat the watch has read: from then on, nothing changes on disk
        beat = (run_dir / "run.json").stat().st_mtime_ns
        deadline = time.time() + 10
        while (run_dir / "run.json").stat().st_mtime_ns == beat and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        writer.kill()
        writer.wait()
        killed = time.time()
        assert load_run(run_dir).status == "interrupted"  # what inspect says
        try:
            code = watcher.wait(2 * HEARTBEAT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"watch --follow still running {2 * HEARTBEAT_S} s after the trainer was killed")
        elapsed = time.time() - killed
        rest = watcher.stdout.read()
    finally:
        for p in (writer, watcher):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert code == EXIT_INTERRUPTED == 3, rest
    assert "[interrupted] step 5" in rest and "the run is interrupted" in rest
    assert elapsed < 2 * HEARTBEAT_S


def test_a_poll_without_new_files_decides_the_status_anew(tmp_path, monkeypatch):
    """A writer on another host (no pid to check) whose heartbeat goes stale: interrupted once
    the heartbeat is older than STALE_HEARTBEATS intervals, though no file changed."""
    from entrodiag.store import reader

    run = make_run(tmp_path / "r", **healthy(steps=20))
    meta = {**run.meta, "status": "running", "host": "another-host", "heartbeat": time.time(),
            "heartbeat_interval_s": 10.0}
    (run.path / "run.json").write_text(json.dumps(meta))
    w = Watcher(run.path, events=None)
    w.poll()
    assert w.status.run_status == "running" and w.status.step == 19
    now = time.time()
    monkeypatch.setattr(reader.time, "time", lambda: now + reader.STALE_HEARTBEATS * 10.0 + 2.0)
    assert w.poll() == []
    assert w.status.run_status == "interrupted" == reader.run_status(meta) == load_run(run.path).status
    assert w.status.step == 19 and w.status.line().startswith("[interrupted] step 19")


def test_a_second_poll_without_new_parts_reports_nothing(tmp_path_factory):
    run = cached_run(tmp_path_factory, "watch-collapse", **COLLAPSE)
    w = Watcher(run.path, events=None)
    first = w.poll()
    assert {f.kind for f in first} == {f.kind for f in detect_collapse(run)}
    assert w.poll() == [] and w.poll(force=True) == []  # the same flags again are not new
    assert w.status.step == 79 and w.status.active_flags == len(first)
    assert w.status.forecast is not None and w.status.forecast.reached_step is not None


def test_on_flag_callbacks_get_each_new_flag_and_their_errors_are_contained(tmp_path_factory):
    run = cached_run(tmp_path_factory, "watch-collapse", **COLLAPSE)
    w = Watcher(run.path, events=None)
    seen = []
    w.on_flag(lambda flag, status: seen.append((flag.kind, status.step)))

    @w.on_flag
    def broken(flag, status):
        raise RuntimeError("a bug in the user's callback")

    new = w.poll()
    assert seen == [(f.kind, 79) for f in new] and w.callback_errors == len(new)


def test_episodes_end_after_reset_steps_without_the_flag(tmp_path):
    # a spike of zero-advantage groups at steps 20-39, gone after: one vanishing_signal episode
    zero = np.where((np.arange(100) >= 20) & (np.arange(100) < 40), 0.9, 0.1)
    run = make_run(tmp_path / "r", **{**healthy(steps=100), "zero_adv": zero})
    w = Watcher(run.path, events=None, reset_steps=10)
    kinds = [{f.kind for f in w._new(detect_collapse(run.until(s)), s)} for s in range(15, 100, 5)]
    starts = [i for i, k in enumerate(kinds) if "vanishing_signal" in k]
    assert len(starts) == 1, kinds


def test_watch_cli_exit_codes_and_events(tmp_path_factory, tmp_path, capsys):
    bad = cached_run(tmp_path_factory, "watch-collapse-cli", **COLLAPSE)
    good = cached_run(tmp_path_factory, "healthy", **healthy())
    assert main(["watch", str(bad.path), "--fail-on", "critical", "--no-events"]) == 1
    out = capsys.readouterr().out
    assert "CRITICAL early_collapse" in out and "→ " in out and "floor" in out
    assert load_run(bad.path).events.is_empty()  # --no-events
    assert main(["watch", str(good.path), "--fail-on", "warning"]) == 0
    assert main(["watch", str(bad.path)]) == 0
    events = load_run(bad.path).events
    assert set(events["kind"]) == {"flag"} and events.height == len(detect_collapse(bad))
    assert json.loads(events["detail"][0])["advice"]
    assert main(["watch", str(tmp_path)]) == 2
    assert "is not an entrodiag run" in capsys.readouterr().err


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    handler = type("Hook", (_Hook,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_watcher_alerts_a_webhook_and_records_the_delivery(tmp_path, webhook):
    handler, url = webhook
    run = make_run(tmp_path / "r", **COLLAPSE)
    w = Watcher(run.path, alerts=AlertDispatcher([WebhookSink(url)], cooldown_steps=50))
    flags = w.poll()
    w.close()
    got = {a["kind"]: a for a in handler.received}
    assert set(got) == {f.kind for f in flags}
    for f in flags:
        a = got[f.kind]
        assert (a["severity"], a["first_step"], a["last_step"]) == (f.severity, f.first_step, f.last_step)
        assert a["evidence"] == f.evidence and a["advice"] == f.advice and a["run_id"] == run.run_id
    ev = load_run(run.path).events
    assert sorted(ev.filter(ev["kind"] == "alert")["detail"].map_elements(
        lambda d: json.loads(d)["flag"], return_dtype=str).to_list()) == sorted(got)


def test_follow_with_an_alerts_file(tmp_path, webhook, capsys):
    handler, url = webhook
    run = make_run(tmp_path / "r", **COLLAPSE)
    cfg = tmp_path / "alerts.toml"
    cfg.write_text(f'[alerts]\nmin_severity = "critical"\n[[alerts.sink]]\ntype = "webhook"\nurl = "{url}"\n')
    assert follow(run.path, alerts_config=cfg) == 0
    assert {a["severity"] for a in handler.received} == {"critical"} and len(handler.received) >= 2


def test_status_line_shows_no_ceiling_when_the_law_does_not_fit(tmp_path_factory):
    """The ceiling is shown only when the law fits (``verdicts.judge_law``): evaluations that are noise
    around a constant (R² near 0) give ``ceiling — (poor fit)``; the healthy run gives its number."""
    good = Watcher(cached_run(tmp_path_factory, "healthy", **healthy()).path, events=None)
    good.poll()
    assert good.status.law_status is None and f"ceiling {good.status.ceiling:.3f}" in good.status.line()
    noisy = make_run(tmp_path_factory.mktemp("noisy") / "run", **healthy(law=None, evals=lambda u: 0.5 + 0.2 *
                     np.sin(37 * u)))
    w = Watcher(noisy.path, events=None)
    w.poll()
    from entrodiag.analysis import fit_entropy_law

    assert fit_entropy_law(noisy, n_boot=0).r2 < 0.5  # the premise: the law does not fit this run
    assert w.status.ceiling is None and w.status.law_status == "poor fit"
    assert "ceiling — (poor fit)" in w.status.line()
    assert w.status.asymptote is None and "compute asymptote — (" in w.status.line()  # no number either
