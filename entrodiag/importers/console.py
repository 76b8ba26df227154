"""Readers for console output: verl's ``step:N - key:value`` lines and the dicts that
transformers/TRL print at each logging step.

Both read a captured terminal (``python train.py | tee run.log``, Ray's driver log, a notebook
dump) and ignore everything that is not a metric line: config dumps, warnings, sample
generations, progress bars. Pure Python (``re``, ``ast``).

- **verl console** (``trainer.logger=['console']``): one line per step,
  ``step:N - key:value - key:value ...``, optionally behind Ray's ``(main_task pid=...)`` prefix
  and ANSI colour codes. Validation values are appended to some step lines (or logged on a line of
  their own with the same step); the ``Initial validation metrics: {...}`` dict that verl prints
  before training is the validation at step 0.
- **transformers/TRL console**: one printed Python dict per logging step (single quotes, no step
  key), e.g. ``{'loss': 0.07, 'entropy': 0.95, ..., 'epoch': 0.0}``, between tqdm bars. The step is
  the progress counter (``| 10/29790 [``) last printed before the dict; ``log_every`` replaces it
  with ``log_every · k`` for the k-th dict (1-based), for logs captured without the bar. Where
  stdout was block-buffered into a file (tqdm writes to stderr, unbuffered), up to eight dicts
  follow one counter: the logging interval is then read off the log (``_dict_steps``).
- **Jupyter notebooks**: the same dicts, or verl's step lines, in a cell's outputs (``notebook.read_notebook``).

Numbers may be printed plain, quoted (``'0.5317'``, recent transformers) or inside a wrapper:
``np.float64(0.035)`` (newer verl), ``tensor(0.5, device='cuda:0')``, ``Decimal('0.1')``
(``number``).
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RAY_PREFIX = re.compile(r"^\s*\((?:[\w.-]+) pid=\d+(?:, ip=[\d.]+)?\)\s*")
VERL_STEP = re.compile(r"^step:(\d+)\s+-\s+(.*)$")
VERL_INITIAL = re.compile(r"Initial validation metrics:\s*(\{.*\})")
#: a tqdm counter ``| 10/200 [`` (Colab's text bars: ``10% 20/200 [``)
TQDM_COUNTER = re.compile(r"(?:\||\d%)\s*(\d+)/(\d+)\s*\[")
#: a printed metrics dict: starts with a quoted key and a number, plain, quoted or wrapped (how a
#: log is recognised)
PRINTED_DICT = re.compile(r"\{'[^'\n]+':\s*(?:[-+0-9.naif]|'[-+0-9.]|(?:np|numpy|torch)\.\w+\(|tensor\()")
#: a printed dict read as metrics when it holds a number and its first value is one, or it has
#: an ``epoch`` (transformers adds it to every log): its first value may also be quoted (recent
#: transformers print ``'loss': '0.03732'``), wrapped (``np.float64(0.1)``), a flag or None; not a
#: nested dict (a config dump)
FLAT_DICT = re.compile(r"\{'[^'\n]+':\s*(?:[-+0-9.naif]|'|True|False|None|[A-Za-z_][\w.]*\()")
_PAIR = re.compile(r"'([^'\n]+)':\s*('[^'\n]*'|[A-Za-z_][\w.]*\((?:[^()]|\([^()]*\))*\)|[^,}]+)")
#: a number printed inside a wrapper: numpy scalars (verl prints ``np.float64(0.035)``), torch
#: tensors (``tensor(0.5)``, ``tensor(0.5, device='cuda:0')``), ``Decimal('0.1')``
WRAPPED = re.compile(
    r"^(?:(?:np|numpy)\.(?:float|int|uint|bool_)\w*\(\s*(?P<np>[^(),]*?)\s*\)"
    r"|(?:torch\.)?tensor\(\s*(?P<t>[^(),\[\]]*?)\s*(?:,.*)?\)"
    r"|Decimal\(\s*'(?P<d>[^']*)'\s*\))$"
)
_WRAPPED_ITEM = re.compile(r"^(.*?):(\s*(?:(?:np|numpy|torch)\.\w+|tensor|Decimal)\(.*\))$")
_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)$", re.I)


def clean_line(line: str) -> str:
    """A console line without ANSI codes and without Ray's ``(name pid=N)`` prefix."""
    return RAY_PREFIX.sub("", ANSI.sub("", line)).strip()


def looks_like_verl_console(text: str) -> bool:
    """Whether ``text`` (the start of a file) holds verl ``step:N - key:value`` lines."""
    return any((m := VERL_STEP.match(clean_line(line))) and ":" in m.group(2) for line in text.splitlines())


