"""Token analyses: forking-token leaderboard, HWE span statistics, entropy distribution."""

import numpy as np
import polars as pl
import pytest
from analysis_runs import cached_run, healthy, make_run
from conftest import CharTokenizer

from entrodiag.analysis import entropy_distribution, forking_leaderboard, hwe_span_stats


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return cached_run(tmp_path_factory, "demo", **demo_settings())


def demo_settings():
    """A run shaped like the built-in trainer's demo (entropy 0.6 → 0.17 nats, positive covariance,
    sampled accuracy on the law, greedy accuracy beside it), with token text."""
    return healthy(
        steps=100, entropy=lambda u: 0.17 + 0.43 * np.exp(-4 * u), cov=lambda u: 0.02 + 0.01 * np.sin(20 * u),
        reward=lambda u: 0.26 + 0.43 * (1 - np.exp(-4 * u)), law=(0.3, 0.95), eval_noise=0.003, greedy=True,
        tokenizer=CharTokenizer(), token_sample=8, intervention="none",
    )


def test_forking_leaderboard_matches_the_token_rows(run):
    board = forking_leaderboard(run, top=6)
    tokens = run.tokens
    assert board.height == 4  # only ids 0-3 ("abcd") are forking tokens in this run
    assert set(board["token"]) == set("abcd") and board["forking_rate"].min() > 0.9
    assert board["forking"].to_list() == sorted(board["forking"].to_list(), reverse=True)
    for row in board.iter_rows(named=True):
        own = tokens.filter(pl.col("token_id") == row["token_id"])
        assert row["count"] == own.height and row["forking"] == own["is_forking"].sum()
        assert row["mean_entropy"] == pytest.approx(own["entropy"].mean(), rel=1e-5)
    assert board["forking_share"].sum() == pytest.approx(1.0)
    assert forking_leaderboard(run, top=2).height == 2
    by_rate = forking_leaderboard(run, by="forking_rate", min_count=1)
    assert by_rate["forking_rate"].to_list() == sorted(by_rate["forking_rate"].to_list(), reverse=True)
    with pytest.raises(ValueError, match="by must be one of"):
        forking_leaderboard(run, by="count")


def test_forking_leaderboard_without_text_uses_ids(tmp_path):
    board = forking_leaderboard(make_run(tmp_path / "r", steps=12, token_sample=4), top=3)
    assert board.height == 3 and all(t.startswith("#") for t in board["token"])


def test_hwe_span_stats(run):
    spans = run.spans
    s = hwe_span_stats(run, examples=4)
    assert s["n_spans"] == spans.height > 0
    assert s["mean_length"] == pytest.approx((spans["end"] - spans["start"]).mean())
    top = [e["mean_window_entropy"] for e in s["examples"]]
    assert len(top) == 4 and top == sorted(top, reverse=True)
    assert top[0] == pytest.approx(spans["mean_window_entropy"].max())
    assert all(isinstance(e["text"], str) and len(e["text"]) == e["end"] - e["start"] for e in s["examples"])
    assert s["spans_per_response"] == pytest.approx(spans.height / run.samples.height)
    assert 0 <= s["hwe_token_frac_end"] <= 1


def test_entropy_distribution_from_histograms(run):
    d = entropy_distribution(run, segments=4)
    assert len(d["segments"]) == 4 and len(d["edges"]) == len(d["segments"][0]["shares"]) + 1
    steps = run.steps
    for seg in d["segments"]:
        assert sum(seg["shares"]) == pytest.approx(1.0) and sum(seg["coarse"].values()) == pytest.approx(1.0)
        part = steps.filter(pl.col("step").is_between(seg["first_step"], seg["last_step"]))
        assert seg["n_tokens"] == part["n_tokens"].sum()
        assert seg["coarse"]["≥ 0.672"] == pytest.approx(part["high_entropy_frac"].mean(), abs=1e-9)
        assert seg["entropy_p50"] == pytest.approx(part["entropy_p50"].mean())
    first, last = d["segments"][0]["coarse"]["≥ 0.672"], d["segments"][-1]["coarse"]["≥ 0.672"]
    assert last < first  # the high-entropy share shrinks as entropy falls


