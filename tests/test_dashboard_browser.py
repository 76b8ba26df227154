"""The dashboard in a real browser: ``entrodiag dashboard ROOT --port FREE_PORT`` in a subprocess,
driven by playwright with Debian's chromium (headless). Opens every page through the sidebar,
checks numbers computed here through ``entrodiag.analysis``, checks that token text carrying
``<img onerror>`` and ``<script>`` shows as text and runs nothing, that run text carrying a Markdown
image shows as text and fetches nothing (a local HTTP server counts the requests), that the
"Runs root" box refuses an object-store URL whose query string names an endpoint, and that the
server refuses a WebSocket or an HTTP request from another Host or Origin (DNS rebinding); and saves
a screenshot of each page (to the test's tmp_path and, when ``ENTRODIAG_SCREENSHOTS=DIR`` is set, to
DIR; the damaged run's pages only then).

Skips, saying why, without playwright or without ``/usr/bin/chromium`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install playwright)")

from run_damage import copy_sample_run, corrupt_page, truncate_part  # noqa: E402
from test_dashboard import (  # noqa: E402
    EVIL,
    MARKDOWN_FOLDER,
    SAMPLE,
    make_markdown_run,
    make_xss_run,
)

from entrodiag.analysis import analyze_run, compare_runs, fit_entropy_law  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium; .ci/run "
                "installs it)", allow_module_level=True)

NAV = ("Runs", "Dynamics", "Entropy law", "Collapse", "Tokens", "Compare")
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_command(root: Path, port: int) -> list[str]:
    """``entrodiag dashboard ROOT --port PORT`` (the console script beside this Python, else the module)."""
    script = Path(sys.executable).with_name("entrodiag")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "entrodiag.cli"]
    return [*head, "dashboard", str(root), "--port", str(port)]


class Outside(ThreadingHTTPServer):
    """A host outside the dashboard (127.0.0.1, a free port) that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outside = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                outside.requests.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_PUT = do_POST = answer

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    server = Outside()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, outside: Outside) -> Path:
    """The XSS run, the Markdown run (an image from ``outside`` in its evaluation name, model, task
    and event; Markdown in its folder name), a damaged copy of the sample run (a truncated steps
    part, a tokens part with a corrupt page behind a good footer), then a fresh copy of the sample
    run (the newest run: selected at start)."""
    root = tmp_path_factory.mktemp("browser-root")
    make_xss_run(root / "xss-run")
    make_markdown_run(root / MARKDOWN_FOLDER, f"{outside.url}/pixel.png")
    damaged = copy_sample_run(root / "damaged-run")
    truncate_part(sorted((damaged / "steps").glob("part-*"))[3])
    corrupt_page(sorted((damaged / "tokens").glob("part-*"))[20], "entropy")
    time.sleep(0.05)
    shutil.copytree(SAMPLE, root / "sample-run", copy_function=shutil.copy)
    return root


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard's URL; the server (its whole process group) is stopped afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "dashboard.log"
    # credentials in the server's environment: what a URL naming another endpoint would sign requests with
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "server-key", "AWS_SECRET_ACCESS_KEY": "server-secret",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("AWS_ENDPOINT_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(dashboard_command(root, port), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"the dashboard did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def fetched() -> list[str]:
    """Every URL the browser page requested."""
    return []


@pytest.fixture(scope="module")
def browser_page(server: str, fetched: list[str]) -> Iterator[tuple]:
    """A chromium page on the dashboard and the list of dialogs it opened (there must be none)."""
    dialogs: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(server)
            page.locator('[data-testid="stMetric"]').first.wait_for()
            yield page, dialogs
        finally:
            browser.close()


def settle(page) -> None:
    """Wait until the script run is over (no running indicator) and charts have drawn."""
    page.wait_for_timeout(400)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(600)


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.wait_for_function(
        f"[...document.querySelectorAll('h1')].some(h => h.innerText.startsWith({title!r}))")
    settle(page)


def screenshot(page, name: str, tmp_path: Path, only_if_asked: bool = False) -> Path | None:
    """The whole main area (Streamlit scrolls inside it, so the viewport is grown to fit).
    ``only_if_asked``: taken only when ``ENTRODIAG_SCREENSHOTS`` is set (a picture of a page whose
    checks read the DOM: a second or two each that the suite need not spend)."""
    if only_if_asked and not os.environ.get("ENTRODIAG_SCREENSHOTS"):
        return None
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(height + 40, 8000)})
    page.wait_for_timeout(500)
    path = tmp_path / f"dashboard-{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    extra = os.environ.get("ENTRODIAG_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def visible(page, text: str) -> bool:
    """``text`` is shown somewhere on the page (waits for it)."""
    loc = page.get_by_text(text, exact=False).filter(visible=True).first
    loc.wait_for(state="visible")
    return loc.is_visible()