def looks_like_printed_dicts(text: str) -> bool:
    """Whether ``text`` holds printed transformers/TRL metric dicts (``{'loss': ...}``)."""
    return PRINTED_DICT.search(text) is not None


def _value(text: str) -> Any:
    text = text.strip()
    if text.startswith("'"):
        return text.strip("'")
    return number(text)


def number(text: Any) -> Any:
    """A printed number as a float: plain (``0.5``, ``nan``), or inside a numpy, torch or Decimal
    wrapper (see ``WRAPPED``); anything else is returned as it is."""
    if not isinstance(text, str):
        return text
    t = text.strip()
    m = WRAPPED.match(t)
    if m:
        t = next(g for g in m.groups() if g is not None)
        if t in ("True", "False"):  # np.bool_(True), tensor(True): a flag, not a number
            return t == "True"
    if not _NUMBER.match(t):
        return text
    try:
        return float(t)
    except ValueError:
        return text


def parse_printed_dict(text: str) -> dict[str, Any]:
    """``{key: value}`` of a printed dict; tolerates ``nan``/``inf`` (which ``ast`` rejects)."""
    try:
        obj = ast.literal_eval(text)
        if isinstance(obj, dict):
            return {str(k): v for k, v in obj.items()}
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    return {k: _value(v) for k, v in _PAIR.findall(text)}


def _text_lines(path: Path, text: str | None):
    """The lines of ``text``, else of the file at ``path`` (read as it goes)."""
    if text is not None:
        yield from text.splitlines(keepends=True)
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        yield from f


def read_verl_console(path: Path, text: str | None = None) -> tuple[list[dict], dict]:
    """Rows ``{"step": N, key: value, ...}`` of a verl console log (see the module docstring);
    ``text`` (a notebook cell's output) instead of the file's content."""
    rows: list[dict] = []
    lengths: list[int] = []  # each step line's length as written (a line cut by a logger has a fixed one)
    tails: list[bool] = []  # whether each step line's last item read as key:value
    initial: dict[str, Any] | None = None
    n_lines = 0
    twice: dict[str, int] = {}
    for raw in _text_lines(path, text):
        line = clean_line(raw)
        m = VERL_STEP.match(line)
        if m:
            lengths.append(len(raw.rstrip("\r\n")))
            row: dict[str, Any] = {"step": int(m.group(1))}
            for item in m.group(2).split(" - "):
                wrapped = _WRAPPED_ITEM.match(item.strip())  # tensor(0.5, device='cuda:0') holds a ':'
                key, sep, value = (wrapped[1], ":", wrapped[2]) if wrapped else item.strip().rpartition(":")
                tail_read = bool(sep and key)  # False when a cut fell inside the last key
                if sep and key:
                    key = key.strip()
                    if key in row:
                        twice[key] = twice.get(key, 0) + 1
                    row[key] = _value(value)
            rows.append(row)
            tails.append(tail_read)
            n_lines += 1
            continue
        if initial is None:
            mi = VERL_INITIAL.search(line)
            if mi:
                initial = parse_printed_dict(mi.group(1))
    notes = []
    cut = cut_lines(rows, lengths, tails)
    logged = {k for r in rows for k in r}
    # verl printed validation values without the val/ prefix its other step lines use on some lines
    # (gemma's "step:0 - test_score/...") and in the initial dict: one name for one metric
    rows = [{(f"val/{k}" if f"val/{k}" in logged else k): v for k, v in r.items()} for r in rows]
    if initial:
        first = rows[0]["step"] if rows else 0
        initial = {(f"val/{k}" if f"val/{k}" in logged else k): v for k, v in initial.items()}
        present = {k for r in rows if r["step"] == first for k in r}
        extra = {k: v for k, v in initial.items() if k not in present}
        if extra:
            rows.insert(0, {"step": first, **extra})
            notes.append(f"'Initial validation metrics' (before training) taken as step {first}")
    config = _verl_config(path, text)
    bad = {f"{k}: printed twice on one step line (kept the last)": n for k, n in twice.items()}
    meta = {"config": config, "notes": notes, "metric_lines": n_lines, "bad_values": bad}
    if cut:
        rename = {k: f"val/{k}" for k in logged if f"val/{k}" in logged}
        cut["lost"] = {rename.get(k, k): n for k, n in cut["lost"].items()}
        meta["cut"] = cut
    return rows, meta


