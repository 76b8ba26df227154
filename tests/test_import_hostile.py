"""``entrodiag import`` on hostile and damaged input (issue 24, item 4): no traceback on any input,
every value left out or changed counted by column and reason, nothing written for a log that
cannot be imported, TensorBoard records checked as TensorBoard writes them, and ``query --csv``
output that a spreadsheet cannot run.

Each test here failed on the importer before these fixes (checked by running it on that code).
"""

from __future__ import annotations

import csv
import json
import os
import random
import struct

import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.importers import detect_format, import_run
from entrodiag.importers import tfevents


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _column(run_dir, column="entropy_mean") -> dict:
    steps = load_run(run_dir).steps.sort("step")
    return dict(zip(steps["step"].to_list(), steps[column].to_list()))


# ------------------------------------------------------------------------------------ CSV


def test_a_csv_cell_over_128_kb_imports(tmp_path, capsys):
    """Python's csv module refuses fields over 128 KB by default (a logged completion or config)."""
    src = tmp_path / "history.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "entropy", "sample"])
        for s in range(1, 6):
            w.writerow([s, 1 / s, "x" * (200_000 if s == 3 else 10)])
    code, out, err = _cli(capsys, "import", src, "--out", tmp_path / "run")
    assert code == 0, err
    assert _column(tmp_path / "run") == pytest.approx({s: 1 / s for s in range(1, 6)})
    assert "sample" in out.split("skipped")[1]  # a text column, named


def test_nan_cells_booleans_and_cells_beyond_the_header_are_counted(tmp_path, capsys):
    src = tmp_path / "history.csv"
    src.write_text("step,entropy,reward\n1,0.9,0.1\n2,nan,0.2\n3,NaN,0.3,7\n4,0.6,0.4\n")
    code, out, _ = _cli(capsys, "import", src, "--out", tmp_path / "csv")
    assert code == 0
    assert "2 x entropy: not a number or infinite (left out)" in out
    assert "1 x cells beyond the header's columns (left out)" in out
    assert _column(tmp_path / "csv") == {1: 0.9, 2: None, 3: None, 4: 0.6}
    # JSON true/false is a flag, not the number 1 or 0: as an entropy or as a step
    log = tmp_path / "metrics.jsonl"
    recs = [{"step": 1, "entropy": 0.9}, {"step": 2, "entropy": True}, {"step": True, "entropy": 0.3},
            {"step": 3, "entropy": 0.5}]
    log.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    code, out, _ = _cli(capsys, "import", log, "--out", tmp_path / "json")
    assert code == 0
    assert "1 x entropy: true/false, not a number (left out)" in out
    assert "1 x rows whose step (step) is true/false (left out)" in out
    assert _column(tmp_path / "json") == {1: 0.9, 3: 0.5}
    imported = load_run(tmp_path / "json").meta["imported"]["bad_values"]
    assert imported == {"entropy: true/false, not a number (left out)": 1,
                        "rows whose step (step) is true/false (left out)": 1}


# ------------------------------------------------------------------------------------ steps


def test_steps_beyond_int64_are_refused_before_anything_is_written(tmp_path, capsys):
    big = tmp_path / "big.jsonl"
    big.write_text("\n".join(json.dumps({"step": s, "entropy": 0.5}) for s in (10**30, 2**63)) + "\n")
    code, _, err = _cli(capsys, "import", big, "--out", tmp_path / "none")
    assert code == 2 and "int64" in err and "Traceback" not in err
    assert not (tmp_path / "none").exists()  # no run left "finished" with 0 steps
    csv_src = tmp_path / "big.csv"
    csv_src.write_text("step,entropy\n1e30,0.5\n")
    code, _, err = _cli(capsys, "import", csv_src, "--out", tmp_path / "none")
    assert code == 2 and "int64" in err and not (tmp_path / "none").exists()
    # the largest int64 step is a step (read exactly, not through a float); one past it is counted
    edge = tmp_path / "edge.csv"
    edge.write_text(f"step,entropy\n1,0.9\n{2**63 - 1},0.4\n{2**63},0.3\n")
    code, out, err = _cli(capsys, "import", edge, "--out", tmp_path / "edge")
    assert code == 0, err
    assert "1 x rows whose step (step) is beyond the int64 range (left out)" in out
    assert _column(tmp_path / "edge") == {1: 0.9, 2**63 - 1: 0.4}
    assert load_run(tmp_path / "edge").status == "finished"


# ------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize("kind", ["jsonl", "verl"])
def test_detection_does_not_depend_on_the_first_lines_length(tmp_path, kind):
    """verl's and W&B's JSONL put ~120 metrics on a line: a first line over 4 KB."""
    log = tmp_path / "metrics.log"
    lines = []
    for s in range(1, 4):
        data = {"actor/entropy": 1 / s, **{f"timing_s/some_long_metric_name_{i}": float(i) for i in range(120)}}
        lines.append({"step": s, "data": data} if kind == "verl" else {"step": s, **data})
    log.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert len(log.read_text().splitlines()[0]) > 4096
    assert detect_format(log)[0] == kind
    assert import_run(log, tmp_path / "run").steps == 3
    assert _column(tmp_path / "run") == pytest.approx({1: 1.0, 2: 0.5, 3: 1 / 3})