def test_token_analyses_on_a_run_without_token_rows(tmp_path):
    run = make_run(tmp_path / "r", steps=12, token_sample=0)
    board = forking_leaderboard(run)
    assert board.is_empty() and board.columns[:3] == ["token", "token_id", "count"]
    s = hwe_span_stats(run)
    assert s["n_spans"] == 0 and "hwe_token_frac_start" in s
    assert len(entropy_distribution(run)["segments"]) == 5  # histograms cover every token anyway


def test_a_space_token_is_shown_not_blank():
    from entrodiag.analysis.tokens import shown_token

    assert [shown_token(t) for t in (" ", "   ", " the", "a ", "", "\n")] == ["␣", "␣␣␣", " the", "a ", "", "\n"]


# ------------------------------------------------------------- the streamed pass over token rows
NATS, LOGPROBS, OTHER = ("entropy", "window_entropy"), ("logprob",), ("advantage", "cov", "s_star")


def _copy(run, dest, *, parts: int = 1, change=None):
    """A copy of ``run`` with its token rows split over ``parts`` part files (in order), each
    column ``change(table)`` returns rewritten."""
    import shutil

    import pyarrow.parquet as pq

    shutil.copytree(run.path, dest)
    old = sorted((dest / "tokens").glob("part-*.parquet"))
    table = pq.read_table(old)
    for p in old:
        p.unlink()
    if change is not None:
        table = change(table)
    cut = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for i in range(parts):
        pq.write_table(table.slice(cut[i], cut[i + 1] - cut[i]), dest / "tokens" / f"part-r00000-{i:06d}.parquet",
                       compression="zstd")
    return dest


def _naive(run_dir):
    """Per-token counts, forking counts, entropy sums, first texts and impossible values, from
    the part files read with pyarrow and numpy (an independent reference)."""
    import pyarrow.parquet as pq

    t = pq.read_table(sorted((run_dir / "tokens").glob("part-*.parquet")))
    col = {c: t[c].to_numpy(zero_copy_only=False) for c in (*NATS, *LOGPROBS, *OTHER)}
    ids, fork, text = t["token_id"].to_numpy(), t["is_forking"].to_numpy(zero_copy_only=False), t["token"].to_pylist()
    h = col["entropy"].astype(np.float64)
    ok = np.isfinite(h) & (h >= -1e-5)
    per = {}
    for i in np.unique(ids[ok]):
        sel = ok & (ids == i)
        per[int(i)] = (int(sel.sum()), int(fork[sel].sum()), float(h[sel].mean()), text[int(np.argmax(sel))])
    bad = {}
    for name, v in col.items():
        v = v.astype(np.float64)
        fin = np.isfinite(v)
        why = {"non-finite": int((~fin).sum())}
        if name in NATS:
            why["negative"] = int((fin & (v < -1e-5)).sum())
        if name in LOGPROBS:
            why["positive"] = int((fin & (v > 1e-5)).sum())
        if any(why.values()):
            bad[name] = {k: n for k, n in why.items() if n}
    return t.num_rows, per, bad


def test_the_streamed_token_pass_equals_a_naive_read(run, tmp_path):
    from entrodiag.analysis.tokens import read_token_rows, token_texts
    from entrodiag.store import load_run

    split = load_run(_copy(run, tmp_path / "split", parts=7))
    got = read_token_rows(split, bad_values=True)
    rows, per, bad = _naive(split.path)
    assert got.rows == rows and got.bad_values == bad == {}
    assert sorted(got.per_token["token_id"].to_list()) == sorted(per)
    for i, count, forking, mean in got.per_token.iter_rows():
        assert (count, forking) == per[i][:2] and mean == pytest.approx(per[i][2], rel=1e-5)
    # texts are read part by part (1, then 4, ...) until every id is found: all 7 parts here
    assert token_texts(split, list(per)) == {i: p[3] for i, p in per.items()}
    assert forking_leaderboard(split, top=6).equals(forking_leaderboard(run, top=6))


