"""The other RL frameworks' logs and dumps (ROLL, AReaL, NeMo-RL, slime, verl rollout dumps, Tinker
rollout summaries): each imports a file of its format, checked against values read from the raw file
by an independent parse here (json, re, torch.load), not by entrodiag.

The files are under tests/data/frameworks/, made here by make_files.py from each framework's own
writer code (see each folder's SOURCE.md); no third-party file is committed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pytest

from entrodiag import load_run
from entrodiag.importers import ImportFailure, detect_format, import_run

DATA = Path(__file__).parent / "data" / "frameworks"
SOURCES = {
    "roll": ("roll_console", DATA / "roll" / "roll_stdout.log"),
    "areal_console": ("areal_console", DATA / "areal" / "areal_console.log"),
    "areal_dumps": ("areal_dumps", DATA / "areal" / "dump"),
    "nemo_rl": ("nemo_rl", DATA / "nemo_rl"),
    "slime": ("slime_dumps", DATA / "slime" / "dump"),
    "verl_rollouts": ("verl_rollouts", DATA / "verl" / "rollout_data"),
    "tinker": ("tinker_rollouts", DATA / "tinker" / "log"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Every made file imported once (format detected from the content)."""
    out = {}
    root = tmp_path_factory.mktemp("frameworks")
    for name, (_, src) in SOURCES.items():
        report = import_run(src, root / name)
        out[name] = (report, load_run(root / name))
    return out


def _step(run, step: int) -> dict:
    return run.steps.filter(step=step).row(0, named=True)


def test_formats_are_detected_from_content() -> None:
    for name, (fmt, src) in SOURCES.items():
        assert detect_format(src)[0] == fmt, name


def test_roll_metrics_tag_lines(runs) -> None:
    report, run = runs["roll"]
    raw = [json.loads(m.group(1)) for line in SOURCES["roll"][1].read_text().splitlines()
           if (m := re.search(r"metrics_tag: (\{.*\})$", line))]
    assert report.framework == "roll" and run.steps.height == len(raw) == 5
    for rec in raw:
        row, m = _step(run, rec["step"]), rec["metrics"]
        assert row["entropy_mean"] == m["critic/entropy/mean"]
        assert row["score_mean"] == m["critic/score/mean"] and row["reward_mean"] == m["critic/rewards/mean"]
        assert row["resp_len_mean"] == m["tokens/response_length/mean"]
    sem = run.meta["entropy_semantics"]
    assert sem["kind"] == "token_entropy" and "old policy" in sem["basis"]


def _grid_stats(text: str) -> dict[int, dict[str, float]]:
    """AReaL's console parsed here: step = Train step N - 1, the grid's key | value cells."""
    out: dict[int, dict[str, float]] = {}
    step = None
    for line in text.splitlines():
        if m := re.search(r"Train step (\d+)/\d+ done\.", line):
            step = int(m.group(1)) - 1
            out[step] = {}
        elif line.startswith("│") and step is not None:
            cells = [c.strip() for c in line.strip("│").split("│")]
            out[step].update({k: float(v) for k, v in zip(cells[::2], cells[1::2])})
    return out


def test_areal_console_tables(runs) -> None:
    _, run = runs["areal_console"]
    raw = _grid_stats(SOURCES["areal_console"][1].read_text(encoding="utf-8"))
    assert sorted(raw) == run.steps["step"].to_list() == [0, 1, 2, 3]
    for step, stats in raw.items():
        row = _step(run, step)
        assert row["entropy_mean"] == stats["ppo_actor/update/entropy/avg"]
        assert row["reward_mean"] == stats["ppo_actor/task_reward/avg"]
        assert row["ppo_actor/update/entropy/max"] == stats["ppo_actor/update/entropy/max"]


def test_areal_dumps_become_samples(runs) -> None:
    _, run = runs["areal_dumps"]
    colour = re.compile(r"\x1b\[33m\x1b\[2m(.*?)\x1b\[0m", re.S)
    expected = []
    for version_dir in sorted(SOURCES["areal_dumps"][1].iterdir(), key=lambda d: int(d.name)):
        for f in sorted(version_dir.glob("*.txt")):
            text = f.read_text(encoding="utf-8")
            rewards = [float(r) for r in re.findall(r"reward is (\S+)\.\n", text)]
            texts = colour.findall(text)
            expected += [(int(version_dir.name), r, p, c) for r, p, c in zip(rewards, texts[::2], texts[1::2])]
    samples = run.samples.sort("sample_id")
    got = list(zip(samples["step"], samples["reward"], samples["prompt"], samples["response"]))
    assert got == expected and len(got) == 8
    for step in (0, 1):
        rewards = [r for s, r, _, _ in expected if s == step]
        assert _step(run, step)["reward_mean"] == pytest.approx(sum(rewards) / len(rewards), abs=1e-12)


