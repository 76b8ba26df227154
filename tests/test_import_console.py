"""No silent loss on import (issue 23, classes 1 and 2), on small logs made here in the formats of
the public ones (``tests/test_wild_logs.py`` runs the same checks on the public files):

1. **buffered console dicts**: TRL's stdout, block-buffered into a file, prints up to eight metric
   dicts after one progress counter (tqdm writes to stderr, unbuffered); each dict gets its own
   step, the logging interval read off the log;
2. **wrapped numbers**: ``np.float64(0.035)``, ``tensor(0.5, device='cuda:0')``, ``Decimal('0.1')``
   and numbers printed as quoted text are numbers, with ``--map`` too; a series that would still
   be lost to parsing stops the import with the reason.
"""

from __future__ import annotations

import json

import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.importers import ImportFailure, detect_format, import_run


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _entropy(s: int) -> float:
    return round(1.0 / (1 + s / 20), 6)


def _bar(i: int, total: int) -> str:
    return f"{100 * i // total:3d}%|##        | {i}/{total} [00:{i % 60:02d}<01:00,  3.50s/it]"


def trl_buffered_log(total: int = 200, every: int = 5, flush: int = 7, repeat: bool = True,
                     summary: bool = True) -> str:
    """What ``python train.py > log 2>&1`` leaves with TRL: tqdm's counters as they happen (the
    trainer's log redraws the bar, so the counter of a logging step is printed twice), the metric
    dicts only when the stdout buffer fills (every ``flush`` dicts) and at exit."""
    lines, pending = [_bar(0, total)], []
    for i in range(1, total + 1):
        lines.append(_bar(i, total))
        if i % every == 0:
            if repeat:
                lines.append(_bar(i, total))
            pending.append(str({"loss": 0.01, "entropy": _entropy(i), "reward": i / total,
                                "epoch": round(i / total / 4, 2)}))
            if len(pending) == flush:
                lines += pending
                pending = []
    tail = [str({"train_runtime": 700.0, "train_samples_per_second": 2.3,
                 "train_steps_per_second": round(total / 700.0, 3), "train_loss": 0.01, "epoch": 0.25})]
    return "\n".join(lines + pending + (tail if summary else [])) + "\n"


@pytest.mark.parametrize("case", ["repeated counter", "last counter", "train_runtime"])
def test_buffered_dicts_each_get_their_step(tmp_path, capsys, case):
    log = tmp_path / "train.log"
    if case == "repeated counter":
        log.write_text(trl_buffered_log())
    elif case == "last counter":  # no redraw: the bar's last counter over the number of dicts
        log.write_text(trl_buffered_log(repeat=False, summary=False))
    else:  # no bar (disable_tqdm): train_runtime x train_steps_per_second gives the steps
        log.write_text("\n".join(line for line in trl_buffered_log().splitlines() if "it]" not in line))
    code, out, err = _cli(capsys, "import", log, "--out", tmp_path / "run")
    assert code == 0, err
    steps = load_run(tmp_path / "run").steps.sort("step")
    assert steps["step"].to_list() == list(range(5, 201, 5))
    assert steps["entropy_mean"].to_list() == pytest.approx([_entropy(s) for s in range(5, 201, 5)])
    assert "logged twice" not in out and "logging interval 5 read from" in out


def test_one_dict_per_step_buffered_keeps_every_step(tmp_path):
    """Logging every step, printed eleven at a time: as many steps as dicts, not a tenth."""
    log = tmp_path / "train.log"
    log.write_text(trl_buffered_log(total=330, every=1, flush=11))
    report = import_run(log, tmp_path / "run")
    steps = load_run(tmp_path / "run").steps.sort("step")
    assert report.steps == 330 and steps["step"].to_list() == list(range(1, 331))
    assert steps["entropy_mean"].to_list() == pytest.approx([_entropy(s) for s in range(1, 331)])
    assert report.bad_values == {}


