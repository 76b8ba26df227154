"""The Streamlit dashboard (entrodiag/app/), rendered with ``streamlit.testing.v1.AppTest`` against the sample
run shipped in ``data/sample-run``: every page, its key numbers checked against the same numbers
computed here through ``entrodiag.analysis``; the empty states; live refresh; the cache keyed on
the run's files; the launcher and the packaging of the app files.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest

from entrodiag.analysis import (
    analyze_run,
    compare_runs,
    early_prediction,
    entropy_distribution,
    fit_entropy_law,
    forking_leaderboard,
)
from entrodiag.analysis.ceilings import ceilings_line
from entrodiag.analysis.views import law_band
from entrodiag.store import event_row, load_run, write_events

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "entrodiag" / "app" / "streamlit_app.py"
SAMPLE = REPO / "data" / "sample-run"
ROOT_ENV = "ENTRODIAG_RUNS_ROOT"
PAGES = ("page_runs.py", "page_dynamics.py", "page_law.py", "page_collapse.py", "page_tokens.py",
         "page_compare.py")

#: Token texts that would run script if a page rendered them as HTML.
EVIL = ("<img src=x onerror=alert(1)>", "<script>alert(1)</script>")


class EvilTokenizer:
    """Decodes a third of the ids (high- and low-entropy ones) to HTML that would run script."""

    VOCAB = (*EVIL, "&amp;", '"q"', "$x$", "*b*", " ", "_u_", *EVIL, "a", "b")

    def decode(self, ids: list[int]) -> str:
        return "".join(self.VOCAB[i % len(self.VOCAB)] for i in ids)


def make_xss_run(path: Path) -> Path:
    """A small run whose token text, responses, spans and events carry script-running HTML."""
    from analysis_runs import make_run  # the analysis tests' synthetic runs (through the Recorder)

    make_run(path, steps=24, entropy=lambda u: 0.9 - 0.5 * u, reward=lambda u: 0.3 + 0.4 * u, cov=0.05,
             law=(0.3, 1.0), eval_every=3, B=16, G=4, T=8, token_sample=3, tokenizer=EvilTokenizer(),
             intervention="kl_cov")
    write_events(path, [event_row(5, "flag", EVIL[1], severity="warning", first_step=0, last_step=5,
                                  message=EVIL[0])])
    return path


#: A run folder name that Markdown would format (no glob characters: a folder name can hold no '/').
MARKDOWN_FOLDER = "run __b__ <i>x</i> $x$ :smile: #1"


def markdown_text(image_url: str) -> str:
    """Run text that Markdown would turn into an image fetched from ``image_url``, bold, colour, LaTeX."""
    return f"![x]({image_url}) __b__ :red[r] $x$"


def make_markdown_run(path: Path, image_url: str) -> Path:
    """A small run whose evaluation name, model, task and event carry ``markdown_text``."""
    from analysis_runs import make_run

    text = markdown_text(image_url)
    make_run(path, steps=12, entropy=lambda u: 0.9 - 0.5 * u, reward=lambda u: 0.3 + 0.4 * u, law=(0.3, 1.0),
             eval_every=2, eval_name=text, B=8, G=4, T=4, token_sample=0, model=text, task=text)
    write_events(path, [event_row(5, "flag", text, severity="warning", first_step=0, last_step=5,
                                  message=text)])
    return path


def markdown_strings(at: AppTest) -> list[str]:
    """Every string the page hands Streamlit to draw as Markdown: bodies (markdown, captions, alerts,
    headers, metric values), labels, deltas and ``help=`` tooltips of every element, and the cells of
    ``st.table``. (Options of selectboxes, ``st.dataframe`` cells, HTML and plotly are not Markdown.)"""
    from google.protobuf.json_format import MessageToDict

    def leaves(node):
        for child in getattr(node, "children", {}).values():
            yield from leaves(child)
        if getattr(node, "proto", None) is not None and not getattr(node, "children", None):
            yield node

    out = []
    for el in leaves(at._tree):
        if el.type in ("html", "plotly_chart", "dataframe", "table"):
            continue
        d = MessageToDict(el.proto, preserving_proto_field_name=True)
        out += [str(d[k]) for k in ("body", "label", "help", "delta") if k in d]
    for table in at.table:
        out += [str(v) for v in table.value.to_numpy().ravel()] + [str(c) for c in table.value.columns]
    return out


def app(root: Path | str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app on ``root``, first page rendered."""
    monkeypatch.setenv(ROOT_ENV, str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    return at


def page(at: AppTest, name: str) -> AppTest:
    at.switch_page(name)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> str:
    """Everything the page wrote as markdown, captions, alerts and HTML, as one string."""
    kinds = ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader")
    parts = [e.value for kind in kinds for e in getattr(at, kind)]
    parts += [h.proto.body for h in at.get("html")]
    return "\n".join(str(p) for p in parts)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace(figs: list[dict], name: str) -> dict:
    return next(t for f in figs for t in f["data"] if t.get("name") == name)


def unescape(text: str) -> str:
    """Markdown text as it reads on the page (backslash escapes and the word joiners that keep URLs
    from becoming links removed)."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u2060", "")


def f3(x: float) -> str:
    return format(x, ".3f")


@pytest.fixture(scope="module")
def sample() -> Path:
    assert (SAMPLE / "run.json").is_file(), "data/sample-run is missing: run data/make_sample_run.py"
    return SAMPLE


@pytest.fixture(scope="module")
def summary(sample: Path) -> dict:
    return analyze_run(sample)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """A root with a copy of the sample run and a kl_cov run (the XSS run)."""
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(sample, root / "sample-run")
    make_xss_run(root / "xss-run")
    return root


# ----------------------------------------------------------------------------------------- pages
def test_sample_run_has_every_table(sample: Path) -> None:
    run = load_run(sample)
    assert run.status == "finished"
    for table in ("steps", "tokens", "samples", "spans", "evals", "events"):
        assert run.parts(table), table
    assert run.tokens["token"].drop_nulls().len() == run.tokens.height
    assert {"flag", "alert"} <= set(run.events["kind"])
    assert sum(f.stat().st_size for f in sample.rglob("*") if f.is_file()) < 2_000_000


def test_runs_page(sample: Path, summary: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(sample, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    m = metrics(at)
    dyn = {r["name"]: r for r in summary["dynamics"]["rows"]}
    assert m["Entropy now (nats)"] == f3(dyn["entropy_mean"]["end"])
    law = summary["law"]
    assert m["Ceiling b − a"] == f3(law["ceiling"])
    assert m["Accuracy (last eval)"] == f3(dyn[law["metric"]]["end"])
    assert m["Law R²"] == f3(law["r2"])
    assert m["Flags"] == str(len(summary["flags"]["items"]))
    fc = summary.get("forecast")
    if fc and fc["status"] == "ok":
        assert m["Entropy floor (nats)"] == f3(fc["floor"])
    table = at.dataframe[0].value
    assert table["run"].tolist() == [sample.name]  # the root is the run: named after its folder
    row = compare_runs([sample]).row(0, named=True)
    assert table["steps"][0] == row["steps"] == load_run(sample).steps.height
    assert table["ceiling"][0] == f3(row["ceiling"])  # a text cell: a withheld ceiling says so
    assert math.isclose(table["entropy_now"][0], row["entropy_end"])
    assert f"Ceilings: {ceilings_line(summary)}" in unescape(texts(at))  # both ceilings on the run card


def test_dynamics_page(sample: Path, summary: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(app(sample, monkeypatch), "page_dynamics.py")
    m = metrics(at)
    rows = {r["name"]: r for r in summary["dynamics"]["rows"]}
    for name in ("entropy_mean", "reward_mean", "cov_mean"):
        assert m[rows[name]["label"]] == format(rows[name]["end"], ".4g")
    run = load_run(sample)
    figs = figures(at)
    assert np.allclose(trace(figs, "mean")["y"], run.steps["entropy_mean"].to_numpy())
    flags = trace(figs, "event: flag")  # the events, as markers on the entropy chart
    assert flags["x"] == run.events.filter(pl.col("kind") == "flag")["step"].to_list()
    heat = next(t for f in figs for t in f["data"] if t["type"] == "heatmap")
    dist = entropy_distribution(run, segments=min(run.steps.height, 200))
    first = [row[0] for row in heat["z"]]
    assert np.allclose(first, dist["segments"][0]["shares"][: len(first)])
    assert trace(figs, "val/accuracy_sampled")["y"] == run.evals.filter(
        pl.col("name") == "val/accuracy_sampled")["value"].to_list()


def test_law_page_and_early_refit(sample: Path, summary: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(app(sample, monkeypatch), "page_law.py")
    assert f"Ceilings: {ceilings_line(summary)}" in unescape(texts(at))  # the compute asymptote beside the law's
    fit = fit_entropy_law(sample)
    m = metrics(at)
    shown = (m["a"], m["b"], m["ceiling b − a"], m["R²"])
    assert shown == (f3(fit.a), f3(fit.b), f3(fit.ceiling), f3(fit.r2))
    at.slider(key="law_frac").set_value(50).run()
    early = early_prediction(fit, fracs=[0.5])[0]
    m = metrics(at)
    assert m["Early fit on"] == f"{early.n_fit} points"
    assert m["RMSE on the rest"] == format(early.rmse, ".4f")
    assert m["Early ceiling"] == f3(early.ceiling)
    band = trace(figures(at), "95% band")
    assert math.isclose(band["y"][0], fit.ci["ceiling"][0], rel_tol=1e-6)  # the band at H = 0


def test_collapse_page(sample: Path, summary: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(app(sample, monkeypatch), "page_collapse.py")
    m = metrics(at)
    flags = summary["flags"]["items"]
    for sev in ("critical", "warning", "info"):
        assert m[f"{sev} flags"] == str(sum(f["severity"] == sev for f in flags))
    events = load_run(sample).events
    assert m["events recorded"] == str(events.height)
    body = texts(at)
    for f in flags:
        assert f["kind"].replace("_", "\\_") in body
    assert at.dataframe[0].value["kind"].tolist() == events["kind"].to_list()
    bars = [t for f in figures(at) for t in f["data"] if t["type"] == "bar"]
    assert sorted(b for t in bars for b in t["base"]) == sorted(f["first_step"] for f in flags)


def test_tokens_page(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(app(sample, monkeypatch), "page_tokens.py")
    run = load_run(sample)
    last = int(run.tokens["step"].max())
    assert at.select_slider(key="tok_step").value == last
    box = at.selectbox(key=f"tok_resp::{last}")
    sample_id = int(box.options[box.index].split(" ")[1])  # "sample 162 · reward 1.00 · ..."
    tokens = run.tokens.filter((pl.col("step") == last) & (pl.col("sample_id") == sample_id)).sort("pos")
    hwe = run.tokens.filter(pl.col("step") == last).group_by("sample_id").agg(pl.col("is_hwe").sum())
    assert tokens["is_hwe"].sum() == hwe["is_hwe"].max()  # the response with the most HWE positions first
    m = metrics(at)
    assert m["tokens"] == str(tokens.height)
    assert m["HWE positions"] == str(tokens["is_hwe"].sum())
    assert m["mean entropy (nats)"] == format(tokens["entropy"].mean(), ".4f")
    html_body = at.get("html")[0].proto.body
    assert html_body.count('class="ed-token"') == tokens.height
    assert format(tokens["entropy"][0], ".4f") in html_body  # in the hover title
    board = forking_leaderboard(run, top=20)
    shown = at.dataframe[0].value
    assert shown["token_id"].tolist() == board["token_id"].to_list()
    assert shown["forking"].tolist() == board["forking"].to_list()
    assert metrics(at)["spans"] == str(run.spans.height)


def test_compare_page(two_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(two_runs, monkeypatch)
    ms = at.sidebar.multiselect[0]
    ms.set_value(list(ms.options)).run()  # both runs
    at = page(at, "page_compare.py")
    table = at.table[0].value  # st.table draws its cells as Markdown: the texts are escaped
    table["intervention"] = table["intervention"].map(unescape)
    expected = compare_runs([two_runs / "sample-run", two_runs / "xss-run"])
    assert sorted(table["intervention"]) == sorted(expected["intervention"].to_list())
    for row in expected.iter_rows(named=True):
        shown = table[table["intervention"] == row["intervention"]].iloc[0]
        assert shown["ceiling"] == f3(row["ceiling"])
        assert shown["entropy"] == f"{f3(row['entropy_start'])} → {f3(row['entropy_end'])}"
    lines = [t for t in figures(at)[0]["data"] if t.get("showlegend")]
    assert len(lines) == 2


def test_token_text_is_escaped(two_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(two_runs / "xss-run", monkeypatch)
    at = page(at, "page_tokens.py")
    body = texts(at)
    for evil in EVIL:
        assert evil not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body or "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    for fig in figures(at):
        assert "<img" not in json.dumps(fig) and "<script" not in json.dumps(fig)
    at = page(at, "page_collapse.py")
    assert all("<img" not in json.dumps(f) for f in figures(at))


def test_run_text_is_never_markdown(tmp_path: Path, sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run folder name, evaluation name, model, task and event that Markdown would format (an image
    from another host, bold, colour, LaTeX): on every page, every string drawn as Markdown carries them
    escaped, so they read as the text itself; and the text is there (escaped, not dropped)."""
    root = tmp_path / "root"
    make_markdown_run(root / MARKDOWN_FOLDER, "http://127.0.0.1:9/pixel.png")
    shutil.copytree(sample, root / "sample-run")
    at = app(root, monkeypatch)
    ms = at.sidebar.multiselect[0]
    ms.set_value(sorted(ms.options, key=lambda p: "sample" in p)).run()  # the markdown run first
    raw = ("![x](", "__b__", ":red[", "$x$", "<i>", ":smile:")
    seen = []
    for name in PAGES:
        at = page(at, name)
        strings = markdown_strings(at)
        bad = [s for s in strings if any(r in s for r in raw)]
        assert not bad, (name, bad)
        seen += [unescape(s) for s in strings]
    shown = "\n".join(seen)
    assert MARKDOWN_FOLDER in shown and markdown_text("http://127.0.0.1:9/pixel.png") in shown


def test_runs_root_box_reaches_only_the_configured_root(tmp_path: Path, sample: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The "Runs root" box: a folder under the root the dashboard was started on is read; a folder
    outside it, a way out with '..', and an object-store URL carrying an endpoint (query string) or
    credentials are refused with the reason, before anything is read or sent."""
    root = tmp_path / "root"
    shutil.copytree(sample, root / "group" / "sample-run")
    outside = tmp_path / "outside"
    shutil.copytree(sample, outside / "sample-run")
    at = app(root, monkeypatch)
    for typed in ("group", str(root / "group"), str(root / "group" / "sample-run")):
        at.sidebar.text_input(key="root").set_value(typed).run()
        assert at.sidebar.multiselect[0].options == ["sample-run  ·  finished"], typed
    refused = {
        str(outside): "not under the runs root", "group/../../outside": "not under the runs root",
        f"file://{outside}": "not under the runs root", "/": "not under the runs root",
        "s3://bucket/runs?endpoint_override=127.0.0.1:9&scheme=http": "takes no query string",
        "gs://bucket/runs?endpoint_override=127.0.0.1:9": "takes no query string",
        "s3://KEY:SECRET@bucket/runs": "takes no credentials",
    }
    for typed, reason in refused.items():
        at.sidebar.text_input(key="root").set_value(typed).run()
        assert not at.exception, [e.message for e in at.exception]
        assert not at.sidebar.multiselect, typed  # nothing listed
        message = unescape(at.info[0].value)
        assert message.startswith(f"Refused: {typed}") and reason in message, (typed, message)
        if "://" in typed and "file" not in typed:
            assert "AWS_ENDPOINT_URL" in message


# ---------------------------------------------------------------------------------- empty states
@pytest.mark.parametrize("kind", ["missing", "empty", "not_a_run", "file"])
def test_clear_page_without_runs(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    if kind == "empty":
        root.mkdir()
    elif kind == "not_a_run":
        (root / "notes").mkdir(parents=True)
        (root / "notes" / "readme.txt").write_text("not a run")
    elif kind == "file":
        root.write_text("x")
    at = app(root, monkeypatch)
    for name in PAGES:
        at = page(at, name)
        assert at.info, name
    expected = {"missing": "does not exist", "empty": "holds no entrodiag runs",
                "not_a_run": "holds no entrodiag runs", "file": "is a file"}[kind]
    assert expected in at.info[0].value.replace("\\", "")


def test_run_with_missing_tables(tmp_path: Path, sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with step rows only (no tokens, samples, spans, evals, events) and a broken run.json."""
    run = tmp_path / "root" / "steps-only"
    run.mkdir(parents=True)
    shutil.copy2(sample / "run.json", run / "run.json")
    shutil.copytree(sample / "steps", run / "steps")
    broken = tmp_path / "root" / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    at = app(tmp_path / "root", monkeypatch)
    assert sorted(at.dataframe[0].value["run"].tolist()) == ["broken", "steps-only"]
    for name in PAGES[1:]:
        at = page(at, name)
    at = page(at, "page_law.py")  # no evaluations: the law on the training reward, said so
    assert "no validation metric" in texts(at).replace("\\", "")
    at = page(at, "page_tokens.py")
    assert "no token rows" in texts(at).replace("\\", "")
    at.sidebar.multiselect[0].set_value([str(broken)]).run()
    at = page(at, "page_dynamics.py")
    assert "cannot be read" in at.error[0].value.replace("\\", "")


# ------------------------------------------------------------------------------- live and caching
def test_live_run_refreshes_and_new_parts_invalidate(tmp_path: Path, sample: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "live"
    shutil.copytree(sample, run)
    meta = json.loads((run / "run.json").read_text())
    meta.update(status="running", heartbeat=time.time(), heartbeat_interval_s=3600, pid=os.getpid(),
                host=os.uname().nodename)
    (run / "run.json").write_text(json.dumps(meta))
    at = page(app(run, monkeypatch), "page_collapse.py")
    assert ":green-badge[live]" in texts(at)
    n = load_run(run).events.height
    assert metrics(at)["events recorded"] == str(n)
    write_events(run, [event_row(119, "stop", "manual", message="stopped by hand")])
    time.sleep(0.6)  # the app reuses a run's file listing for 0.5 s (app_data.FINGERPRINT_TTL_S)
    at.run()
    assert metrics(at)["events recorded"] == str(n + 1)  # a new part file: re-read
    at.sidebar.toggle[0].set_value(False).run()
    assert ":green-badge[live]" not in texts(at)


def test_live_view_sees_a_killed_writer_without_a_file_change(tmp_path: Path, sample: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The live view decides running/interrupted with inspect's rule (``run_status``) at every
    rerun: a writer killed with SIGKILL changes no file, yet the run turns interrupted and the
    live refresh stops."""
    import signal
    import subprocess
    import sys

    from entrodiag.store.reader import run_status

    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run = tmp_path / "live"
        shutil.copytree(sample, run)
        meta = json.loads((run / "run.json").read_text())
        meta.update(status="running", heartbeat=time.time(), heartbeat_interval_s=3600, pid=writer.pid,
                    host=os.uname().nodename)
        (run / "run.json").write_text(json.dumps(meta))
        at = page(app(run, monkeypatch), "page_collapse.py")
        assert ":green-badge[live]" in texts(at) and "badge[running]" in texts(at)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    at.run()
    assert run_status(meta) == "interrupted" == load_run(run).status
    assert ":green-badge[live]" not in texts(at) and ":orange-badge[interrupted]" in texts(at)


# ------------------------------------------------------------------------- launcher and packaging
def test_launcher_binds_localhost_and_finds_the_app() -> None:
    from entrodiag.cli import build_parser
    from entrodiag.dashboard import allowed_hosts, app_dir, streamlit_command

    assert app_dir() == APP.parent
    cmd = streamlit_command()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("run") + 1] == str(APP.parent / "dashboard_server.py")  # the app behind LocalOnly
    flags = dict(zip(cmd[cmd.index("run") + 2::2], cmd[cmd.index("run") + 3::2]))
    assert (flags["--server.enableXsrfProtection"], flags["--server.enableCORS"],
            flags["--server.enableAgentApi"]) == ("true", "true", "false")
    hosts = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--server.allowedHosts"]
    assert hosts == allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts("192.0.2.7") == ["127.0.0.1", "localhost", "::1", "192.0.2.7"]
    assert "*" not in allowed_hosts("0.0.0.0") and "localhost" in allowed_hosts("0.0.0.0")
    args = build_parser().parse_args(["dashboard"])
    assert (args.root, args.host, args.port) == ("runs", "127.0.0.1", 8501)


def test_every_app_file_is_packaged() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from setuptools import find_packages

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py-modules" not in config and "package-dir" not in config  # no hand-kept list, no remapping
    packages = find_packages(str(REPO), include=config["packages"]["find"]["include"])
    assert "entrodiag.app" in packages and APP.parent == REPO / "entrodiag" / "app"
    assert {p.name for p in APP.parent.glob("page_*.py")} >= set(PAGES)  # every page a file of the package


def test_law_band_matches_the_fit() -> None:
    H = np.linspace(1.0, 0.2, 30)
    R = 0.9 - 0.3 * np.exp(H) + 0.02 * np.sin(9 * H)
    fit = fit_entropy_law((H, R))
    band = law_band(fit, lo=0.0, hi=1.0, points=11)
    assert np.allclose(band["R"], fit.predict(np.linspace(0, 1, 11)))
    assert np.all(np.array(band["low"]) < band["R"]) and np.all(np.array(band["high"]) > band["R"])
    assert np.allclose([band["low"][0], band["high"][0]], fit.ci["ceiling"])  # same rule as the intervals
    assert law_band(fit, n_boot=0)["low"] is None
    with pytest.raises(ValueError):
        law_band(fit, lo=1.0, hi=0.5)


def test_run_choice_carries_over_between_pages(two_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(two_runs, monkeypatch)
    ms = at.sidebar.multiselect[0]
    ms.set_value(sorted(ms.options)).run()
    at = page(at, "page_dynamics.py")
    other = at.selectbox[0].options[1]  # the run's name
    at.selectbox[0].select_index(1).run()
    for name in ("page_law.py", "page_tokens.py"):
        at = page(at, name)
        assert at.selectbox[0].value.endswith(other), name