def test_nemo_rl_token_rows_are_surprisal(runs) -> None:
    from entrodiag.analysis.summary import analyze_run

    report, run = runs["nemo_rl"]
    for f in sorted(SOURCES["nemo_rl"][1].glob("train_data_step*.jsonl")):
        step = int(re.search(r"step(\d+)", f.name).group(1))
        lps = []
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            mask, lp = rec["token_loss_mask"][0], rec["generation_logprobs"][0]
            lps += [x for x, m in zip(lp[:rec["input_lengths"][0]], mask) if m]
        row = _step(run, step)
        assert row["surprisal_mean"] == pytest.approx(-sum(lps) / len(lps), abs=1e-12)
        assert row["entropy_mean"] is None  # never entropy
        tokens = run.tokens.filter(step=step).sort("sample_id", "pos")
        assert tokens["logprob"].to_list() == pytest.approx(lps, abs=1e-6)
        assert tokens["entropy"].null_count() == tokens.height
    assert run.meta["entropy_semantics"]["tokens"] == "surprisal"
    statement = analyze_run(run)["entropy_semantics"]["statement"]
    assert "surprisal" in statement and "not entropy" in statement


def test_slime_dumps_with_weights_only(runs) -> None:
    torch = pytest.importorskip("torch")
    _, run = runs["slime"]
    dump = SOURCES["slime"][1]
    for f in sorted((dump / "train_data").glob("*.pt")):
        obj = torch.load(f, weights_only=True)
        data = obj["rollout_data"]
        ent = [float(e) for es, m in zip(data["entropy"], data["loss_masks"]) for e, k in zip(es, m) if k]
        assert _step(run, obj["rollout_id"])["entropy_mean"] == pytest.approx(sum(ent) / len(ent), abs=1e-6)
    for f in sorted((dump / "rollout_data").glob("*.pt")):
        obj = torch.load(f, weights_only=True)
        got = run.samples.filter(step=obj["rollout_id"]).sort("sample_id")
        assert got["reward"].to_list() == [s["reward"] for s in obj["samples"]]
        assert got["response"].to_list() == [s["response"] for s in obj["samples"]]
    assert run.meta["entropy_semantics"]["kind"] == "token_entropy"


