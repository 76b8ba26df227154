"""Recorder -> run directory -> load_run round trips, and the Recorder's behaviour on bad input."""

import logging
import math

import numpy as np
import polars as pl
import pytest
import torch
from conftest import batch_kwargs, known_entropy_batch

from entrodiag import Recorder, load_run
from entrodiag.metrics import DEFAULT_HIST_EDGES


def record_known_run(path, steps=20, **kw):
    batches = {}
    with Recorder(path, token_sample="all", flush_interval_s=0.5, **kw) as rec:
        for step in range(steps):
            b = known_entropy_batch(step)
            batches[step] = b
            rec.record_batch(step, **{k: v for k, v in b.items() if k != "k"}, loss=0.1 * step)
    return batches


def recompute_from_rows(tokens: pl.DataFrame, samples: pl.DataFrame, window: int = 4) -> dict:
    """Step aggregates recomputed from token and sample rows with numpy only."""
    h = tokens["entropy"].to_numpy().astype(np.float64)
    lp = tokens["logprob"].to_numpy().astype(np.float64)
    a = tokens["advantage"].to_numpy().astype(np.float64)
    n = len(h)
    out = {
        "n_tokens": n,
        "entropy_mean": h.mean(),
        "entropy_std": h.std(),
        "entropy_p50": np.quantile(h, 0.5),
        "entropy_p80": np.quantile(h, 0.8),
        "entropy_p90": np.quantile(h, 0.9),
        "entropy_p99": np.quantile(h, 0.99),
        "high_entropy_frac": (h > 0.672).mean(),
        "logprob_mean": lp.mean(),
        "advantage_mean": a.mean(),
        "cov_mean": ((lp - lp.mean()) * (a - a.mean())).mean(),
        "entropy_pressure": (-a * np.exp(lp) * (h + lp)).mean(),
        "entropy_seq_mean": samples.filter(pl.col("length") > 0)["entropy_mean"].mean(),
        "resp_len_mean": samples["length"].mean(),
        "reward_mean": samples["reward"].mean(),
        "reward_std": samples["reward"].to_numpy().std(),
        "n_responses": samples.height,
    }
    out["cov_pos_frac"] = (((lp - lp.mean()) * (a - a.mean())) > 0).mean()
    groups = samples.group_by("group_id").agg(pl.col("reward").n_unique().alias("u"))
    out["zero_adv_group_frac"] = (groups["u"] == 1).mean()
    edges = np.array([e if math.isfinite(e) else 1e9 for e in DEFAULT_HIST_EDGES])
    out["entropy_hist"] = np.histogram(h, bins=edges)[0].tolist()
    # window entropy and HWE (threshold: 95th percentile of the step's window entropies)
    win = []
    for (_,), g in tokens.sort("sample_id", "pos").group_by("sample_id", maintain_order=True):
        hh = g["entropy"].to_numpy().astype(np.float64)
        win += [hh[t : t + window].mean() for t in range(len(hh))]
    win = np.array(win)
    out["hwe_threshold"] = np.quantile(win, 0.95)
    out["hwe_token_frac"] = (win > out["hwe_threshold"]).mean()
    return out


def test_round_trip_aggregates_equal_token_rows_and_reference(tmp_path, tokenizer):
    batches = record_known_run(tmp_path / "run", tokenizer=tokenizer)
    run = load_run(tmp_path / "run")
    assert run.status == "finished"
    steps, tokens, samples = run.steps, run.tokens, run.samples
    assert steps["step"].to_list() == list(range(20))
    assert steps["loss"].to_list() == pytest.approx([0.1 * s for s in range(20)])
    for step, b in batches.items():
        row = steps.filter(pl.col("step") == step).row(0, named=True)
        tok = tokens.filter(pl.col("step") == step)
        smp = samples.filter(pl.col("step") == step)
        # 1. against the reference: the entropy of token (b, t) is log k by construction
        mask = b["response_mask"]
        ref_h = torch.log(b["k"].double())[mask]
        assert row["n_tokens"] == int(mask.sum())
        assert row["entropy_mean"] == pytest.approx(ref_h.mean().item(), abs=1e-5)
        assert row["logprob_mean"] == pytest.approx(-ref_h.mean().item(), abs=1e-5)
        assert tok.sort("sample_id", "pos")["entropy"].to_numpy() == pytest.approx(
            ref_h.numpy(), abs=1e-5
        )
        # 2. against a recomputation from the stored token and sample rows
        expect = recompute_from_rows(tok, smp)
        for key, value in expect.items():
            if isinstance(value, list):
                assert row[key] == value, key
            else:
                assert row[key] == pytest.approx(value, abs=1e-5), key
        # forking tokens: at or above the step's 80th percentile
        h = tok["entropy"].to_numpy()
        assert tok["is_forking"].to_list() == (h >= row["entropy_p80"] - 1e-7).tolist()
    # token text decoded with the tokenizer, responses decoded too
    first = tokens.filter((pl.col("step") == 0) & (pl.col("sample_id") == 0)).sort("pos")
    assert "".join(first["token"].to_list()) == samples.filter(
        (pl.col("step") == 0) & (pl.col("sample_id") == 0)
    )["response"][0]
    meta = run.meta
    assert meta["schema"] == "entrodiag/1" and meta["source"] == "custom"
    assert meta["entropy_hist_edges"][-1] is None and len(meta["entropy_hist_edges"]) == len(DEFAULT_HIST_EDGES)


