"""Dashboard first render on a run with 1,000,000 token rows: the Tokens and Dynamics pages.

The run is written directly as Parquet part files in the run-directory layout (through the store's
``to_arrow``, so every core column has its schema type; a Recorder would take minutes): 1,000
steps of 50 responses x 20 tokens = 1,000 token rows per step, a 32,000-id vocabulary with
Zipf-like frequencies and token text, entropy falling from ~1 to ~0.3 nats; per step a step row
with an entropy histogram, 50 sample rows and the HWE spans; evaluations every 10 steps; a few
events. Token rows are in 50 part files (20 steps each), as a Recorder flushing every 20 steps
would leave them. The run is kept (``--run DIR``) and reused when it exists.

Timed, with ``streamlit.testing.v1.AppTest`` in one process: the app is started on the run (its
Runs page rendered once, so Python imports are warm, as in a running server), then for each page
``--repeats`` times: clear ``st.cache_data`` and ``st.cache_resource`` (cold: the run is opened,
read and analysed again), switch to the page and run the script; the median is the page's first
render. Also timed: a warm render (the same page again, data cached), and a baseline: polars
reading the token columns the pages read (``pl.scan_parquet(parts).collect()``), the unavoidable
I/O, to compare across machines.

Target (the dashboard issue): first render of each page < 3 s.

``--first-page`` (issue 29) times what a user of a just-started dashboard waits, in headless
chromium: a new ``entrodiag dashboard`` (and an empty cache folder) per trial, its first page (Runs)
on ``data/`` (the sample run) until fully rendered (``RENDERED``), then every other page of the
sidebar in turn, then the first page on the big run; ``--compare-with CHECKOUT`` alternates the
trials with another version's (e.g. ``main``, exported with ``git archive``).

    python benchmarks/bench_dashboard.py                      # generate (once) and time
    python benchmarks/bench_dashboard.py --browser --json benchmarks/results/dashboard.json
    git archive main | tar -x -C /tmp/main-code
    python benchmarks/bench_dashboard.py --first-page --compare-with /tmp/main-code --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "entrodiag" / "app" / "streamlit_app.py"
SAMPLE = REPO / "data" / "sample-run"
STEPS, RESPONSES, LENGTH, GROUP, VOCAB = 1000, 50, 20, 5, 32000
STEPS_PER_PART = 20
PAGES = {"Dynamics": "page_dynamics.py", "Tokens": "page_tokens.py"}
TARGET_S = 3.0


def _write(run: Path, table: str, seq: int, columns: dict) -> None:
    import pyarrow.parquet as pq

    from entrodiag.store.schema import part_name
    from entrodiag.store.writer import to_arrow

    (run / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(table, columns), run / table / part_name(0, seq), compression="zstd")


def _step_batch(rng: np.random.Generator, step: int, edges: np.ndarray) -> dict[str, dict]:
    """Token, sample, span and step rows of one step."""
    n = RESPONSES * LENGTH
    u = step / (STEPS - 1)
    level = 0.3 + 0.7 * np.exp(-4 * u)
    h = np.where(rng.random(n) < 0.4, rng.uniform(0, 0.01, n), rng.exponential(1.6 * level, n))
    h = h.astype(np.float32)
    ids = np.minimum(rng.zipf(1.3, n) - 1, VOCAB - 1)
    lp = (-0.2 - 0.8 * h + rng.normal(0, 0.05, n)).astype(np.float32)
    sample = np.repeat(np.arange(RESPONSES), LENGTH)
    reward = (rng.random(RESPONSES) < 0.3 + 0.4 * u).astype(np.float64)
    grp = reward.reshape(-1, GROUP)
    adv_r = ((grp - grp.mean(1, keepdims=True)) / (grp.std(1, keepdims=True) + 1e-6)).ravel()
    adv = adv_r[sample].astype(np.float32)
    cov = ((lp - lp.mean()) * (adv - adv.mean())).astype(np.float32)
    p = np.exp(lp)
    s_star = (p * (h + lp)).astype(np.float32)
    win = np.convolve(h, np.ones(4) / 4, mode="same").astype(np.float32)
    thr = float(np.quantile(win, 0.95))
    hwe = win > thr
    fork = h >= np.quantile(h, 0.8)
    pos = np.tile(np.arange(LENGTH), RESPONSES)
    sid = step * RESPONSES + sample
    tokens = {
        "step": np.full(n, step), "rank": np.zeros(n, np.int32), "sample_id": sid, "group_id": sid // GROUP,
        "pos": pos.astype(np.int32), "token_id": ids, "token": [f"w{i}" for i in ids], "entropy": h,
        "logprob": lp, "advantage": adv, "cov": cov, "s_star": s_star, "window_entropy": win, "is_hwe": hwe,
        "is_forking": fork,
    }
    ids_by = ids.reshape(RESPONSES, LENGTH)
    first = step * RESPONSES + np.arange(RESPONSES)
    samples = {
        "step": np.full(RESPONSES, step), "rank": np.zeros(RESPONSES, np.int32), "sample_id": first,
        "group_id": first // GROUP, "prompt_id": rng.integers(0, 5000, RESPONSES),
        "prompt": [f"prompt {i}" for i in range(RESPONSES)],
        "response": [" ".join(f"w{i}" for i in r) for r in ids_by], "reward": reward, "advantage": adv_r,
        "length": np.full(RESPONSES, LENGTH),
        "entropy_mean": h.reshape(RESPONSES, LENGTH).mean(1).astype(np.float64),
    }
    starts = np.flatnonzero(hwe & ~np.r_[False, hwe[:-1]])
    ends = np.flatnonzero(hwe & ~np.r_[hwe[1:], False]) + 1
    spans = {
        "step": np.full(len(starts), step), "rank": np.zeros(len(starts), np.int32),
        "sample_id": sid[starts], "start": pos[starts].astype(np.int32),
        "end": np.minimum(pos[starts] + (ends - starts), LENGTH).astype(np.int32),
        "mean_window_entropy": np.array([win[a:b].mean() for a, b in zip(starts, ends)], dtype=np.float64),
        "max_entropy": np.array([h[a:b].max() for a, b in zip(starts, ends)], dtype=np.float64),
        "text": [" ".join(tokens["token"][a:b]) for a, b in zip(starts, ends)],
    }
    hist = np.histogram(np.minimum(h, edges[-2]), bins=edges[:-1].tolist() + [np.inf])[0]
    q = np.quantile(h, [0.5, 0.8, 0.9, 0.99])
    steps = {
        "step": [step], "rank": [0], "n_tokens": [n], "n_responses": [RESPONSES],
        "n_groups": [RESPONSES // GROUP], "entropy_mean": [float(h.mean())],
        "entropy_seq_mean": [float(samples["entropy_mean"].mean())], "entropy_std": [float(h.std())],
        "entropy_p50": [q[0]], "entropy_p80": [q[1]], "entropy_p90": [q[2]], "entropy_p99": [q[3]],
        "entropy_hist": [hist.tolist()], "high_entropy_frac": [float((h > 0.672).mean())],
        "logprob_mean": [float(lp.mean())], "advantage_mean": [float(adv.mean())],
        "cov_mean": [float(cov.mean())], "cov_pos_frac": [float((cov > 0).mean())],
        "reward_mean": [float(reward.mean())], "reward_std": [float(reward.std())],
        "zero_adv_group_frac": [float((grp.std(1) == 0).mean())], "resp_len_mean": [float(LENGTH)],
        "hwe_token_frac": [float(hwe.mean())], "hwe_threshold": [thr],
        "entropy_pressure": [float((-adv * s_star).mean())], "wall_time": [1.7e9 + step],
    }
    return {"tokens": tokens, "samples": samples, "spans": spans, "steps": steps}


def start_run(run: Path, steps: int) -> None:
    """Make the folder of a synthetic finished run of ``steps`` steps and its ``run.json`` (the
    benchmarks that write a run's tables directly start with this)."""
    from entrodiag.metrics import DEFAULT_HIST_EDGES
    from entrodiag.store.schema import SCHEMA
    from entrodiag.store.writer import write_json_atomic

    run.mkdir(parents=True)
    write_json_atomic(run / "run.json", {
        "schema": SCHEMA, "run_id": run.name, "created": "2026-01-01T00:00:00+00:00", "status": "finished",
        "heartbeat": time.time(), "source": "custom", "config": {"total_steps": steps}, "model": "synthetic",
        "task": "bench", "intervention": "none", "entropy_temperature": 1.0, "world_size": 1,
        "entropy_hist_edges": [e if np.isfinite(e) else None for e in DEFAULT_HIST_EDGES],
    })


def generate(run: Path, seed: int = 0) -> float:
    """Write the benchmark run; returns the seconds it took."""
    from entrodiag.metrics import DEFAULT_HIST_EDGES
    from entrodiag.store.writer import event_row

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    edges = np.array(DEFAULT_HIST_EDGES)
    start_run(run, STEPS)
    buffer: dict[str, dict[str, list]] = {}
    entropy: list[float] = []
    for step in range(STEPS):
        for table, cols in _step_batch(rng, step, edges).items():
            for name, values in cols.items():
                buffer.setdefault(table, {}).setdefault(name, []).extend(
                    values.tolist() if isinstance(values, np.ndarray) else values)
        entropy.append(buffer["steps"]["entropy_mean"][-1])
        if (step + 1) % STEPS_PER_PART == 0:  # one part file per table every STEPS_PER_PART steps
            for table, cols in buffer.items():
                _write(run, table, step // STEPS_PER_PART, cols)
            buffer.clear()
    ev_steps = [*range(0, STEPS, 10), STEPS - 1]
    n_ev = len(ev_steps)
    acc = np.clip(1.0 - 0.45 * np.exp(np.asarray(entropy)[ev_steps]) + rng.normal(0, 0.01, n_ev), 0, 1)
    _write(run, "evals", 0, {"step": ev_steps, "rank": [0] * n_ev, "name": ["val/accuracy"] * n_ev,
                             "value": acc.tolist(), "n": [500] * n_ev})
    rows = [event_row(s, "flag", "positive_covariance", severity="info", first_step=0, last_step=s,
                      message="cov > 0") for s in (100, 400, 700)]
    _write(run, "events", 0, {k: [v for r in rows for v in r[k]] for k in rows[0]})
    return time.perf_counter() - t0


def _last_step(run: Path) -> int:
    from entrodiag.store import load_run

    return int(load_run(run).steps["step"].max())


def baseline(run: Path) -> float:
    """Seconds for polars to read the token columns the pages read (the unavoidable I/O)."""
    import polars as pl

    parts = sorted((run / "tokens").glob("part-*.parquet"))
    t0 = time.perf_counter()
    df = pl.scan_parquet(parts).select("step", "rank", "sample_id", "token_id", "token", "entropy",
                                       "is_forking").collect()
    assert df.height == STEPS * RESPONSES * LENGTH
    return time.perf_counter() - t0


def time_pages(run: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Cold (caches cleared) and warm render times of each page, in seconds."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["ENTRODIAG_RUNS_ROOT"] = str(run)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()  # imports and the Runs page: as in a server that is already up
    out: dict[str, dict[str, float]] = {}
    for title, page in PAGES.items():
        cold = []
        for _ in range(repeats):
            st.cache_data.clear()
            st.cache_resource.clear()
            at.switch_page(page)
            t0 = time.perf_counter()
            at.run()
            cold.append(time.perf_counter() - t0)
            assert not at.exception, [e.message for e in at.exception]
            assert at.metric, f"{title}: nothing rendered"
        t0 = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t0
        out[title] = {"cold_median_s": statistics.median(cold), "cold_all_s": cold, "warm_s": warm}
    return out


URL_PATHS = {"Dynamics": "dynamics", "Tokens": "tokens"}


def time_pages_in_browser(run: Path, repeats: int, chromium: str = "/usr/bin/chromium") -> dict[str, dict]:
    """Seconds until the page's metrics and charts are drawn in headless chromium, each time with a
    freshly started ``entrodiag dashboard`` (cold caches), two ways:

    - ``fresh_server_s``: from opening the page's URL on the run: includes the server's first
      script run (importing polars, plotly, scipy and the analysis layer) and loading Streamlit's
      frontend: what the first visitor of a just-started server waits;
    - ``warm_server_s``: the server started on the small sample run (``data/sample-run``) and the
      page opened on it first (imports done, frontend and plotly.js loaded), then the run's folder
      typed into "Runs root": the page's first render of this run with cold caches, as when a user
      of an open dashboard moves to a run not seen before.
    """
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    from playwright.sync_api import sync_playwright

    def start(root: Path) -> tuple[subprocess.Popen, str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "entrodiag.cli", "dashboard", str(root), "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        return proc, f"http://127.0.0.1:{port}"

    def drawn(page, steps: str) -> None:
        """The page shows the run (its caption names its last step), nothing is stale, charts drawn."""
        page.get_by_text(f"steps 0–{steps}").first.wait_for(timeout=120_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 && "
                               "!document.querySelector('[data-testid=stStatusWidget]') && "
                               "!document.querySelector('[data-stale=true]')", timeout=120_000)

    out: dict[str, dict] = {}
    last = _last_step(run)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for title, url_path in URL_PATHS.items():
            res: dict[str, list[float]] = {"fresh_server_s": [], "warm_server_s": []}
            for _ in range(repeats):
                for mode, root in (("fresh_server_s", run), ("warm_server_s", SAMPLE)):
                    proc, url = start(root)
                    try:
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        t0 = time.perf_counter()
                        page.goto(f"{url}/{url_path}")
                        if mode == "warm_server_s":
                            drawn(page, str(_last_step(SAMPLE)))
                            box = page.get_by_label("Runs root", exact=True)
                            box.fill(str(run))
                            t0 = time.perf_counter()
                            box.press("Enter")
                        drawn(page, str(last))
                        res[mode].append(time.perf_counter() - t0)
                        page.close()
                    finally:
                        os.killpg(proc.pid, signal.SIGTERM)
                        proc.wait(timeout=20)
            out[title] = {k: {"median": statistics.median(v), "all": v} for k, v in res.items()}
        browser.close()
    return out


#: Issue 29's targets (seconds, medians): the first page of a freshly started server on the sample
#: run, every later page, the first page on the run of 10^6 token rows.
FIRST_PAGE_S, LATER_PAGE_S, FIRST_PAGE_1M_S = 2.5, 1.0, 3.0
#: The sidebar's pages in the order a user visits them after the first (Runs), and what each shows
#: once fully rendered: the number of plotly charts drawn on the sample run.
NAV = {"Runs": 0, "Dynamics": 3, "Entropy law": 1, "Collapse": 1, "Tokens": 2, "Compare": 1}

#: "Fully rendered", the same for every page and every version of the app: the page's title is
#: shown; Streamlit's running indicator is gone, nothing is stale (greyed out from an earlier run of
#: the script) and no skeleton or spinner is left; the run's numbers are there (the Runs page: its
#: table and the selected run's summary metrics; the other pages: the caption naming the run's last
#: step; Compare: its overlay chart); and every plotly chart the page sent has drawn its SVG, at
#: least ``charts`` of them.
RENDERED = """([title, steps, charts]) => {
  const q = (s) => document.querySelectorAll(s);
  if (![...q('h1')].some(h => h.innerText.startsWith(title))) return false;
  if (q('[data-testid=stStatusWidget]').length || q('[data-stale=true]').length) return false;
  if (q('[data-testid=stSkeleton]').length || q('[data-testid=stSpinner]').length) return false;
  const plots = q('[data-testid=stPlotlyChart]');
  const drawn = q('[data-testid=stPlotlyChart] .main-svg').length > 0 ?
      [...plots].filter(p => p.querySelector('.main-svg')).length : 0;
  if (drawn < plots.length || drawn < charts) return false;
  if (title === 'Runs') {
    return q('[data-testid=stDataFrame]').length > 0 && q('[data-testid=stMetric]').length >= 5;
  }
  return [...q('[data-testid=stCaptionContainer]')].some(c => c.innerText.includes(steps));
}"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_page_trial(browser, root: Path, last_step: int, later: bool = True, code: str | None = None,
                     dwell: float = 0.0) -> dict:
    """One trial: a new ``entrodiag dashboard ROOT`` (its own empty cache folder, so the summary
    index is cold too; ``code``: the checkout whose ``entrodiag`` it runs, else this one), its first
    page opened in a new chromium page as soon as its health endpoint answers, then, with ``later``,
    every other page of the sidebar in turn (a click on its name, ``dwell`` seconds after the page
    before it was fully rendered: a user reading it), each timed until "fully rendered"
    (``RENDERED``). Seconds: ``launch_to_ready`` (the command started until its health endpoint
    answers), ``first_page`` (the URL opened until the Runs page is fully rendered),
    ``launch_to_first_page`` (what a user who opens the page at once waits) and each later page."""
    import shutil
    import sys
    import tempfile

    steps = f"steps 0–{last_step}"
    cache = tempfile.mkdtemp(prefix="entrodiag-bench-cache-")
    port = _free_port()
    env = {**os.environ, "ENTRODIAG_CACHE": cache, "PYTHONPATH": code or str(REPO)}
    cmd = [sys.executable, "-m", "entrodiag.cli", "dashboard", str(root), "--port", str(port)]
    try:  # the cwd is not the checkout: `python -m` puts the cwd first on sys.path
        with _fresh_server(cmd, port, env=env, cwd=cache) as (url, t_launch, t_ready):
            page, t1 = _first_render(browser, url, steps)
            out = {"launch_to_ready": t_ready - t_launch, "first_page": t1 - t_ready,
                   "launch_to_first_page": t1 - t_launch}
            nav = page.locator('[data-testid="stSidebarNav"]')
            for title in list(NAV)[1:] if later else []:
                time.sleep(dwell)
                t0 = time.perf_counter()
                nav.get_by_text(title, exact=True).click()
                shows = "" if title == "Compare" else steps  # several runs: no one run's caption
                page.wait_for_function(RENDERED, arg=[title, shows, NAV[title]], timeout=120_000, polling=50)
                out[title] = time.perf_counter() - t0
            page.close()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return out


@contextlib.contextmanager
def _fresh_server(cmd: list[str], port: int, **popen):
    """``cmd`` started as a server in its own process group: ``(url, t_launch, t_ready)`` once its
    health endpoint answers (raises if it exited first); stopped on leaving."""
    import signal
    import subprocess
    import urllib.request

    url = f"http://127.0.0.1:{port}"
    t_launch = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            **popen)
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({proc.returncode})") from None
                time.sleep(0.05)
        yield url, t_launch, time.perf_counter()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _first_render(browser, url: str, shows: str):
    """A new chromium page on ``url``, waited for until its Runs page is fully rendered
    (``RENDERED``, showing ``shows``): the page and the time it was."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_function(RENDERED, arg=["Runs", shows, 0], timeout=120_000, polling=50)
    return page, time.perf_counter()


#: The floor: a minimal Streamlit app drawing what the Runs page draws (a title, a caption with a
#: badge, a one-row table, five metrics, a text box in the sidebar), nothing computed. What any
#: Streamlit page of this kind costs the browser on this machine, at this load.
FLOOR_APP = """import streamlit as st
st.sidebar.text_input("Runs root", value="data")
st.title("Runs")
st.caption("under data · :blue-badge[finished]")
st.dataframe({"run": ["sample-run"], "steps": [120], "entropy": [0.33]}, hide_index=True)
for col, label in zip(st.columns(5), ("Entropy now", "Accuracy", "Ceiling", "Law R2", "Flags")):
    col.metric(label, "0.330", delta="-0.184")
"""


def floor_trial(browser) -> dict[str, float]:
    """``FLOOR_APP`` on a freshly started ``streamlit run``: seconds until ready and until drawn."""
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        app = Path(folder) / "floor_app.py"
        app.write_text(FLOOR_APP)
        port = _free_port()
        cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        with _fresh_server(cmd, port) as (url, t_launch, t_ready):
            page, t1 = _first_render(browser, url, "")
            page.close()
    return {"launch_to_ready": t_ready - t_launch, "first_page": t1 - t_ready, "launch_to_first_page": t1 - t_launch}


#: One fresh process: streamlit imported (as in a server that is up), then, when the checkout has
#: the warm-up, ``warm_up()`` (what the server does before it serves), then the first script run of
#: the app (``AppTest``): what the server does between the browser's connection and the page.
SCRIPT_RUN = """
import json, os, sys, tempfile, time
os.environ["ENTRODIAG_CACHE"] = tempfile.mkdtemp()
import streamlit
from streamlit.testing.v1 import AppTest
import entrodiag.app
out = {"warm_up": 0.0}
try:
    from entrodiag.app import app_warmup
except ImportError:
    app_warmup = None
if app_warmup is not None:
    t0 = time.perf_counter(); app_warmup.warm_up(); out["warm_up"] = time.perf_counter() - t0
app = os.path.join(os.path.dirname(entrodiag.app.__file__), "streamlit_app.py")
at = AppTest.from_file(app, default_timeout=120)
t0 = time.perf_counter(); at.run(); out["first_script_run"] = time.perf_counter() - t0
assert not at.exception and len(at.metric) >= 5
print(json.dumps(out))
"""


def time_first_script_run(root: Path, repeats: int, codes: dict[str, str | None]) -> dict[str, dict]:
    """``SCRIPT_RUN`` ``repeats`` times per checkout (alternated): seconds of the warm-up and of the
    first script run of the Runs page, server side only (no browser)."""
    import subprocess
    import sys
    import tempfile

    trials: dict[str, list[dict]] = {label: [] for label in codes}
    for _ in range(repeats):
        for label, code in codes.items():
            env = {**os.environ, "PYTHONPATH": code or str(REPO), "ENTRODIAG_RUNS_ROOT": str(root)}
            done = subprocess.run([sys.executable, "-c", SCRIPT_RUN], env=env, capture_output=True, text=True,
                                  check=True, cwd=tempfile.gettempdir())  # `-c` puts the cwd first on sys.path
            trials[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {label: {k: {"median": statistics.median(t[k] for t in ts), "all": [t[k] for t in ts]} for k in ts[0]}
            for label, ts in trials.items()}


def time_first_page(root: Path, repeats: int, later: bool = True, codes: dict[str, str | None] | None = None,
                    floor: bool = False, chromium: str = "/usr/bin/chromium",
                    dwell: float = 0.0) -> dict[str, dict]:
    """``first_page_trial`` ``repeats`` times for each checkout of ``codes`` (label: path; default
    this checkout), and with ``floor`` the ``floor_trial`` (label ``streamlit floor``), alternated
    trial by trial; medians and every trial, by label."""
    from playwright.sync_api import sync_playwright

    codes = codes or {"this": None}
    last = _last_step(root) if (root / "run.json").is_file() else _last_step(_newest_run(root))
    trials: dict[str, list[dict]] = {label: [] for label in codes}
    if floor:
        trials["streamlit floor"] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for _ in range(repeats):
            for label, code in codes.items():
                trials[label].append(first_page_trial(browser, root, last, later, code, dwell))
            if floor:
                trials["streamlit floor"].append(floor_trial(browser))
        browser.close()
    return {label: {k: {"median": statistics.median(t[k] for t in ts), "all": [t[k] for t in ts]} for k in ts[0]}
            for label, ts in trials.items()}


def _newest_run(root: Path) -> Path:
    """The run the sidebar selects at start under a root of runs: the newest run.json."""
    return max((p.parent for p in root.rglob("run.json")), key=lambda d: (d / "run.json").stat().st_mtime)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def first_page_main(args: argparse.Namespace) -> None:
    """``--first-page``: the sample run's first page and later pages, then the big run's first page."""
    codes = {"compared": str(args.compare_with.resolve()), "this": None} if args.compare_with else None
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    "load_before": loadavg(), "dwell_s": args.dwell,
                    "targets_s": {"first_page": FIRST_PAGE_S, "later": LATER_PAGE_S,
                                  "first_page_1M": FIRST_PAGE_1M_S}}
    if not args.sample_only:
        result["server_side"] = time_first_script_run(REPO / "data", args.repeats, codes or {"this": None})
    result["sample"] = time_first_page(REPO / "data", args.repeats, later=True, codes=codes,
                                       floor=not args.sample_only, dwell=args.dwell)
    if not args.sample_only:
        result["big_run"] = time_first_page(args.run, args.repeats, later=False, codes=codes)
    result["load_after"] = loadavg()
    print(f"machine {result['machine']}; load average before {result['load_before']}, after {result['load_after']}")
    for what in ("server_side", "sample", "big_run"):
        for label, r in result.get(what, {}).items():
            for key, m in r.items():
                runs = ", ".join(f"{x:.2f}" for x in m["all"])
                print(f"{what:<8} {label:<9} {key:<22} {m['median']:6.2f} s  ({runs})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("/tmp/entrodiag-bench-dashboard"),
                    help="the benchmark run (generated when missing)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--browser", action="store_true",
                    help="also time each page in headless chromium against a freshly started server")
    ap.add_argument("--first-page", action="store_true",
                    help="only time, in chromium, the first page of a freshly started server on data/ (the "
                    "sample run) and every later page, then the first page on the big run (issue 29)")
    ap.add_argument("--compare-with", type=Path, metavar="CHECKOUT",
                    help="with --first-page: also time this checkout's entrodiag (e.g. `git archive main | tar "
                    "-x -C DIR`), its trials alternated with this checkout's")
    ap.add_argument("--dwell", type=float, default=0.0, metavar="S",
                    help="with --first-page: seconds between a page fully rendered and the click on the next "
                    "(a user reading the page; default 0: at once)")
    ap.add_argument("--sample-only", action="store_true",
                    help="with --first-page: only the sample run's pages (no server-side timing, floor or "
                    "big run)")
    args = ap.parse_args()
    if not (args.run / "run.json").is_file():
        print(f"generating {args.run} ...", flush=True)
        print(f"  {generate(args.run):.1f} s", flush=True)
    if args.first_page:
        first_page_main(args)
        return
    import polars as pl

    parts = sorted((args.run / "tokens").glob("part-*.parquet"))
    rows = pl.scan_parquet(parts).select(pl.len()).collect().item()
    load_before = loadavg()
    base = baseline(args.run)
    pages = time_pages(args.run, args.repeats)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_before": load_before, "load_after": loadavg(), "token_rows": rows, "baseline_read_s": base,
        "pages": pages, "target_s": TARGET_S,
    }
    print(f"machine {result['machine']}; load average before {load_before}, after {result['load_after']}")
    print(f"run {args.run}: {rows:,} token rows; baseline (polars reads the token columns) {base:.2f} s")
    for title, r in pages.items():
        verdict = "holds" if r["cold_median_s"] < TARGET_S else "MISSES"
        runs = ", ".join(f"{x:.2f}" for x in r["cold_all_s"])
        print(f"{title:<9} first render {r['cold_median_s']:.2f} s (runs: {runs}; "
              f"{r['cold_median_s'] / base:.1f}x baseline), warm {r['warm_s']:.2f} s; "
              f"target < {TARGET_S:.0f} s {verdict}")
    if args.browser:
        result["browser"] = time_pages_in_browser(args.run, args.repeats)
        for title, r in result["browser"].items():
            for mode, m in r.items():
                runs = ", ".join(f"{x:.2f}" for x in m["all"])
                what = mode.removesuffix("_s").replace("_", " ")
                print(f"{title:<9} in chromium, {what}: {m['median']:.2f} s (runs: {runs})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
