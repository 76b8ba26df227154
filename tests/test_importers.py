"""``entrodiag import``: metrics logged by TRL, verl, OpenRLHF (TensorBoard) and W&B become runs.

One synthetic training history (40 steps, an evaluation every 4) is written in each format with
each framework's own metric names: entropy H_t = 0.1 + 1.4·exp(−t/12) and evaluation
R_t = b − a·exp(H_t) (+ small noise), so the law fit on the imported runs is well posed.
"""

from __future__ import annotations

import csv
import json
import math
import random

import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.importers import ImportFailure, detect_format, import_run
from entrodiag.importers.tfevents import read_scalars

STEPS = list(range(1, 41))
EVAL_STEPS = [s for s in STEPS if s % 4 == 0]
A, B = 0.3, 1.2


def entropy(s: int) -> float:
    return 0.1 + 1.4 * math.exp(-s / 12)


def reward(s: int) -> float:
    return 0.2 + 0.7 * (1 - math.exp(-s / 10))


_rng = random.Random(0)
EVALS = {s: B - A * math.exp(entropy(s)) + _rng.gauss(0, 0.005) for s in EVAL_STEPS}


# ------------------------------------------------------------------------------ the four sources


def write_trainer_state(path):
    """``trainer_state.json`` through transformers' own TrainerState, with TRL's GRPO log keys."""
    from transformers import TrainerState

    history = []
    for s in STEPS:
        history.append({
            "clip_ratio/high_max": 0.0, "clip_ratio/high_mean": 0.01, "clip_ratio/low_mean": 0.02,
            "clip_ratio/low_min": 0.0, "clip_ratio/region_mean": 0.03,
            "completions/clipped_ratio": 0.1, "completions/mean_length": 100.0 - s,
            "completions/max_length": 200.0, "entropy": entropy(s), "epoch": s / 40,
            "frac_reward_zero_std": 0.25,
            "grad_norm": 0.5, "kl": 0.001 * s, "learning_rate": 1e-6, "loss": 0.01, "num_tokens": 1000.0 * s,
            "reward": reward(s), "reward_std": 0.3, "rewards/accuracy_reward/mean": reward(s),
            "rewards/accuracy_reward/std": 0.3, "step": s, "step_time": 1.5,
        })
        if s in EVALS:
            history.append({"epoch": s / 40, "eval_reward": EVALS[s], "eval_entropy": 0.5, "eval_loss": 0.0,
                            "eval_runtime": 2.0, "eval_samples_per_second": 10.0,
                            "eval_steps_per_second": 1.0,
                            "step": s})
    history.append({"epoch": 1.0, "step": 40, "total_flos": 0.0, "train_loss": 0.01, "train_runtime": 60.0,
                    "train_samples_per_second": 5.0, "train_steps_per_second": 0.7})
    state = TrainerState(global_step=40, max_steps=40, logging_steps=1, eval_steps=4, log_history=history,
                         train_batch_size=64, num_train_epochs=1)
    state.save_to_json(str(path))
    return path


def write_verl(path):
    """verl's file logger: one ``{"step": N, "data": {...}}`` per line."""
    with open(path, "w") as f:
        for s in STEPS:
            data = {
                "actor/entropy": entropy(s), "actor/pg_loss": -0.01, "actor/pg_clipfrac": 0.002,
                "actor/pg_clipfrac_lower": 0.0, "actor/ppo_kl": 1e-4, "actor/grad_norm": 0.3,
                "actor/lr": 1e-6, "critic/score/mean": reward(s), "critic/rewards/mean": reward(s),
                "critic/advantages/mean": 0.0,
                "response_length/mean": 500.0 - s, "response_length/clip_ratio": 0.01,
                "training/global_step": s, "training/epoch": 0, "timing_s/gen": 12.5, "perf/mfu/actor": 0.3,
            }
            if s in EVALS:
                data["val-core/arith/acc/mean@1"] = EVALS[s]
                data["val-aux/arith/reward/mean@1"] = EVALS[s]
            f.write(json.dumps({"step": s, "data": data}) + "\n")
    return path


