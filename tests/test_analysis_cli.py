"""`entrodiag analyze`: readable summary, JSON with the same numbers, --fail-on exit codes, and
runs with missing inputs (no evals, no token rows, one step, no steps) that never raise."""

import json
import math
import subprocess
import sys

import pytest
from analysis_runs import cached_run, healthy, make_run
from test_analysis_tokens import demo_settings

from entrodiag import Recorder, detect_collapse, fit_entropy_law
from entrodiag.analysis import analyze_run, early_prediction
from entrodiag.cli import main
from schema_check import diagnosis
from entrodiag.schemas import SCHEMA_VERSION


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return cached_run(tmp_path_factory, "demo", **demo_settings())


def analyze(capsys, *args):
    code = main(["analyze", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_text_summary_shows_law_early_prediction_flags_and_mechanism(demo, capsys):
    code, text, _ = analyze(capsys, demo.path)
    assert code == 0
    fit = fit_entropy_law(demo)
    for needle in ("Dynamics", "Entropy law R = −a·e^H + b", "val/accuracy_sampled", format(fit.a, ".4g"),
                   format(fit.b, ".4g"), format(fit.ceiling, ".4g"), "Early prediction", "Flags", "Mechanism check",
                   "verdict:", "Forking-token leaderboard", "High-window-entropy spans", "distribution"):
        assert needle in text, needle
    for row in early_prediction(fit):
        assert format(row.rmse, ".4g") in text
    flags = detect_collapse(demo)
    assert flags, "the demo-shaped run should raise at least one flag"
    for f in flags:
        assert f.kind in text and f.severity.upper() in text
    assert "Traceback" not in text


def test_json_is_valid_and_has_the_same_numbers(demo, capsys):
    code, out, _ = analyze(capsys, demo.path, "--json")
    assert code == 0
    s = diagnosis(out)
    fit = fit_entropy_law(demo)
    assert s["law"]["status"] == "ok" and s["law"]["metric"] == "val/accuracy_sampled"
    for key in ("a", "b", "ceiling", "r2", "rmse", "n", "gain_frac"):
        assert s["law"][key] == pytest.approx(getattr(fit, key))
    assert s["law"]["ci"]["a"] == pytest.approx(list(fit.ci["a"]))
    assert [r["rmse"] for r in s["early_prediction"]["rows"]] == pytest.approx([r.rmse for r in early_prediction(fit)])
    assert [f["kind"] for f in s["flags"]["items"]] == [f.kind for f in detect_collapse(demo)]
    assert s["run"]["eval_metrics"] == ["val/accuracy_greedy", "val/accuracy_sampled"] or set(
        s["run"]["eval_metrics"]) == {"val/accuracy_greedy", "val/accuracy_sampled"}
    assert s["mechanism"]["verdict"] and s["forking_tokens"]["status"] == "ok" and s["missing"] == []
    assert s.pop("schema_version") == SCHEMA_VERSION
    assert s == json.loads(json.dumps(analyze_run(demo), allow_nan=False))  # same numbers as the API


def test_fail_on_exit_codes(demo, tmp_path_factory, capsys):
    worst = detect_collapse(demo)[0].severity
    code, _, err = analyze(capsys, demo.path, "--fail-on", worst)
    assert code == 1 and "at or above " + worst in err
    healthy_run = cached_run(tmp_path_factory, "healthy", **healthy())
    assert analyze(capsys, healthy_run.path, "--fail-on", "info")[0] == 0
    collapsed = cached_run(tmp_path_factory, "collapsed", **healthy(
        entropy=lambda u: 0.05 + 0.95 * __import__("numpy").exp(-20 * u), cov=0.05, intervention="none"))
    code, out, err = analyze(capsys, collapsed.path, "--json", "--fail-on", "critical")
    assert code == 1 and diagnosis(out)["flags"]["worst"] == "critical" and "early_collapse" in err
    with pytest.raises(SystemExit):
        main(["analyze", str(demo.path), "--fail-on", "fatal"])


def test_not_a_run_exits_2(tmp_path, capsys):
    code, _, err = analyze(capsys, tmp_path / "nope")
    assert code == 2 and "no such file" in err


def _runs_with_gaps(root):
    yield "no evals", make_run(root / "no_evals", steps=20), ["no evaluations"], ["law", "early_prediction"]
    yield "no token rows", make_run(root / "no_tokens", steps=20, token_sample=0, law=(0.3, 0.9),
                                    entropy=lambda u: 1 - 0.5 * u), ["no token rows"], ["forking_tokens", "hwe_spans"]
    yield "one step", make_run(root / "one_step", steps=1, law=(0.3, 0.9)), ["a single step"], [
        "law", "early_prediction", "mechanism"]
    with Recorder(root / "scalars", source="trl") as rec:  # what an importer of logged metrics writes
        for t in range(30):
            rec.log_scalars(t, entropy_mean=1.0 - 0.02 * t, reward_mean=0.3 + 0.01 * t)
            if t % 3 == 0:
                rec.log_eval(t, "eval/accuracy", 0.9 - 0.3 * math.exp(1.0 - 0.02 * t))
    from entrodiag import load_run

    yield "scalars only", load_run(root / "scalars"), ["no token rows"], [
        "mechanism", "forking_tokens", "hwe_spans", "entropy_distribution"]
    with Recorder(root / "empty"):
        pass

    yield "no steps", load_run(root / "empty"), ["no step rows"], [
        "dynamics", "law", "mechanism", "forking_tokens", "hwe_spans", "entropy_distribution"]


def test_runs_with_missing_inputs_say_what_is_missing(tmp_path, capsys):
    for label, run, missing, empty_sections in _runs_with_gaps(tmp_path):
        code, text, err = analyze(capsys, run.path)
        assert code == 0 and "Traceback" not in text + err, label
        code, out, _ = analyze(capsys, run.path, "--json", "--fail-on", "info")
        assert code == 0, label
        s = diagnosis(out)
        if label == "scalars only":  # the law and the entropy detectors still work
            assert s["law"]["status"] == "ok" and s["law"]["metric"] == "eval/accuracy"
            assert "early_collapse" not in s["flags"]["skipped"] and "positive_covariance" in s["flags"]["skipped"]
        for line in missing:
            assert any(line in m for m in s["missing"]), (label, s["missing"])
            assert line in text, (label, line)
        flat = " ".join(text.split())
        for section in empty_sections:
            assert s[section]["status"] == "empty" and s[section]["reason"], (label, section)
            assert " ".join(s[section]["reason"].split()) in flat, (label, section)  # says why it is empty


def test_analyze_never_imports_torch(demo):
    code = ("import sys; from entrodiag.cli import main\n"
            f"rc = main(['analyze', {str(demo.path)!r}, '--json'])\n"
            "assert rc == 0 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert diagnosis(out.stdout)["law"]["status"] == "ok"


def test_threshold_overrides_from_the_command_line(demo, capsys):
    kinds = {f.kind for f in detect_collapse(demo)}
    assert "positive_covariance" in kinds
    # demanding positive covariance in more than 100% of steps silences that detector
    code, out, _ = analyze(capsys, demo.path, "--json", "--threshold", "cov_pos_share=1.01", "--threshold", "min_steps=10")
    assert code == 0
    got = {f["kind"] for f in diagnosis(out)["flags"]["items"]}
    assert got == {f.kind for f in detect_collapse(demo, cov_pos_share=1.01)} and "positive_covariance" not in got
    code, _, err = analyze(capsys, demo.path, "--threshold", "bogus=1")
    assert code == 2 and "unknown collapse threshold(s) bogus" in err
    code, _, err = analyze(capsys, demo.path, "--threshold", "cov_pos_share")
    assert code == 2 and "NAME=NUMBER" in err