def pick(page, widget: str, label: str, option: str) -> None:
    """Choose ``option`` in the select/multiselect labelled ``label``."""
    box = page.locator(f'[data-testid="{widget}"]').filter(has_text=label)
    box.locator('[role="combobox"]').first.click()
    page.get_by_role("option", name=option).first.click()
    page.keyboard.press("Escape")
    settle(page)


def test_every_page_in_a_browser(browser_page, root: Path, tmp_path: Path) -> None:
    page, dialogs = browser_page
    summary = analyze_run(root / "sample-run")
    fit = fit_entropy_law(root / "sample-run")
    dyn = {r["name"]: r for r in summary["dynamics"]["rows"]}
    expected = {
        "Runs": [f"{summary['law']['ceiling']:.3f}", f"{dyn['entropy_mean']['end']:.3f}", "sample-run"],
        "Dynamics": [format(dyn["entropy_mean"]["end"], ".4g"), format(dyn["reward_mean"]["end"], ".4g")],
        "Entropy law": [f"{fit.a:.3f}", f"{fit.b:.3f}", f"{fit.ceiling:.3f}"],
        "Collapse": [f["kind"] for f in summary["flags"]["items"]],
        "Tokens": [str(summary["hwe_spans"]["n_spans"])],
    }
    for title in NAV[:-1]:
        open_page(page, title)
        for text in expected[title]:
            assert visible(page, text), (title, text)
        screenshot(page, title.lower().replace(" ", "-"), tmp_path)

    pick(page, "stMultiSelect", "Runs", "xss-run")  # both runs selected: compare them
    open_page(page, "Compare")
    table = compare_runs([root / "sample-run", root / "xss-run"])
    for ceiling in table["ceiling"]:
        assert visible(page, f"{ceiling:.3f}")
    assert page.locator(".js-plotly-plot .legendtext").filter(has_text="xss-run (kl_cov)").count() == 1
    screenshot(page, "compare", tmp_path)
    assert not dialogs


def test_token_text_is_shown_as_text_and_runs_nothing(browser_page, tmp_path: Path) -> None:
    page, dialogs = browser_page
    open_page(page, "Tokens")
    if page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").count() == 0:
        pick(page, "stMultiSelect", "Runs", "xss-run")
    pick(page, "stSelectbox", "Run", "xss-run")
    tokens = page.locator(".ed-token")
    tokens.first.wait_for()
    shown = tokens.all_inner_texts()
    assert set(EVIL) & set(shown), shown  # the markup is visible as text ...
    for evil in EVIL:
        if evil in shown:
            assert visible(page, evil)
    ticks = page.locator(".js-plotly-plot .xtick text")  # ... and in plotly's labels
    assert set(EVIL) & set(ticks.all_text_contents()), ticks.all_text_contents()
    for i in range(min(tokens.count(), 4)):  # hover titles and plotly's hover labels
        tokens.nth(i).hover()
    bars = page.locator(".js-plotly-plot g.trace.bars g.point")
    for i in range(min(bars.count(), 4)):
        bars.nth(i).hover(force=True)  # plotly listens on the drag layer above the bars
        page.wait_for_timeout(150)
    open_page(page, "Collapse")  # the event's name and message carry markup too
    page.locator(".js-plotly-plot .scatterlayer .point").last.hover(force=True)
    page.wait_for_timeout(300)
    screenshot(page, "xss-collapse", tmp_path)
    open_page(page, "Tokens")
    screenshot(page, "xss-tokens", tmp_path)
    # ... and nothing was injected or ran
    assert page.locator('img[src="x"]').count() == 0
    assert not page.evaluate("[...document.scripts].some(s => s.textContent.includes('alert('))")
    assert not dialogs


def test_a_damaged_run_shows_a_warning_not_a_traceback(browser_page, root: Path, tmp_path: Path) -> None:
    """Every page of a run with a truncated steps part and a corrupt tokens page: the page is drawn
    from the rest, with a warning naming the skipped files, and no exception box."""
    page, dialogs = browser_page
    damaged = root / "damaged-run"
    steps_part = sorted((damaged / "steps").glob("part-*"))[3].name
    tokens_part = sorted((damaged / "tokens").glob("part-*"))[20].name
    pick(page, "stMultiSelect", "Runs", "damaged-run")
    for title in NAV:
        open_page(page, title)
        if title not in ("Runs", "Compare") and \
                page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").count():
            pick(page, "stSelectbox", "Run", "damaged-run")
        assert visible(page, "damaged part file(s) skipped"), title
        assert visible(page, steps_part), title
        if title in ("Runs", "Collapse", "Tokens"):  # the pages whose reads decode token pages
            assert visible(page, tokens_part), title
        assert page.locator('[data-testid="stException"]').count() == 0, title
        screenshot(page, "damaged-" + title.lower().replace(" ", "-"), tmp_path, only_if_asked=True)
    assert not dialogs