def test_slime_dump_with_other_objects_is_refused(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    bad = tmp_path / "dump" / "rollout_data" / "0.pt"
    bad.parent.mkdir(parents=True)
    torch.save({"rollout_id": 0, "samples": [], "args": argparse.Namespace(lr=1e-6)}, bad)
    with pytest.raises(ImportFailure, match=r"refused: torch.load\(weights_only=True\)"):
        import_run(tmp_path / "dump", tmp_path / "run")
    assert not (tmp_path / "run" / "run.json").exists()


def test_verl_rollout_dumps_become_samples(runs) -> None:
    _, run = runs["verl_rollouts"]
    for f in sorted(SOURCES["verl_rollouts"][1].glob("*.jsonl")):
        recs = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        step = recs[0]["step"]
        got = run.samples.filter(step=step).sort("sample_id")
        assert got["prompt"].to_list() == [r["input"] for r in recs]
        assert got["response"].to_list() == [r["output"] for r in recs]
        assert got["reward"].to_list() == [r["score"] for r in recs]
        assert _step(run, step)["score_mean"] == pytest.approx(sum(r["score"] for r in recs) / len(recs), abs=1e-12)


def test_tinker_rollout_summaries_and_metrics(runs) -> None:
    _, run = runs["tinker"]
    log = SOURCES["tinker"][1]
    metrics = {m["step"]: m for m in map(json.loads, (log / "metrics.jsonl").read_text().splitlines())}
    for f in sorted(log.glob("iteration_*/train_rollout_summaries.jsonl")):
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        step = recs[0]["iteration"]
        got = run.samples.filter(step=step).sort("sample_id")
        assert got["reward"].to_list() == [r["total_reward"] for r in recs]
        assert got["length"].to_list() == [sum(s["ac_len"] for s in r["steps"]) for r in recs]
        row = _step(run, step)
        assert row["n_responses"] == len(recs) and row["n_groups"] == len({r["group_idx"] for r in recs})
        assert row["entropy_mean"] == metrics[step]["optim/entropy"]
        assert math.isclose(row["reward_mean"], metrics[step]["env/all/reward/total"])


def test_cli_names_every_format_and_says_surprisal(tmp_path, capsys) -> None:
    import argparse as ap

    from entrodiag.cli import main
    from entrodiag.cli.import_logs import add_import_args
    from entrodiag.importers import FORMATS

    parser = ap.ArgumentParser()
    add_import_args(parser)
    fmt = next(a for a in parser._actions if a.dest == "format")
    assert set(fmt.choices) == {"auto", *FORMATS}
    assert main(["import", str(SOURCES["nemo_rl"][1]), "--out", str(tmp_path / "run")]) == 0
    assert "surprisal" in capsys.readouterr().out


def test_slime_tensorboard_names(tmp_path) -> None:
    """slime's TensorBoard scalars (made with torch's SummaryWriter as slime's adapter writes them), read back
    with tensorboard's own EventAccumulator: train/entropy_loss is the entropy, rollout/raw_reward the reward."""
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    folder = DATA / "slime" / "tensorboard"
    acc = ea_mod.EventAccumulator(str(folder))
    acc.Reload()
    report = import_run(folder, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert report.framework == "slime" and report.format == "tensorboard"
    for tag, column in (("train/entropy_loss", "entropy_mean"), ("rollout/raw_reward", "reward_mean"),
                        ("rollout/response_lengths", "resp_len_mean"), ("rollout/entropy", "rollout/entropy")):
        for ev in acc.Scalars(tag):
            assert _step(run, ev.step)[column] == pytest.approx(ev.value, abs=1e-6), tag
    sem = run.meta["entropy_semantics"]
    assert sem["column"] == "train/entropy_loss" and sem["kind"] == "token_entropy" and "slime" in sem["basis"]


def test_cut_and_broken_dumps_are_said(tmp_path) -> None:
    log = tmp_path / "roll.log"
    log.write_text('I metrics_tag: {"step": 0, "metrics": {"critic/entropy/mean": 1.5}}\n'
                   'I metrics_tag: {"step": 1, "metrics": {"critic/entr\n')
    report = import_run(log, tmp_path / "roll")
    assert report.steps == 1 and report.bad_values == {"metrics_tag lines cut short (left out)": 1}
    nemo = tmp_path / "nemo"
    nemo.mkdir()
    (nemo / "train_data_step3.jsonl").write_text('{"rewards": [1.0], "idx": 0}\n{"rewards": [0.\n')
    with pytest.raises(ImportFailure, match=r"train_data_step3\.jsonl:2: not JSON$"):
        import_run(nemo, tmp_path / "nemo_run")


def test_nemo_rl_approx_entropy_is_marked_an_estimate(tmp_path) -> None:
    """NeMo-RL's logged ``train/approx_entropy`` (here as a tracker's JSONL history): the entropy column,
    marked a sampled estimate, never the full-vocabulary entropy."""
    from entrodiag.analysis.sources import entropy_notes

    history = tmp_path / "history.jsonl"
    values = [(1, 0.71, 0.2), (2, 0.65, 0.4)]
    history.write_text("".join(json.dumps({"_step": s, "train/approx_entropy": e, "train/reward": r}) + "\n"
                               for s, e, r in values))
    report = import_run(history, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert report.framework == "nemo_rl"
    assert run.steps["entropy_mean"].to_list() == [e for _, e, _ in values]
    assert run.meta["entropy_semantics"]["kind"] == "sampled_neglogp"
    assert any("sampled" in w for w in entropy_notes(run)[1])


def test_nemo_rl_logprob_above_zero_is_left_out_of_the_token_row_too(tmp_path) -> None:
    """A generation logprob > 0 is no log-probability: counted as left out, and None in its token row."""
    nemo = tmp_path / "nemo"
    nemo.mkdir()
    rec = {"token_ids": [[5, 6, 7]], "token_loss_mask": [[0, 1, 1]],
           "generation_logprobs": [[0.0, -0.5, 0.3]], "input_lengths": [3], "rewards": [1.0],
           "advantages": [[0.0, 0.1, 0.1]]}
    (nemo / "train_data_step1.jsonl").write_text(json.dumps(rec) + "\n")
    report = import_run(nemo, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert report.bad_values == {"generation_logprobs: not a log-probability (left out)": 1}
    assert run.tokens.sort("pos")["logprob"].to_list() == [-0.5, None]
    assert _step(run, 1)["surprisal_mean"] == pytest.approx(0.5)


def test_a_lone_pt_file_is_not_slime(tmp_path) -> None:
    """Only slime's layout (rollout_data/<id>.pt, train_data/<id>_<rank>.pt) is slime_dumps; a
    model.pt is not."""
    from entrodiag.importers.frameworks import detect_framework

    (tmp_path / "model.pt").write_bytes(b"not a dump")
    assert detect_framework(tmp_path / "model.pt") is None
    (tmp_path / "rollout_data").mkdir()
    (tmp_path / "rollout_data" / "0.pt").write_bytes(b"")
    assert detect_framework(tmp_path / "rollout_data" / "0.pt") == "slime_dumps"
    assert detect_framework(tmp_path) == "slime_dumps"