#: shortest line length read as a logger's cap on line length (W&B's output.log: 4,096 characters)
MIN_CUT = 1024


def cut_lines(rows: list[dict], lengths: list[int], tails: list[bool] | None = None) -> dict | None:
    """Step lines cut short by a logger that caps line length (W&B's ``files/output.log`` cuts
    every line at 4,096 characters), found and accounted for; ``rows`` is changed in place.

    A line is cut when its length is the longest of the log's step lines, at least ``MIN_CUT``
    characters, and either two or more lines share that length (a cap) or its last value is
    number-like text that does not read as a number (cut mid-value). The last item of a cut line
    is left out, even when what is left of it reads as a number (``-0.4213`` cut from
    ``-0.42134``): it is counted as lost (unless the cut fell inside the key after it, ``tails``:
    then the last value read is whole). The keys after the cut are lost too: a key counts as
    lost on a cut line when another step line that holds the cut line's keys shows it after the
    last of them (verl prints the metrics of every step in one order). Returns ``{"cap", "lines",
    "steps", "lost": {key: cut lines that lost it}}``, or ``None`` when no line is cut."""
    if not lengths:
        return None
    cap = max(lengths)
    at_cap = [i for i, n in enumerate(lengths) if n == cap]
    if cap < MIN_CUT:
        return None

    def cut_mid_value(row: dict) -> bool:
        last = rows_keys(row)[-1:]
        v = row.get(last[0]) if last else None
        return isinstance(v, str) and bool(re.search(r"\d", v)) and not isinstance(number(v), float)

    cut = [i for i in at_cap if len(at_cap) >= 2 or cut_mid_value(rows[i])]
    if not cut:
        return None
    orders = {tuple(rows_keys(r)) for r in rows}  # the key orders the log shows
    lost: Counter = Counter()
    for i in cut:
        keys = rows_keys(rows[i])
        if not keys:
            continue
        held = set(keys)
        gone = set()
        if tails is None or tails[i]:
            rows[i].pop(keys[-1])  # the value cut short
            gone.add(keys[-1])
        for order in orders:
            pos = [j for j, k in enumerate(order) if k in held]
            if pos:
                gone.update(k for k in order[pos[-1] + 1:] if k not in held)
        lost.update(gone)
    return {"cap": cap, "lines": len(cut), "steps": [rows[i]["step"] for i in cut], "lost": dict(sorted(lost.items()))}


def rows_keys(row: dict) -> list[str]:
    """The metric keys of a step row, in the order printed (without ``step``)."""
    return [k for k in row if k != "step"]


_CONFIG_KEYS = {"temperature": re.compile(r"'temperature':\s*([0-9.]+)"),
                "entropy_coeff": re.compile(r"'entropy_coeff':\s*([0-9.eE+-]+)"),
                "total_epochs": re.compile(r"'total_epochs':\s*(\d+)"),
                "adv_estimator": re.compile(r"'adv_estimator':\s*'(\w+)'")}


def _verl_config(path: Path, text: str | None = None, limit: int = 200_000) -> dict:
    """A few settings from the config dump verl prints first (temperature, entropy_coeff, ...), from
    ``text`` when given, else from the file."""
    if text is None:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(limit)
    head = ANSI.sub("", text[:limit])
    out: dict[str, Any] = {}
    for key, rx in _CONFIG_KEYS.items():
        m = rx.search(head)
        if m:
            out[key] = _value(m.group(1)) if not m.group(1).isdigit() else int(m.group(1))
    return out


