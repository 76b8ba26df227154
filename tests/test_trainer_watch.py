"""The built-in trainer acting on collapse flags: --stop-on, --on-collapse, alerts that fail.

An aggressive learning rate (3e-3 on the test preset; docs/decisions.md: 1e-3 already collapsed the
600-step demo) drives the tiny policy to all-wrong answers within ~15 steps: most groups then
have all-equal rewards, and ``vanishing_signal`` turns critical.
"""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from conftest import COLLAPSING as COLLAPSE_ARGS
from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.trainer.checkpoint import list_checkpoints, load_trainer_state

COLLAPSING = ["train", *COLLAPSE_ARGS, "--no-progress"]


def test_stop_on_critical_stops_cleanly_with_a_checkpoint(stopped_collapse):
    out, printed = stopped_collapse  # COLLAPSING with --steps 25 --stop-on critical (conftest)
    run = load_run(out)
    assert run.status == "stopped"
    last = int(run.steps["step"].max())
    assert last < 24 and (last + 1) % 5 == 0
    stop = run.events.filter(pl.col("kind") == "stop")
    assert stop.height == 1 and stop["step"][0] == last and stop["severity"][0] == "critical"
    flags = run.events.filter((pl.col("kind") == "flag") & (pl.col("severity") == "critical"))
    assert stop["name"][0] in flags["name"].to_list()
    assert list_checkpoints(out)[-1][0] == last  # the checkpoint of the step it stopped at
    assert "stopping on a flag" in printed


class _Failing(BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_on_collapse_switches_the_loss_and_failing_alerts_do_not_stop_training(
    warm_start_val100, tmp_path, failing_webhook, caplog
):
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(f'[alerts]\ncooldown_steps = 5\n[[alerts.sink]]\ntype = "webhook"\nurl = "{failing_webhook}"\n')
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="entrodiag"):
        code = main([*COLLAPSING, "--steps", "20", "--on-collapse", "kl_cov", "--alerts", str(alerts),
                     "--out", str(out)])
    assert code == 0
    run = load_run(out)
    assert run.status == "finished" and run.steps.height == 20  # kept going to the end
    switch = run.events.filter(pl.col("kind") == "switch")
    assert switch.height == 1 and switch["name"][0] == "kl_cov"
    at = int(switch["step"][0])
    assert json.loads(switch["detail"][0])["from"] == "none" and run.meta["intervention"] == "kl_cov"
    # the loss changed from the next step: kl_cov logs the share of tokens it penalised
    selected = run.steps.sort("step")["selected_frac"]
    assert selected[: at + 1].is_null().all() and selected[at + 1 :].is_not_null().all()
    assert load_trainer_state(list_checkpoints(out)[-1][1])["intervention"] == "kl_cov"
    # every alert failed, was logged, and is in events/ as alert_failed
    failed = run.events.filter(pl.col("kind") == "alert_failed")
    assert failed.height >= 1 and _Failing.hits >= failed.height
    assert "HTTP Error 500" in failed["detail"][0] or "500" in failed["detail"][0]
    assert any("alert" in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)