def test_unbuffered_dicts_and_an_evaluation_keep_the_counter(tmp_path):
    """One dict per counter (a terminal, or python -u): the counter is the step, and an evaluation
    dict printed after its training dict takes that dict's step."""
    lines = []
    for i in range(1, 31):
        lines.append(_bar(i, 30))
        if i % 10 == 0:
            lines.append(str({"loss": 0.1, "entropy": _entropy(i), "epoch": i / 30}))
            lines.append(str({"eval_reward": i / 100, "eval_runtime": 3.0, "epoch": i / 30}))
    log = tmp_path / "out.txt"
    log.write_text("\n".join(lines) + "\n")
    import_run(log, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.steps.sort("step")["step"].to_list() == [10, 20, 30]
    ev = run.evals.filter(run.evals["name"] == "val/reward").sort("step")
    assert ev["step"].to_list() == [10, 20, 30] and ev["value"].to_list() == pytest.approx([0.1, 0.2, 0.3])


# ------------------------------------------------------------------------------ wrapped numbers


def test_numpy_wrapped_verl_values_are_numbers_with_and_without_map(tmp_path, capsys):
    """Newer verl prints ``actor/pg_loss:np.float64(0.035)``: every key, validation included."""
    lines = []
    for s in range(1, 11):
        val = f" - val-core/gsm8k/acc/mean@1:np.float64({s / 20})" if s % 5 == 0 else ""
        lines.append(f"step:{s} - actor/entropy:np.float64({_entropy(s)}) - actor/pg_loss:np.float64(-0.035)"
                     f" - critic/score/mean:np.float64({s / 10}) - response_length/mean:np.int64(300){val}")
    log = tmp_path / "verl.log"
    log.write_text("\n".join(lines) + "\n")
    for args in ([], ["--map", "val-core/gsm8k/acc/mean@1=val/accuracy"]):
        out_dir = tmp_path / f"run{len(args)}"
        code, out, err = _cli(capsys, "import", log, "--out", out_dir, *args)
        assert code == 0, err
        assert "not numeric" not in out and "no evaluation columns" not in out
        run = load_run(out_dir)
        steps = run.steps.sort("step")
        assert steps["entropy_mean"].to_list() == pytest.approx([_entropy(s) for s in range(1, 11)])
        assert steps["loss"].to_list() == [-0.035] * 10 and steps["resp_len_mean"][0] == 300
        assert run.evals.sort("step")["value"].to_list() == pytest.approx([0.25, 0.5])
        assert run.evals["name"][0] == ("val/accuracy" if args else "val/gsm8k/acc/mean@1")


def test_torch_decimal_and_quoted_numbers_in_printed_dicts(tmp_path):
    lines = []
    for i in range(1, 4):
        lines.append(_bar(i, 3))
        lines.append("{'loss': tensor(0.5, device='cuda:0'), 'entropy': " + f"np.float32({_entropy(i)})"
                     + f", 'reward': Decimal('{i / 10}'), 'kl': '{i / 1000}', 'epoch': tensor({i / 3})" + "}")
    log = tmp_path / "out.txt"
    log.write_text("\n".join(lines) + "\n")
    assert detect_format(log)[0] == "console"
    report = import_run(log, tmp_path / "run")
    steps = load_run(tmp_path / "run").steps.sort("step")
    assert report.bad_values == {} and steps["step"].to_list() == [1, 2, 3]
    assert steps["entropy_mean"].to_list() == pytest.approx([_entropy(i) for i in (1, 2, 3)])
    assert steps["reward_mean"].to_list() == pytest.approx([0.1, 0.2, 0.3])
    assert steps["kl"].to_list() == pytest.approx([0.001, 0.002, 0.003]) and steps["loss"][0] == 0.5


def test_a_series_lost_to_parsing_stops_the_import(tmp_path, capsys):
    log = tmp_path / "verl.log"
    log.write_text("".join(f"step:{s} - actor/entropy:{_entropy(s)} - val-core/x/acc/mean@1:jnp.float32({s / 10})\n"
                           for s in range(1, 5)))
    code, _, err = _cli(capsys, "import", log, "--out", tmp_path / "run")
    assert code == 2 and "val/x/acc/mean@1" in err and "jnp.float32(0.1)" in err and "--map" in err
    assert not (tmp_path / "run").exists()
    # leaving it out, as the message says, imports the rest
    code, out, err = _cli(capsys, "import", log, "--out", tmp_path / "run", "--map", "val-core/x/acc/mean@1=skip")
    assert code == 0, err
    with pytest.raises(ImportFailure, match="entropy series"):
        log.write_text("".join(f"step:{s} - actor/entropy:mx.array({_entropy(s)})\n" for s in range(1, 5)))
        import_run(log, tmp_path / "other")


# ------------------------------------------------------------------------------ other containers


def test_a_notebook_imports_its_rl_cell(tmp_path):
    """A notebook that trains twice (SFT, then GRPO), with Colab's bar-less counters and numbers
    printed as quoted text: the GRPO cell is the run."""
    def cell(dicts: list[dict], total: int) -> dict:
        text = f"  0% 0/{total} [00:00<?, ?it/s]" + "".join(f"\n{d}" for d in dicts)
        text += f"\n100% {total}/{total} [10:00<00:00, 3.0s/it]\n"
        return {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}

    sft = [{"loss": "1.2", "entropy": "0.9", "epoch": "0.5"}, {"loss": "1.0", "entropy": "0.8", "epoch": "1"}]
    grpo = [{"loss": "0.01", "reward": f"{k / 10}", "entropy": f"{_entropy(5 * k)}", "epoch": f"{k / 4}"}
            for k in range(1, 5)]
    nb = {"cells": [cell(sft, 20), cell(grpo, 20)], "nbformat": 4}
    path = tmp_path / "train.ipynb"
    path.write_text(json.dumps(nb))
    report = import_run(path, tmp_path / "run")
    assert report.format == "notebook" and any("cell 1" in n for n in report.notes)
    steps = load_run(tmp_path / "run").steps.sort("step")
    assert steps["step"].to_list() == [5, 10, 15, 20]
    assert steps["entropy_mean"].to_list() == pytest.approx([_entropy(5 * k) for k in range(1, 5)])


def test_a_json_list_of_log_entries(tmp_path):
    entries = [{"loss": 0.1, "entropy": _entropy(s), "epoch": s / 20, "step": s} for s in range(5, 25, 5)]
    entries.append({"train_runtime": 60.0, "train_loss": 0.1, "epoch": 1.0, "step": 20})
    path = tmp_path / "step_logs.json"
    path.write_text(json.dumps(entries, indent=2))
    report = import_run(path, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert report.steps == 4 and "train_runtime" not in run.steps.columns
    assert run.meta["imported"]["summary"]["train_runtime"] == 60.0