def read_printed_dicts(path: Path, log_every: int | None = None, text: str | None = None) -> tuple[list[dict], dict]:
    """Rows of the metric dicts printed by transformers/TRL (see the module docstring); ``text``
    (a notebook cell's output) instead of the file's content.

    Raises ``ValueError`` when a dict has no progress counter before it and ``log_every`` is not
    given (the message says to pass ``--log-every``).
    """
    if text is None:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    text = ANSI.sub("", text)
    counters = [(m.start(), int(m.group(1)), int(m.group(2))) for m in TQDM_COUNTER.finditer(text)]
    # the training bar: the bar of the last counter before the first metrics dict (else the bar
    # printed most); other bars (dataset mapping, checkpoint loading, evaluation) are left aside
    first = next((m.start() for m in FLAT_DICT.finditer(text)
                  if re.search(r"'(loss|epoch)':", text[m.start():text.find("}", m.start())])), None)
    before_first = [t for pos, _, t in counters if first is not None and pos < first]
    totals = Counter(t for _, _, t in counters)
    main_total = before_first[-1] if before_first else max(totals, key=lambda t: (totals[t], t)) if totals else None
    bar = [(pos, c) for pos, c, t in counters if t == main_total]  # the training bar's counters
    # (dict, the training bar's counter printed before it, which printing of a counter that was)
    dicts: list[tuple[dict, int | None, int]] = []
    summary: dict = {}
    pos = ci = 0
    last_counter: int | None = None
    for m in FLAT_DICT.finditer(text):
        start = m.start()
        end = text.find("}", start)
        if end < 0:
            break
        if start < pos:
            continue
        pos = end + 1
        while ci < len(bar) and bar[ci][0] < start:
            last_counter = bar[ci][1]
            ci += 1
        d = {k: number(v) for k, v in parse_printed_dict(text[start:end + 1]).items()}
        numbers = [v for v in d.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        first = next(iter(d.values()), None)
        if not numbers or not (isinstance(first, (int, float)) or "epoch" in d):
            continue  # not a metrics dict (a printed config, a generation config)
        if any(k in d for k in ("train_runtime", "train_samples_per_second")) and "loss" not in d:
            summary = d  # the end-of-training summary
            continue
        dicts.append((d, last_counter, ci))
    steps, how, notes = _dict_steps(path, dicts, bar, summary, log_every)
    rows = [{"step": step, **{k: v for k, v in d.items() if k != "step"}} for (d, _, _), step in zip(dicts, steps)]
    closing, note = _closing_point(summary, rows, bar)
    if closing is not None:
        rows.append(closing)
    notes += [note] if note else []
    bad = {"step: printed inside a dict (the step read from the log used instead)":
           sum("step" in d for d, _, _ in dicts)}
    return rows, {"notes": [f"{len(rows)} printed metric dicts; {how}", *notes], "step_rule": how,
                  "bad_values": {k: n for k, n in bad.items() if n},
                  **({"summary": summary} if summary else {})}


#: the keys of transformers' end-of-training summary dict itself (the rest of it, if any, are metrics)
SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
                          "total_flos"})
#: keys every log carries that say nothing of the step's metrics (a counter, the epoch)
_COUNTERS = frozenset({"epoch", "num_tokens", "step"})


def _closing_point(summary: dict, rows: list[dict], bar: list[tuple[int, int]]) -> tuple[dict | None, str]:
    """The logged point that the closing ``{'train_runtime': ...}`` dict also holds, and a note.

    TRL merges the metrics of the steps after the last logging step into the trainer's final log,
    so its summary dict may carry the GRPO metrics (entropy, rewards, ``completions/*``) of the last
    step: those are a logged point when they hold a metric the training dicts log. Its step is the
    training's last: the bar's last counter, else ``train_runtime`` x ``train_steps_per_second``; it is
    kept only after the last training dict (a metric of a step already logged is not read twice)."""
    metrics = {k: v for k, v in summary.items() if k not in SUMMARY_KEYS}
    logged = {k for r in rows for k in r if k not in _COUNTERS}
    if not rows or not (set(metrics) - _COUNTERS) & logged:
        return None, ""
    rt, sps = summary.get("train_runtime"), summary.get("train_steps_per_second")
    last = (max(c for _, c in bar) if bar else
            round(rt * sps) if isinstance(rt, float) and isinstance(sps, float) else None)
    prev = max(r["step"] for r in rows)
    if last is None or last <= prev:
        return None, (f"the closing train_runtime dict also holds {len(metrics)} metrics, left out: the last step "
                      f"{'is unknown' if last is None else f'{last} is already logged'}")
    return {"step": last, **metrics}, (f"the closing train_runtime dict also holds the metrics of the steps after "
                                       f"the last logging step: read as step {last}, the last step")


def _is_eval(d: dict) -> bool:
    return all(k.startswith("eval_") or k == "epoch" for k in d)