# ------------------------------------------------------------------------------------ TensorBoard


def test_crc32c_is_tensorboards():
    """The vectorised CRC-32C gives the numbers of tensorboard's own writer, on every length."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked

    rng = random.Random(0)
    msgs = [os.urandom(n) for n in (0, 1, 3, 4, 5, 8, 63, 64, 65, 127, 128, 129, 1000, 4099)]
    msgs += [os.urandom(rng.randrange(300)) for _ in range(200)]
    assert tfevents.crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C (RFC 3720)
    assert tfevents.crc32c_many(msgs) == [tfevents.crc32c(m) for m in msgs]
    assert [tfevents.masked_crc32c(m) for m in msgs[:60]] == [tb_masked(m) for m in msgs[:60]]


@pytest.fixture
def event_file(tmp_path):
    """100 steps of entropy through torch's SummaryWriter (tensorboard's record writer)."""
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "tb"
    with SummaryWriter(str(folder)) as w:
        for s in range(1, 101):
            w.add_scalar("train/entropy", 0.123 if s == 50 else 1 / s, s)
    (path,) = folder.glob("*tfevents*")
    if hasattr(tfevents, "scan_scalars"):
        scan = tfevents.scan_scalars(path)
        assert scan.problems == {} and len(scan.events) == 100  # every record of tensorboard's writer holds
    return path


def test_a_tensorboard_record_with_flipped_bytes_is_left_out_and_counted(event_file, tmp_path, capsys):
    data = event_file.read_bytes()
    at = data.index(struct.pack("<f", 0.123))
    event_file.write_bytes(data[:at] + struct.pack("<f", 123.0) + data[at + 4:])
    code, out, err = _cli(capsys, "import", event_file, "--out", tmp_path / "run")
    assert code == 0, err
    h = _column(tmp_path / "run")
    assert 50 not in h and len(h) == 99 and 123.0 not in h.values()
    assert f"1 x {event_file.name}: records with a bad data checksum (left out)" in out


def test_a_tensorboard_file_cut_mid_record_says_so(event_file, tmp_path, capsys):
    data = event_file.read_bytes()
    at = data.index(struct.pack("<f", 1 / 61))  # inside the record of step 61
    event_file.write_bytes(data[:at])
    code, out, err = _cli(capsys, "import", event_file, "--out", tmp_path / "run")
    assert code == 0, err
    assert sorted(_column(tmp_path / "run")) == list(range(1, 61))
    assert f"1 x {event_file.name}: record cut short at the end of the file (left out)" in out
    # a length checksum that fails after the first record: the rest cannot be trusted, said so
    event_file.write_bytes(data[:at - 40] + b"\xff" * 40 + data[at:])
    code, out, err = _cli(capsys, "import", event_file, "--out", tmp_path / "run2")
    assert code == 0, err
    assert "bad record length checksum at byte" in out and "bytes not read" in out


# ------------------------------------------------------------------------------------ output


def test_query_csv_neutralises_formula_names(tmp_path, capsys):
    src = tmp_path / "history.csv"
    names = ['=HYPERLINK("http://evil.example","x")', "+cmd", "-2+3", "@SUM(A1)"]
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "entropy", *names])
        w.writerow([1, 0.5, 1.0, 2.0, 3.0, 4.0])
        w.writerow([2, 0.4, 1.0, 2.0, 3.0, 4.0])
    assert _cli(capsys, "import", src, "--out", tmp_path / "runs" / "r")[0] == 0
    code, out, err = _cli(capsys, "query", tmp_path / "runs", "--csv", "--index", tmp_path / "idx",
                          "select step, entropy_mean - 1 as neg, '=1+1' as f, * exclude (step) from steps order by step")
    assert code == 0, err
    rows = list(csv.reader(out.splitlines()))
    header = rows[0]
    for name in names:
        assert "'" + name in header and name not in header
    assert not any(c.startswith(("=", "+", "-", "@")) for c in header)
    assert rows[1][header.index("neg")] == "-0.5"  # a number stays a number
    assert rows[1][header.index("f")] == "'=1+1"


def test_a_very_wide_log_is_summarised(tmp_path, capsys):
    n = 3000
    src = tmp_path / "wide.jsonl"
    src.write_text("\n".join(json.dumps({"step": s, "entropy": 0.5, **{f"m{i}": i for i in range(n)}})
                             for s in range(2)) + "\n")
    code, out, err = _cli(capsys, "import", src, "--out", tmp_path / "run", "--format", "jsonl")
    assert code == 0, err
    assert len(out) < 4000 and f"({n - 30} more)" in out
    assert len(load_run(tmp_path / "run").meta["imported"]["unrecognised"]) == n  # run.json has them all