def test_precomputed_entropy_without_logprobs(tmp_path):
    b = known_entropy_batch(0)
    h = torch.log(b["k"].float())
    with Recorder(tmp_path / "r", token_sample=2) as rec:
        rec.record_batch(0, token_ids=b["token_ids"], response_mask=b["response_mask"], entropy=h,
                         advantages=b["advantages"])
    row = load_run(tmp_path / "r").steps.row(0, named=True)
    assert row["entropy_mean"] == pytest.approx(h[b["response_mask"]].mean().item(), abs=1e-6)
    assert row["cov_mean"] is None and row["logprob_mean"] is None and row["entropy_pressure"] is None


def test_token_sample_count_fraction_and_reproducible_choice(tmp_path):
    b = batch_kwargs(0, B=10)
    for name, ts, expect in (("n", 3, 3), ("f", 0.25, 3), ("all", "all", 10), ("none", 0, 0)):
        with Recorder(tmp_path / name, token_sample=ts, seed=1) as rec:
            rec.record_batch(5, **b)
        samples = load_run(tmp_path / name).samples
        assert (samples.height if not samples.is_empty() else 0) == expect
    with Recorder(tmp_path / "n2", token_sample=3, seed=1) as rec:
        rec.record_batch(5, **b)
    assert load_run(tmp_path / "n").samples["sample_id"].to_list() == load_run(tmp_path / "n2").samples[
        "sample_id"
    ].to_list()


def test_all_false_mask_gives_zero_tokens_and_null_aggregates(tmp_path):
    b = batch_kwargs(0)
    b["response_mask"] = torch.zeros_like(b["response_mask"])
    with Recorder(tmp_path / "r") as rec:
        rec.record_batch(0, **b)
    row = load_run(tmp_path / "r").steps.row(0, named=True)
    assert row["n_tokens"] == 0
    for key in ("entropy_mean", "entropy_std", "entropy_p50", "entropy_p99", "cov_mean", "logprob_mean",
                "entropy_seq_mean", "high_entropy_frac", "entropy_pressure", "hwe_threshold"):
        assert row[key] is None, key
    assert row["entropy_hist"] == [0] * (len(DEFAULT_HIST_EDGES) - 1)


