"""Property-based tests of ``entrodiag import`` over every format (Hypothesis).

Two properties, each over all seven formats:

1. **No uncounted change.** A random history (steps, names and values, including booleans, NaN,
   infinities, text, integers beyond 2^53, steps beyond int64, names that are formulas, empty or
   entrodiag's own column names) is written the way each tool writes it; after the import every
   number of a valid step is found at its step in the run, unless the summary counts a value of its
   column as left out or changed (or lists the column as skipped); every value left out is
   counted; and the run holds no number at a step that the log did not put there.
2. **No traceback.** The bytes of a valid log, flipped, cut or spliced, either import or fail with
   ``ImportFailure`` (the CLI's one-line error).

Bounded to a few seconds in all (``ENTRODIAG_FUZZ_EXAMPLES`` raises the number of examples for a
longer hunt); derandomised, so that the suite gives the same result on every run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import struct
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from entrodiag import load_run  # noqa: E402
from entrodiag.importers import ImportFailure, import_run  # noqa: E402

FORMATS = ("jsonl", "verl", "trainer_state", "csv", "tensorboard", "verl_console", "console")
EXAMPLES = int(os.environ.get("ENTRODIAG_FUZZ_EXAMPLES", "4"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# names a tool may log: entrodiag's aliases, evaluations, integer columns, entrodiag's own
# column names, another step counter, formulas, unicode, a long one
KNOWN = ["entropy", "reward", "actor/entropy", "critic/score/mean", "eval_reward", "val-core/gsm8k/acc/mean@1",
         "n_tokens", "epoch", "loss", "rank", "run_id", "entropy_hist", "global_step", "=HYPERLINK(1)", "@cmd",
         "+x", "a/b", "wall_time", "m" * 200]
SAFE = "abcdefgXYZ0123456789_/@=+.()[]"  # what every console format can carry in a name


def names(fmt: str):
    if fmt in ("console", "verl_console"):
        free = st.text(alphabet=SAFE, min_size=1, max_size=10)
    elif fmt == "csv":  # a header cell is stripped; " - " marks a W&B panel export
        free = st.text(min_size=1, max_size=10).map(str.strip).filter(lambda s: s and " - " not in s)
    else:
        free = st.text(max_size=10)
    known = [n for n in KNOWN if fmt not in ("console", "verl_console") or set(n) <= set(SAFE)]
    return st.one_of(st.sampled_from(known), free)


def values(fmt: str):
    if fmt == "tensorboard":  # float32 only
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    text = st.text(alphabet="abcxyz", min_size=1, max_size=6).filter(lambda s: s.lower() not in ("none", "null"))
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(-10, 10),
        st.integers(-(2**70), 2**70),
        st.booleans(),
        text,
    )


def steps(fmt: str):
    if fmt in ("tensorboard", "console", "verl_console"):  # the format holds a whole number
        return st.integers(0, 2**63 - 1) if fmt == "tensorboard" else st.integers(0, 10**6)
    return st.one_of(st.integers(-2, 40), st.integers(2**63 - 2, 2**64), st.floats(allow_nan=True),
                     st.just(True), st.just(1.5))


@st.composite
def histories(draw, fmt: str):
    """``[(step, {name: value})]``: a few records, names shared between records."""
    pool = draw(st.lists(names(fmt), min_size=1, max_size=6, unique=True))
    if fmt in ("console", "verl_console"):
        pool = [n for n in pool if n != "step"] or ["x"]
    step_st = st.one_of(st.integers(0, 5), steps(fmt))  # repeats, so that a step is logged twice
    recs = []
    for _ in range(draw(st.integers(1, 6))):
        keys = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        vals = {k: draw(values(fmt)) for k in keys if k != "step"}
        if fmt == "console":  # transformers adds the epoch to every log it prints
            vals["epoch"] = draw(st.floats(0, 10))
        recs.append((draw(step_st), vals))
    return recs


# ---------------------------------------------------------------------------- writing each format


def write(fmt: str, recs, folder: Path) -> Path:
    if fmt in ("jsonl", "verl"):
        path = folder / "metrics.jsonl"
        lines = [{"step": s, "data": vals} if fmt == "verl" else {"step": s, **vals} for s, vals in recs]
        path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
        return path
    if fmt == "trainer_state":
        path = folder / "trainer_state.json"
        path.write_text(json.dumps({"log_history": [{"step": s, **vals} for s, vals in recs]}))
        return path
    if fmt == "csv":
        header = ["step"] + list(dict.fromkeys(k for _, vals in recs for k in vals))
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(header)
        for s, vals in recs:
            w.writerow([_cell(s)] + [_cell(vals[h]) if h in vals else "" for h in header[1:]])
        path = folder / "history.csv"
        path.write_text(out.getvalue())
        return path
    if fmt == "tensorboard":
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        (folder / "tb").mkdir()
        with open(folder / "tb" / "events.out.tfevents.1.host", "wb") as f:  # tensorboard's own framing
            w = RecordWriter(f)
            w.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
            for s, vals in recs:
                summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=v)
                                                     for k, v in vals.items()])
                w.write(event_pb2.Event(step=s, wall_time=1.7e9 + s % 1000, summary=summary).SerializeToString())
        return folder / "tb"
    path = folder / "train.log"
    lines = ["banner"]
    for s, vals in recs:
        if fmt == "verl_console":
            lines.append(f"step:{s} - " + " - ".join(f"{k}:{_printed(v, i)}" for i, (k, v) in enumerate(vals.items())))
        else:
            lines.append(f" 50%|#####     | {s}/{10**6 + 1} [00:01<00:01, 1.00it/s]")
            lines.append("{" + ", ".join(f"{k!r}: {_printed(v, i)}" for i, (k, v) in enumerate(vals.items())) + "}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _printed(v, i: int) -> str:
    """A value as a console prints it: its repr, a float sometimes inside a numpy or torch wrapper."""
    if isinstance(v, float) and not isinstance(v, bool):
        return (repr(v), f"np.float64({v!r})", f"tensor({v!r}, device='cuda:0')")[i % 3]
    return repr(v)


def _cell(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def as_read(fmt: str, v):
    """What the format hands the importer for a logged value (CSV and console logs hold text)."""
    if fmt == "csv" and isinstance(v, (bool, str)):
        return str(v)
    if fmt == "tensorboard":
        return struct.unpack("<f", struct.pack("<f", v))[0]
    return v


# ---------------------------------------------------------------------------- the properties


def _valid_step(s) -> bool:
    if isinstance(s, bool):
        return False
    if isinstance(s, float):
        if not math.isfinite(s) or s != int(s):
            return False
        s = int(s)
    return isinstance(s, int) and 0 <= s <= 2**63 - 1


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def check_accounting(fmt: str, recs, report, run) -> None:
    bad = report.bad_values
    def counted(name: str) -> bool:
        if fmt == "tensorboard" and name == "":  # an empty tag is no tag in the protobuf
            return any("without a tag" in k for k in bad)
        return any(k.startswith(f"{name}: ") for k in bad)

    out: dict[int, set[float]] = {}
    for row in run.steps.iter_rows(named=True):
        for c, v in row.items():
            if c not in ("step", "rank") and v is not None and not isinstance(v, list):
                out.setdefault(row["step"], set()).add(float(v))
    for s, v in zip(run.evals["step"].to_list(), run.evals["value"].to_list()):
        out.setdefault(s, set()).add(float(v))
    rows_left_out = sum(n for k, n in bad.items() if k.startswith("rows whose step"))
    logged: dict[int, set[float]] = {}
    for s, vals in recs:
        if fmt == "tensorboard":  # the event's own wall time (write() sets it)
            logged.setdefault(s, set()).add(1.7e9 + s % 1000)
        for name, raw in vals.items():
            v = _number(as_read(fmt, raw))
            if not _valid_step(s):
                assert rows_left_out or name in report.skipped, (s, name, bad)
                continue
            step = int(s)
            if v is None:  # a boolean, NaN, infinity, text, an integer beyond float64
                assert counted(name) or name in report.skipped, (name, raw, bad, report.skipped)
                continue
            logged.setdefault(step, set()).update({v, float(round(v)) if abs(v) < 2**63 else v})
            if v not in out.get(step, set()):  # left out (a negative entropy, a later value won)
                assert counted(name) or name in report.skipped, (name, step, raw, bad, report.skipped)
    for step, found in out.items():  # nothing the log did not hold
        assert found <= logged.get(step, set()), (step, found - logged.get(step, set()))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_change_is_counted(fmt):
    @FUZZ
    @given(histories(fmt))
    def prop(recs):
        with tempfile.TemporaryDirectory() as d:
            src = write(fmt, recs, Path(d))
            try:
                report = import_run(src, Path(d) / "run", format=fmt)
            except ImportFailure as e:
                assert "Traceback" not in str(e) and "\n" not in str(e)
                assert not (Path(d) / "run" / "run.json").exists()
                return
            run = load_run(Path(d) / "run")
            assert run.status == "finished"
            check_accounting(fmt, recs, report, run)

    prop()


@st.composite
def damage(draw, size: int):
    """Edits of a file of ``size`` bytes: flipped bytes, a cut, a spliced run of bytes."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(size - 1, 0)))
        edits.append((kind, at, draw(st.binary(min_size=1, max_size=8))))
    return edits