def write_tensorboard(folder):
    """OpenRLHF's names through torch's SummaryWriter (``train/<name>``, ``eval/<name>``)."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(folder))
    for s in STEPS:
        for tag, v in {"entropy_loss": entropy(s), "reward": reward(s), "response_length": 300.0 - s,
                       "policy_loss": 0.02, "actor_lr": 5e-7, "ppo_clip_ratio": 0.001, "kl": 0.0,
                       "group_reward_std": 0.2}.items():
            w.add_scalar(f"train/{tag}", v, s)
        if s in EVALS:
            w.add_scalar("eval/eval_arith_pass1", EVALS[s], s)
            w.add_scalar("eval/eval_num_samples", 64.0, s)
    w.add_scalar("train/new_style", 7.0, 40, new_style=True)  # a tensor summary, as TF2 writes them
    w.close()
    return folder


def write_csv(path):
    """A W&B history export of a TRL run: W&B's own ``_step``/``_runtime``/``_timestamp`` columns,
    HF's ``train/`` and ``eval/`` prefixes, blanks where a row has no value, a text column."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["_step", "_runtime", "_timestamp", "train/global_step", "train/entropy", "train/reward",
                    "train/loss", "eval/reward", "train/my_metric", "notes"])
        i = 0
        for s in STEPS:
            w.writerow([i, 10.0 * s, 1.7e9 + 10 * s, s, entropy(s), reward(s), 0.01, "", 42.0, "ok"])
            i += 1
            if s in EVALS:  # W&B logs the evaluation as its own row, same global step
                w.writerow([i, 10.0 * s + 1, 1.7e9 + 10 * s + 1, s, "", "", "", EVALS[s], "", ""])
                i += 1
    return path