@pytest.mark.parametrize("kind", ["nan only", "every rule"])
def test_impossible_token_values_are_counted_in_the_same_pass(run, tmp_path, kind):
    """NaN alone is counted from the screen (each column's range and NaN count); a value out of
    range makes a second, exact pass. Both equal a naive count, and the reader's own."""
    import pyarrow as pa

    from entrodiag.analysis.tokens import read_token_rows
    from entrodiag.store import load_run

    def change(t: pa.Table) -> pa.Table:
        put = {"entropy": {3: np.nan, 50: np.nan}, "cov": {7: np.nan}} if kind == "nan only" else {
            "entropy": {3: np.nan, 9: -1.0, 10: -1e-6}, "logprob": {4: 0.5}, "cov": {5: np.inf},
            "window_entropy": {6: -np.inf}, "advantage": {8: np.nan}}
        for name, at in put.items():
            v = t[name].to_numpy(zero_copy_only=False).copy()
            for i, x in at.items():
                v[i] = x
            t = t.set_column(t.schema.get_field_index(name), name, pa.array(v, t[name].type))
        return t

    bad_run = load_run(_copy(run, tmp_path / "bad", parts=2, change=change))
    got = read_token_rows(bad_run, bad_values=True)
    rows, per, bad = _naive(bad_run.path)
    assert got.bad_values == bad == bad_run.bad_values(("tokens",))["tokens"]
    assert bad["entropy"]["non-finite"] == (2 if kind == "nan only" else 1)
    assert int(got.per_token["count"].sum()) == sum(p[0] for p in per.values()) == rows - sum(
        bad["entropy"].values())


def test_the_screen_counts_shares_and_counts_exactly(run, tmp_path):
    """The screen on the step rows (shares, integer counts, NaN) equals the reader's own count."""
    import pyarrow.parquet as pq

    from entrodiag.store import load_run
    from entrodiag.store.stream import bad_value_screen, read_bad_values, stream_pass

    dest = _copy(run, tmp_path / "steps")
    for put, want in (({"reward_mean": np.nan}, {"reward_mean": {"non-finite": 1}}),
                      ({"high_entropy_frac": 1.5, "n_tokens": -3},
                       {"high_entropy_frac": {"outside [0, 1]": 1}, "n_tokens": {"negative": 1}})):
        part = sorted((dest / "steps").glob("part-*.parquet"))[0]
        df = pl.read_parquet(part)
        df.with_columns(**{k: pl.when(pl.int_range(pl.len()) == 2).then(v).otherwise(pl.col(k)).cast(df[k].dtype)
                           for k, v in put.items()}).write_parquet(part)
        r = load_run(dest)
        screen = stream_pass(r, "steps", lambda rows: [bad_value_screen(rows, rows.collect_schema())])[0]
        got = read_bad_values(r, "steps", screen)
        assert got == r.bad_values(("steps",))["steps"] and all(got[k] == v for k, v in want.items())


def test_a_corrupt_token_part_is_skipped_named_once_and_the_pass_reads_the_rest(run, tmp_path):
    import pyarrow.parquet as pq
    from run_damage import corrupt_page

    from entrodiag.analysis.tokens import read_token_rows
    from entrodiag.store import load_run
    from entrodiag.store.reader import SKIP_WARNING

    dest = _copy(run, tmp_path / "damaged", parts=3)
    parts = sorted((dest / "tokens").glob("part-*.parquet"))
    assert corrupt_page(parts[1], "entropy") == "entropy"  # a good footer, a page that does not decode
    damaged = load_run(dest)
    with pytest.warns(UserWarning) as caught:
        got = read_token_rows(damaged, bad_values=True)
    assert sum(SKIP_WARNING in str(w.message) and parts[1].name in str(w.message) for w in caught) == 1
    assert damaged.skipped_parts == [parts[1]]
    healthy = pq.read_table([parts[0], parts[2]])
    h = healthy["entropy"].to_numpy(zero_copy_only=False)
    assert got.rows == healthy.num_rows and got.bad_values == {}
    assert int(got.per_token["count"].sum()) == int((np.isfinite(h) & (h >= 0)).sum())