def test_nonfinite_logits_are_counted_not_averaged(tmp_path):
    b = batch_kwargs(0)
    logits = b["logits"].clone()
    logits[0, 0, 0] = math.nan
    logits[0, 1, :] = math.inf
    b["logits"] = logits
    with Recorder(tmp_path / "r", token_sample="all") as rec:
        rec.record_batch(0, **b)
    run = load_run(tmp_path / "r")
    row = run.steps.row(0, named=True)
    assert row["nonfinite_tokens"] == 2
    assert row["n_tokens"] == int(b["response_mask"].sum()) - 2
    assert math.isfinite(row["entropy_mean"]) and math.isfinite(row["cov_mean"])
    tok = run.tokens
    assert tok["entropy"].null_count() == 2
    assert row["entropy_mean"] == pytest.approx(tok["entropy"].drop_nulls().mean(), abs=1e-6)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(response_mask=torch.ones(6, 4, dtype=torch.bool)), r"response_mask must have shape \(6, 5\).*got \(6, 4\)"),
        (dict(logits=torch.zeros(6, 4, 16)), r"logits is \(6, 4, 16\), token_ids is \(6, 5\)"),
        (dict(advantages=torch.zeros(5)), r"advantages must be per response \(6,\) or per token \(6, 5\), got \(5,\)"),
        (dict(rewards=torch.zeros(3)), r"rewards must have shape \(6,\)"),
        (dict(token_ids=torch.zeros(6, 5)), "token_ids must be an integer tensor"),
        (dict(advantages=torch.zeros(6, dtype=torch.long)), "advantages must be a floating-point"),
        (dict(entropy=torch.zeros(6, 5)), "either logits"),
        (dict(texts=["a"]), "texts must hold one string per response"),
        (dict(loss=torch.zeros(3)), "scalar 'loss'"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(tmp_path, change, message):
    b = batch_kwargs(0)
    b.update(change)
    with Recorder(tmp_path / "r") as rec:
        with pytest.raises(ValueError, match=message):
            rec.record_batch(0, **b)


def test_background_failures_are_logged_and_counted_not_raised(tmp_path, caplog):
    class BrokenTokenizer:
        def decode(self, ids):
            raise RuntimeError("tokenizer exploded")

    b = batch_kwargs(0)
    with caplog.at_level(logging.ERROR, logger="entrodiag"):
        with Recorder(tmp_path / "r", tokenizer=BrokenTokenizer(), token_sample=2) as rec:
            for step in range(3):
                rec.record_batch(step, **b)
            rec.flush()
            assert rec.errors == 3
    assert "tokenizer exploded" in caplog.text
    run = load_run(tmp_path / "r")
    assert run.steps["step"].to_list() == [0, 1, 2]  # step rows survive the failed token rows
    assert run.meta["recorder_errors"] == 3


def test_unexpected_error_raises_on_first_call_only(tmp_path, monkeypatch, caplog):
    import entrodiag.hooks.recorder as recorder_mod

    b = batch_kwargs(0)
    with Recorder(tmp_path / "r") as rec:
        rec.record_batch(0, **b)
        monkeypatch.setattr(recorder_mod, "masked_quantiles", lambda *a, **k: 1 / 0)
        with caplog.at_level(logging.ERROR, logger="entrodiag"):
            rec.record_batch(1, **b)  # a later failure is logged and counted, not raised
        assert rec.errors == 1 and "step 1" in caplog.text
    with Recorder(tmp_path / "r2") as rec2:
        with pytest.raises(ZeroDivisionError):
            rec2.record_batch(0, **b)


def test_existing_run_needs_resume_and_resume_appends(tmp_path):
    b = batch_kwargs(0)
    with Recorder(tmp_path / "r") as rec:
        rec.record_batch(0, **b)
    with pytest.raises(FileExistsError, match="resume=True"):
        Recorder(tmp_path / "r")
    with Recorder(tmp_path / "r", resume=True) as rec:
        rec.record_batch(1, **b)
        rec.log_eval(1, "val/accuracy", 0.25, n=10)
    run = load_run(tmp_path / "r")
    assert run.steps["step"].to_list() == [0, 1]
    assert len(run.meta["resumed"]) == 1
    assert run.evals.row(0, named=True) == {"step": 1, "name": "val/accuracy", "value": 0.25, "n": 10}


def test_log_scalars_after_the_step_and_rerecorded_steps_coalesce(tmp_path):
    b = batch_kwargs(0)
    with Recorder(tmp_path / "r", flush_interval_s=0.05) as rec:
        rec.record_batch(0, **b, loss=1.0)
        rec.flush()  # the step row is on disk before the extra scalar arrives
        rec.log_scalars(0, kl=torch.tensor(0.5), lr=1e-4)
        rec.log_scalars(0, loss=2.0)
    row = load_run(tmp_path / "r").steps.row(0, named=True)
    assert (row["kl"], row["lr"], row["loss"]) == (0.5, 1e-4, 2.0)
    assert row["n_tokens"] == int(b["response_mask"].sum())


def test_padding_ids_outside_the_vocabulary_are_ignored_under_the_mask(tmp_path):
    b = batch_kwargs(0)
    padded = dict(b, token_ids=torch.where(b["response_mask"], b["token_ids"], -100))  # HF's ignore index
    with Recorder(tmp_path / "a", token_sample="all") as rec:
        rec.record_batch(0, **b)
    with Recorder(tmp_path / "b", token_sample="all") as rec:
        rec.record_batch(0, **padded)
    a, p = load_run(tmp_path / "a").steps, load_run(tmp_path / "b").steps
    assert a.drop("wall_time").rows() == p.drop("wall_time").rows()