SOURCES = {
    "trainer_state": (lambda d: write_trainer_state(d / "trainer_state.json"), "val/reward",
                      {"step_time"}),  # TRL's rewards/<fn>/mean, clip_ratio/* are kept as named, recognised
    "verl": (lambda d: write_verl(d / "metrics.jsonl"), "val/arith/acc/mean@1",
             {"timing_s/gen", "perf/mfu/actor"}),
    "tensorboard": (lambda d: write_tensorboard(d / "tb"), "val/arith_pass1",
                    {"train/group_reward_std", "train/new_style"}),
    "csv": (lambda d: write_csv(d / "history.csv"), "val/reward", {"_runtime", "train/my_metric"}),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Each history written in its format: {format: path}."""
    root = tmp_path_factory.mktemp("sources")
    out = {}
    for fmt, (write, _, _) in SOURCES.items():
        (root / fmt).mkdir()
        out[fmt] = write(root / fmt)
        assert detect_format(out[fmt])[0] == fmt
    return out


@pytest.fixture(scope="module")
def imported(sources, tmp_path_factory):
    """Each source imported through the Python API: {format: run dir}."""
    root = tmp_path_factory.mktemp("imported")
    out = {}
    for fmt, src in sources.items():
        report = import_run(src, root / fmt)
        assert report.format == fmt and report.steps == len(STEPS) and report.evals >= len(EVAL_STEPS)
        out[fmt] = root / fmt
    return out


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("fmt", list(SOURCES))
def test_import_each_format(fmt, sources, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = _cli(capsys, "import", str(sources[fmt]), "--out", str(run_dir))
    assert code == 0, err
    eval_name, unrecognised = SOURCES[fmt][1], SOURCES[fmt][2]
    assert f"imported {len(STEPS)} steps and {len(EVAL_STEPS)} evaluation steps" in out
    for name in unrecognised:  # reported, not dropped
        assert name in out.split("unrecognised columns")[1].splitlines()[0]
    run = load_run(run_dir)
    assert run.status == "finished"
    assert run.meta["source"] == f"import:{fmt}"
    assert run.meta["imported"]["format"] == fmt
    assert set(run.meta["imported"]["unrecognised"]) == unrecognised
    steps = run.steps
    assert steps["step"].to_list() == STEPS
    for s, h, r in zip(STEPS, steps["entropy_mean"], steps["reward_mean"]):
        assert h == pytest.approx(entropy(s), rel=1e-6)  # TensorBoard stores float32
        assert r == pytest.approx(reward(s), rel=1e-6)
    for name in unrecognised:  # kept as step columns under their own names
        assert name in steps.columns and steps[name].null_count() < steps.height
    evals = run.evals.filter(run.evals["name"] == eval_name)
    assert evals["step"].to_list() == EVAL_STEPS
    assert evals["value"].to_list() == pytest.approx([EVALS[s] for s in EVAL_STEPS], rel=1e-6)
    assert steps["resp_len_mean"].null_count() == (steps.height if fmt == "csv" else 0)


def test_mapped_columns_per_framework(imported):
    """The names each framework uses land in the same entrodiag columns."""
    ts, verl, tb = (load_run(imported[f]) for f in ("trainer_state", "verl", "tensorboard"))
    assert ts.steps["zero_adv_group_frac"].to_list() == [0.25] * len(STEPS)  # frac_reward_zero_std
    assert ts.steps["clip_high_frac"][0] == 0.01 and ts.steps["clip_low_frac"][0] == 0.02
    assert ts.steps["lr"][0] == 1e-6 and ts.steps["kl"][-1] == pytest.approx(0.04)
    assert "eval_entropy" in ts.steps.columns  # an evaluation-time diagnostic, not an R
    assert set(ts.evals["name"].unique()) == {"val/reward", "val/loss"}
    assert ts.meta["imported"]["summary"]["train_runtime"] == 60.0  # the end summary is not a step
    assert ts.meta["config"]["max_steps"] == 40
    assert verl.steps["clip_frac"][0] == 0.002 and verl.steps["score_mean"][3] == pytest.approx(reward(4))
    assert verl.steps["loss"][0] == -0.01 and verl.steps["grad_norm"][0] == 0.3
    assert set(verl.evals["name"].unique()) == {"val/arith/acc/mean@1", "val/aux/arith/reward/mean@1"}
    assert tb.steps["loss"][0] == pytest.approx(0.02) and tb.steps["lr"][0] == pytest.approx(5e-7)
    assert tb.steps["wall_time"].null_count() == 0
    assert set(tb.evals["name"].unique()) == {"val/arith_pass1"}  # eval_num_samples is bookkeeping


def test_csv_skips_text_and_other_step_counters(imported):
    run = load_run(imported["csv"])
    assert set(run.meta["imported"]["skipped"]) == {"_step", "notes"}
    assert run.meta["imported"]["step_column"] == "train/global_step"
    assert run.steps["wall_time"][0] == pytest.approx(1.7e9 + 10)  # W&B's _timestamp


def test_tensorboard_reader_reads_both_scalar_encodings(sources):
    files = sorted(sources["tensorboard"].glob("*tfevents*"))
    events = read_scalars(files[0])
    tags = {e.tag for e in events}
    assert "train/entropy_loss" in tags and "train/new_style" in tags
    new = [e for e in events if e.tag == "train/new_style"]
    assert len(new) == 1 and new[0].value == 7.0 and new[0].step == 40


def test_map_option(tmp_path, capsys):
    src = tmp_path / "mine.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["it", "ent", "acc", "noise"])
        for s in STEPS:
            w.writerow([s, entropy(s), EVALS.get(s, ""), 1.0])
    code, _, err = _cli(capsys, "import", str(src), "--out", str(tmp_path / "r"), "--map", "it=step",
                        "--map", "ent=entropy_mean", "--map", "acc=val/accuracy", "--map", "noise=skip")
    assert code == 0, err
    run = load_run(tmp_path / "r")
    assert run.steps["entropy_mean"].to_list() == pytest.approx([entropy(s) for s in STEPS])
    assert run.evals["name"].unique().to_list() == ["val/accuracy"]
    assert "noise" not in run.steps.columns and run.meta["imported"]["unrecognised"] == []


def _file(name: str, content: str | bytes):
    """A case's source: a file ``name`` holding ``content``."""

    def write(tmp_path):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path
    return write


def _imported_csv(tmp_path):
    """A case's source: a CSV already imported into the run the case then imports into again."""
    src = write_csv(tmp_path / "h.csv")
    assert import_run(src, tmp_path / "run").steps == len(STEPS)
    return src


#: case -> (writes the source into tmp_path and returns it, extra arguments, what the one-line error says)
BAD_IMPORTS = {
    "missing": (lambda tmp_path: tmp_path / "nope.json", [], "no such file"),
    "unknown": (_file("log.txt", "hello world\n"), [], "--format"),
    "empty_state": (_file("trainer_state.json", json.dumps({"log_history": [], "global_step": 0})), [], "empty"),
    "empty_csv": (_file("h.csv", "step,train/entropy\n"), [], "empty"),
    "no_step": (_file("h.csv", "entropy,reward\n0.5,0.1\n0.4,0.2\n"), [], "--map COLUMN=step"),
    "bad_map": (lambda tmp_path: write_csv(tmp_path / "h.csv"), ["--map", "entropy"], "COLUMN=FIELD"),
    "unknown_map_column": (lambda tmp_path: write_csv(tmp_path / "h.csv"), ["--map", "nothere=entropy_mean"],
                           "no column 'nothere'"),
    "corrupt_tfevents": (_file("events.out.tfevents.123.host", b"\x05" * 64), [], "corrupt"),
    "exists": (_imported_csv, [], "already holds a run"),
    "bad_json": (_file("trainer_state.json", "{not json"), [], "not readable JSON"),
}


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
def test_clear_errors(case, tmp_path, capsys):
    out = tmp_path / "run"
    write, args, expect = BAD_IMPORTS[case]
    src = write(tmp_path)
    code, _, err = _cli(capsys, "import", str(src), "--out", str(out), *args)
    assert code == 2
    assert expect in err, err
    assert "Traceback" not in err
    if case != "exists":
        assert not (out / "run.json").exists()


def test_python_api_raises(tmp_path):
    with pytest.raises(ImportFailure, match="unknown format"):
        import_run(write_csv(tmp_path / "h.csv"), tmp_path / "r", format="parquet")


def test_analysis_runs_on_imported_runs(imported):
    """The law fit and the collapse flags work on runs trained elsewhere (when entrodiag.analysis exists)."""
    analysis = pytest.importorskip("entrodiag.analysis")
    fits = {}
    for fmt, run_dir in imported.items():
        run = load_run(run_dir)
        fit = analysis.fit_entropy_law(run, metric=SOURCES[fmt][1])
        assert fit.n == len(EVAL_STEPS), fmt
        assert fit.a > 0 and fit.r2 > 0.95, (fmt, fit)
        fits[fmt] = (fit.a, fit.b)
        flags = analysis.detect_collapse(run)
        assert isinstance(flags, list), fmt
    # the same history gives the same law whichever tool logged it (TensorBoard: float32)
    ref = fits["trainer_state"]
    for fmt, (a, b) in fits.items():
        assert a == pytest.approx(ref[0], rel=1e-4) and b == pytest.approx(ref[1], rel=1e-4), fmt


def test_trl_output_folder_reads_the_newest_checkpoint(tmp_path):
    for n, steps in ((10, STEPS[:10]), (40, STEPS)):
        (tmp_path / f"checkpoint-{n}").mkdir()
        with open(tmp_path / f"checkpoint-{n}" / "trainer_state.json", "w") as f:
            json.dump({"log_history": [{"step": s, "entropy": entropy(s)} for s in steps]}, f)
    report = import_run(tmp_path, tmp_path / "run")
    assert report.format == "trainer_state" and report.source.parent.name == "checkpoint-40"
    assert report.steps == len(STEPS)


def test_plain_jsonl_is_flattened(tmp_path):
    src = tmp_path / "history.jsonl"
    with open(src, "w") as f:
        for s in STEPS:
            f.write(json.dumps({"global_step": s, "train": {"entropy": entropy(s), "reward": reward(s)}}) + "\n")
        f.write('{"global_step": 41, "train": {"entr')  # a last line cut short by a running writer
    report = import_run(src, tmp_path / "run")
    assert report.format == "jsonl" and report.step_column == "global_step"
    steps = load_run(tmp_path / "run").steps
    assert steps["entropy_mean"].to_list() == pytest.approx([entropy(s) for s in STEPS])


def test_tensorboard_folder_with_several_runs_is_refused(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for name in ("a", "b"):
        with SummaryWriter(str(tmp_path / "logs" / name)) as w:
            w.add_scalar("train/entropy", 1.0, 1)
    with pytest.raises(ImportFailure, match="2 runs"):
        import_run(tmp_path / "logs", tmp_path / "run")
    assert import_run(tmp_path / "logs" / "a", tmp_path / "run").steps == 1