def test_a_part_whose_token_texts_only_are_damaged_is_left_out_of_every_count(run, tmp_path):
    """A corrupt ``token`` column is found by the texts only (the streamed pass does not read it):
    the analysis reads the rows again without that part, so the row count, the leaderboard and the
    impossible values leave out the part it lists as skipped."""
    import pyarrow as pa
    from run_damage import corrupt_page

    from entrodiag.analysis import analyze_run

    def nan_in_first_part(t: pa.Table) -> pa.Table:
        v = t["entropy"].to_numpy(zero_copy_only=False).copy()
        v[3] = np.nan
        return t.set_column(t.schema.get_field_index("entropy"), "entropy", pa.array(v, t["entropy"].type))

    dest = _copy(run, tmp_path / "texts", parts=3, change=nan_in_first_part)
    parts = sorted((dest / "tokens").glob("part-*.parquet"))
    assert corrupt_page(parts[0], "token") == "token"
    (dest / "rest").mkdir()
    for p in parts[1:]:
        (dest / "rest" / "tokens").mkdir(exist_ok=True)
        (dest / "rest" / "tokens" / p.name).write_bytes(p.read_bytes())
    rows, per, bad = _naive(dest / "rest")
    s = analyze_run(dest, top_tokens=6)
    assert [p["path"] for p in s["run"]["skipped_parts"]] == [f"tokens/{parts[0].name}"]
    assert s["run"]["rows"]["tokens"] == rows and "tokens" not in s["run"]["bad_values"] and bad == {}
    board = s["forking_tokens"]["rows"]
    naive = sorted((i for i, p in per.items() if p[0] >= 5 and p[1] > 0),
                   key=lambda i: (-per[i][1], -per[i][2], i))
    assert [r["token_id"] for r in board] == naive[:6]
    assert [(r["count"], r["forking"]) for r in board] == [per[r["token_id"]][:2] for r in board]
    assert [r["token"] for r in board] == [per[r["token_id"]][3] for r in board]


def test_a_bad_metric_is_refused_before_the_token_pass_starts(run, monkeypatch):
    """The worker that reads the token rows starts once the metric is known to exist: a bad
    ``metric=`` raises at once and leaves no thread reading every token row behind it."""
    import threading

    from entrodiag.analysis import AnalysisError, analyze_run, summary

    entered, release, real = threading.Event(), threading.Event(), summary.read_token_rows

    def slow_pass(*args, **kwargs):
        entered.set()
        release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(summary, "read_token_rows", slow_pass)
    before = set(threading.enumerate())
    try:
        with pytest.raises(AnalysisError, match="val/does_not_exist"):
            analyze_run(run, metric="val/does_not_exist")
        assert not entered.is_set() and set(threading.enumerate()) <= before
    finally:
        release.set()


def test_the_token_pass_warnings_come_after_the_main_threads(run, tmp_path, monkeypatch):
    """The parts the worker skips are warned about once it is over (its run is a quiet copy), after
    whatever the step analyses warned meanwhile, however the two threads are timed; once each."""
    import threading
    import warnings as w
    from run_damage import corrupt_page

    from entrodiag.analysis import analyze_run, summary
    from entrodiag.store.reader import SKIP_WARNING

    dest = _copy(run, tmp_path / "order", parts=2)
    corrupt_page(sorted((dest / "tokens").glob("part-*.parquet"))[1], "entropy")
    done, real_pass, real_check = threading.Event(), summary.read_token_rows, summary.mechanism_check

    def token_pass(*args, **kwargs):
        try:
            return real_pass(*args, **kwargs)
        finally:
            done.set()

    def mechanism_check(r):  # a step analysis that warns after the worker is over
        done.wait(5)
        w.warn("a warning of the step analyses")
        return real_check(r)

    monkeypatch.setattr(summary, "read_token_rows", token_pass)
    monkeypatch.setattr(summary, "mechanism_check", mechanism_check)
    said = analyze_run(dest)["warnings"]
    skips = [i for i, m in enumerate(said) if SKIP_WARNING in m]
    assert len(skips) == 1 and skips[0] > said.index("a warning of the step analyses"), said