def hover_tooltips(page) -> int:
    """Hover every ``help=`` tooltip icon of the page's metrics and widgets (its Markdown is rendered
    then); their number. (The table's column tooltips hold no run text.)"""
    icons = page.locator('[data-testid="stTooltipHoverTarget"]:not([data-testid="stDataFrame"] *)').filter(
        visible=True)
    n = icons.count()
    for i in range(n):
        icons.nth(i).hover()
        page.wait_for_timeout(200)
    return n


def test_markdown_in_run_text_is_text_and_fetches_nothing(browser_page, fetched: list[str], outside: Outside,
                                                          tmp_path: Path) -> None:
    """An evaluation name, model, task and event holding ``![x](http://outside/pixel.png)``, and a
    run folder named with Markdown: every page shows them as the text itself (tooltips included),
    and nothing is ever requested from the outside host or for the image."""
    page, dialogs = browser_page
    host = outside.url.removeprefix("http://")
    open_page(page, "Runs")
    pick(page, "stMultiSelect", "Runs", MARKDOWN_FOLDER)
    assert visible(page, MARKDOWN_FOLDER)  # the run's summary header, as typed
    tips = hover_tooltips(page)  # the accuracy's tooltip names the evaluation
    assert tips >= 2
    screenshot(page, "markdown-runs", tmp_path)
    assert page.locator(f'a[href*="{host}"]').count() == 0  # the URL is not made a link either
    open_page(page, "Entropy law")  # "R = <evaluation name> (...)": the name reads as typed
    if page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").count():
        pick(page, "stSelectbox", "Run", MARKDOWN_FOLDER)
    hover_tooltips(page)
    # (an invisible word joiner after "http:" keeps Markdown from making the URL a link)
    assert visible(page, "R = ![x](http:") and visible(page, f"//{host}/pixel.png) __b__ :red[r] $x$ (")
    assert page.locator(f'a[href*="{host}"]').count() == 0
    screenshot(page, "markdown-law", tmp_path)
    page.wait_for_timeout(500)
    assert outside.requests == []
    assert not [u for u in fetched if "pixel" in u or u.startswith(outside.url)]
    assert not dialogs


def test_runs_root_with_an_endpoint_in_its_query_is_refused(browser_page, outside: Outside,
                                                            root: Path) -> None:
    """``s3://bucket/runs?endpoint_override=HOST&scheme=http`` typed in the "Runs root" box: refused with
    the reason, and the host gets no request (the server has credentials it would sign them with)."""
    page, dialogs = browser_page
    open_page(page, "Runs")
    box = page.locator('[data-testid="stTextInput"]').filter(has_text="Runs root").locator("input")
    host = outside.url.removeprefix("http://")
    box.fill(f"s3://bucket/runs?endpoint_override={host}&scheme=http")
    box.press("Enter")
    settle(page)
    page.wait_for_timeout(1000)
    assert outside.requests == []
    assert visible(page, "takes no query string")
    box.fill(str(root))  # back to the runs, for any test after this one
    box.press("Enter")
    settle(page)
    assert not dialogs


def handshake(url: str, host: str, origin: str | None, path: str = "/_stcore/stream") -> str:
    """The status line the server answers a WebSocket handshake (or, with ``path`` not the
    stream, a plain GET) sent with these Host and Origin headers."""
    port = int(url.rsplit(":", 1)[1])
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    if path == "/_stcore/stream":
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    else:
        lines += ["Connection: close"]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096).split(b"\r\n")[0].decode()


def test_foreign_host_or_origin_is_refused(server: str, browser_page) -> None:
    """DNS rebinding (a page at evil.example:PORT resolved to 127.0.0.1: Host and Origin both
    evil.example) and a cross-site page (Origin evil.example or another local port) cannot open the
    WebSocket, and a foreign Host gets no HTTP answer either; the dashboard's own page can."""
    port = server.rsplit(":", 1)[1]
    own, evil = f"127.0.0.1:{port}", f"evil.example:{port}"
    assert handshake(server, own, f"http://{own}").split()[1] == "101"  # the page the dashboard served
    assert handshake(server, f"localhost:{port}", f"http://localhost:{port}").split()[1] == "101"
    for host, origin in ((evil, f"http://{evil}"), (evil, None), (own, "http://evil.example"),
                         (own, "http://127.0.0.1:1")):
        assert handshake(server, host, origin).split()[1] == "403", (host, origin)
    assert handshake(server, own, None, path="/").split()[1] == "200"
    assert handshake(server, evil, None, path="/").split()[1] == "403"
    page, dialogs = browser_page  # and the browser's page still works
    open_page(page, "Runs")
    assert page.locator('[data-testid="stMetric"]').count()
    assert not dialogs