def _apply(data: bytes, edits) -> bytes:
    for kind, at, blob in edits:
        at = min(at, len(data))
        if kind == "flip":
            data = data[:at] + bytes(b ^ x for b, x in zip(data[at:at + len(blob)], blob)) + data[at + len(blob):]
        elif kind == "cut":
            data = data[:at]
        else:
            data = data[:at] + blob + data[at:]
    return data


SAMPLE = [(s, {"entropy": 1 / s, "reward": s / 10, "val-core/x/acc/mean@1": s / 20, "n_tokens": 100 * s})
          for s in range(1, 5)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_bytes_never_raise_a_traceback(fmt):
    with tempfile.TemporaryDirectory() as d:
        src = write(fmt, SAMPLE, Path(d))
        path = next(src.glob("*tfevents*")) if src.is_dir() else src
        original = path.read_bytes()

    @FUZZ
    @given(damage(len(original)))
    def prop(edits):
        with tempfile.TemporaryDirectory() as d:
            target = Path(d) / path.name
            target.write_bytes(_apply(original, edits))
            for how in ("auto", fmt):
                out = Path(d) / f"run-{how}"
                try:
                    report = import_run(target, out, format=how)
                except ImportFailure:
                    assert not (out / "run.json").exists()
                    continue
                run = load_run(out)
                assert run.status == "finished" and run.steps.height + run.evals.height > 0
                assert report.steps == run.steps.height

    prop()