def _dict_steps(path, dicts, bar, summary, log_every) -> tuple[list[int], str, list[str]]:
    """The step of each printed dict, how it was read, and notes.

    An evaluation dict (``eval_*`` keys) takes the step of the training dict before it. A training
    dict's step is the training bar's counter printed before it, unless several training dicts
    come after one counter: stdout block-buffered into a file prints up to eight dicts at once
    while tqdm (on stderr) runs on. Then the dicts are numbered ``base + L·k`` with the logging
    interval ``L`` read off the log (``_intervals``) and checked: a dict is printed after its step,
    so ``base + L·k`` may not exceed the counter before it, nor the last counter; a finished run
    (the closing ``train_runtime`` dict) logged last at the last multiple of ``L``.
    """
    train = [i for i, (d, _, _) in enumerate(dicts) if not _is_eval(d)]
    train_steps: list[int] | None = None
    notes: list[str] = []
    if log_every:
        train_steps = [log_every * (k + 1) for k in range(len(train))]
        how = f"step = {log_every} x the dict's index (--log-every {log_every})"
    else:
        before = [dicts[i][1] for i in train]
        # buffered: two training dicts with no counter printed between them (the same counter
        # printed again before each is a redraw: two logs of one step, not a buffer)
        occurrences = [dicts[i][2] for i in train]
        shared = sum(1 for a, b in zip(occurrences, occurrences[1:]) if a == b and a > 0)
        if shared == 0 and None not in before:
            train_steps = list(before)
            how = "step = the progress-bar counter printed before each dict"
        else:
            found = _buffered_steps(before, bar, summary)
            if found is not None:
                train_steps, interval, source = found
                base = train_steps[0] - interval
                how = (f"several dicts after one progress counter (stdout buffered into a file, or a notebook): step = "
                       f"{f'{base} + ' if base else ''}{interval} x the dict's index, the logging interval "
                       f"{interval} read from {source}")
            elif None in before:
                k = before.index(None) + 1
                raise ValueError(
                    f"{path}: printed metric dict {k} has no progress counter before it, so its step is "
                    "unknown; pass --log-every N (the trainer's logging_steps)"
                )
            else:
                train_steps = list(before)
                how = "step = the progress-bar counter printed before each dict"
                notes.append("several dicts share a progress counter and no logging interval fits the log (later "
                             "value kept); --log-every N numbers them instead")
    steps: list[int] = []
    it = iter(train_steps)
    last = None
    for i, (d, counter, _) in enumerate(dicts):
        if not _is_eval(d):
            last = next(it)
            steps.append(last)
        elif last is not None:
            steps.append(last)
        elif counter is not None or log_every:
            steps.append(counter if counter is not None else 0)
        else:
            raise ValueError(f"{path}: printed evaluation dict {i + 1} comes before any training dict or progress "
                             "counter, so its step is unknown; pass --log-every N")
    return steps, how, notes


def _intervals(before: list[int | None], bar: list[tuple[int, int]], summary: dict) -> list[tuple[int, str]]:
    """Candidate logging intervals, each with where it was read: the counter tqdm prints twice at
    each logging step (the trainer's log redraws the bar), the last counter (or ``train_runtime`` x
    ``train_steps_per_second``) over the number of dicts, the bar's total over the number of dicts."""
    n = len(before)
    out: list[tuple[int, str]] = []
    values = [c for _, c in bar]
    repeated = sorted({a for a, b in zip(values, values[1:]) if a == b and a > 0})
    if len(repeated) >= 2:
        g = 0
        for r in repeated:
            g = math.gcd(g, r)
        out.append((g, f"the counter repeated at each logging step ({', '.join(map(str, repeated[:4]))}, ...)"))
    if values and max(values) % n == 0:
        out.append((max(values) // n, f"the last counter {max(values)} over {n} dicts"))
    rt, sps = summary.get("train_runtime"), summary.get("train_steps_per_second")
    if isinstance(rt, float) and isinstance(sps, float) and rt * sps >= n:
        total = round(rt * sps)
        if total % n == 0:
            out.append((total // n, f"train_runtime x train_steps_per_second = {total} steps over {n} dicts"))
    return [(L, src) for L, src in out if L >= 1]


def _buffered_steps(before, bar, summary) -> tuple[list[int], int, str] | None:
    values = [c for _, c in bar]
    candidates = _intervals(before, bar, summary)
    if not values:  # no bar at all (tqdm disabled): only train_runtime can say, from step 0
        interval, source = next(((i, src) for i, src in candidates if "train_runtime" in src), (None, None))
        return None if interval is None else ([interval * (k + 1) for k in range(len(before))], interval, source)
    c_max, c_first = max(values), values[0]
    for interval, source in candidates:
        for base in dict.fromkeys((c_first // interval * interval, 0)):
            steps = [base + interval * (k + 1) for k in range(len(before))]
            # (a counter of 0 is the bar's start: a notebook keeps only the bar's first and last state)
            if steps[-1] > c_max or any(c and s > c for s, c in zip(steps, before)):
                continue
            if summary and steps[-1] != c_max // interval * interval:
                continue
            return steps, interval, source
    return None
