"""Run-directory schema v1 (docs/run-directory.md): table names, core column types, and how step rows of
several ranks merge into one row per step.

Core columns never change name or meaning within a schema version; tables may carry more columns
(whatever a training loop logs), which are stored as float64 when numeric. Every part file holds
every core column of its table (null where not given).

Additions to the first design of v1 made by this implementation (all within v1):

- steps: ``n_groups`` (weights ``zero_adv_group_frac`` across ranks), ``advantage_mean`` (makes
  ``cov_mean`` exactly mergeable across ranks), ``hwe_threshold`` (the window entropy used as the
  step's HWE cut-off), ``nonfinite_tokens`` (valid tokens with NaN/inf entropy or log-prob, left
  out of every aggregate; ``n_tokens`` counts the finite ones).
- evals: ``rank``.
- events (a sixth table): what happened to the run while it trained, for the timelines of the
  dashboard and the report. One row per event: ``step``, ``rank``, ``time`` (unix seconds),
  ``kind`` (``flag``: a collapse flag raised live; ``alert``: an alert delivered to a sink;
  ``alert_failed``: a delivery that failed; ``switch``: the loss mode changed; ``stop``: the run
  was stopped on a flag or on a signal, named by ``name``, e.g. ``SIGTERM``;
  ``checkpoint_failed``: a checkpoint that could not be saved, ``message`` says why), ``name``
  (the flag kind, the sink, the new intervention, the signal or the checkpoint folder),
  ``severity`` (flags), ``first_step``/``last_step`` (a flag's step range), ``message`` and
  ``detail`` (JSON text). The training process writes them through its ``Recorder``; a process
  that does not own the run (``entrodiag watch``) writes whole part files of its own with
  ``write_events`` under rank ``OUTSIDE_RANK``.
- run.json: ``heartbeat_interval_s``, ``pid`` and ``host`` of the rank-0 writer (a dead pid on
  the same host means interrupted at once), ``recorder`` (its settings), ``entropy_hist_edges``
  (bins ``[e_i, e_i+1)``, the last edge null = +inf), ``resumed`` (times of resumption),
  and at close ``finished``, ``writer_errors``, ``recorder_errors``, ``dropped_rows``;
  ``failed_checkpoints`` (the built-in trainer: ``[{"step", "error"}]`` of checkpoints that could
  not be saved; the steps themselves are all recorded); ``checkpoint_time`` (the built-in trainer
  and the TRL drop-in: ``estimate_s``, ``bytes`` and ``write_bytes_per_s`` of the start-up estimate,
  ``last_s`` and ``last_step`` of the last checkpoint saved; the stop deadline's budget);
  ``closed_at_exit`` (true when the
  Recorder was closed by its ``atexit`` hook, not by ``close()``).
- run.json ``status``: besides running | finished | failed, ``stopped`` (the trainer stopped on a
  collapse flag, ``--stop-on``, or on SIGTERM/SIGINT; resumable). A Recorder closed at
  interpreter exit is ``finished``, or ``failed`` when the program is ending on an uncaught
  exception.
- run.json ``source``: besides builtin | trl | custom | probe, ``import:<format>`` (runs built by
  ``entrodiag import``) and the names the verl/OpenRLHF snippets pass (``verl``, ``openrlhf``).
- Step columns the built-in trainer logs: ``loss``, ``kl`` (with ``kl_coef``), ``clip_low_frac``,
  ``clip_high_frac``, ``selected_frac`` (share of tokens the intervention acted on), ``grad_norm``,
  ``lr``, ``step_time`` (s), ``entropy_after`` (token-mean entropy of the same batch after the
  update: measured ΔH = entropy_after − entropy_mean). Probes log ``semantic_entropy``.
- Compacted part files (``entrodiag compact``): ``part-r<rank>-<first>-<last>.parquet`` holds the
  rows of that rank's parts ``first``..``last`` of one table, in their order; a reader ignores a
  part whose range lies inside another's (so the merged file replaces the parts it was made
  from the moment it appears, and the old parts can then be deleted).
- Window entropy near the end of a response is the mean over the tokens left in the window;
  HWE positions are those strictly above the threshold (so a flat step has none).
"""

from __future__ import annotations

import re

import pyarrow as pa

SCHEMA = "entrodiag/1"
TABLES = ("steps", "tokens", "samples", "spans", "evals", "events")
#: The part-file rank of events written by a process outside the training ranks (entrodiag watch).
OUTSIDE_RANK = 99999
RUN_JSON = "run.json"

f64, f32, i64, i32 = pa.float64(), pa.float32(), pa.int64(), pa.int32()

#: Step columns and their merge rule across ranks (see ``entrodiag.store.reader``):
#: ``sum``; ``tokens``/``responses``/``groups``: mean weighted by ``n_tokens``/``n_responses``/
#: ``n_groups``; ``std_tokens``/``std_responses``: pooled population std; ``cov``: the covariance
#: of the union of the ranks' tokens; ``hist``: element-wise sum; ``max``; ``mean``: plain mean
#: over the ranks that logged it (the rule for every extra column).
STEP_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "step": (i64, "key"),
    "rank": (i32, "key"),
    "n_tokens": (i64, "sum"),
    "n_responses": (i64, "sum"),
    "n_groups": (i64, "sum"),
    "nonfinite_tokens": (i64, "sum"),
    "entropy_mean": (f64, "tokens"),
    "entropy_seq_mean": (f64, "responses"),
    "entropy_std": (f64, "std_tokens:entropy_mean"),
    "entropy_p50": (f64, "tokens"),
    "entropy_p80": (f64, "tokens"),
    "entropy_p90": (f64, "tokens"),
    "entropy_p99": (f64, "tokens"),
    "entropy_hist": (pa.list_(i64), "hist"),
    "high_entropy_frac": (f64, "tokens"),
    "logprob_mean": (f64, "tokens"),
    "advantage_mean": (f64, "tokens"),
    "cov_mean": (f64, "cov"),
    "cov_pos_frac": (f64, "tokens"),
    "reward_mean": (f64, "responses"),
    "reward_std": (f64, "std_responses:reward_mean"),
    "zero_adv_group_frac": (f64, "groups"),
    "resp_len_mean": (f64, "responses"),
    "hwe_token_frac": (f64, "tokens"),
    "hwe_threshold": (f64, "mean"),
    "entropy_pressure": (f64, "tokens"),
    "wall_time": (f64, "max"),
}

TOKEN_COLUMNS: dict[str, pa.DataType] = {
    "step": i64, "rank": i32, "sample_id": i64, "group_id": i64, "pos": i32, "token_id": i64,
    "token": pa.string(), "entropy": f32, "logprob": f32, "advantage": f32, "cov": f32,
    "s_star": f32, "window_entropy": f32, "is_hwe": pa.bool_(), "is_forking": pa.bool_(),
}

SAMPLE_COLUMNS: dict[str, pa.DataType] = {
    "step": i64, "rank": i32, "sample_id": i64, "group_id": i64, "prompt_id": i64,
    "prompt": pa.string(), "response": pa.string(), "reward": f64, "advantage": f64,
    "length": i64, "entropy_mean": f64,
}

SPAN_COLUMNS: dict[str, pa.DataType] = {
    "step": i64, "rank": i32, "sample_id": i64, "start": i32, "end": i32,
    "mean_window_entropy": f64, "max_entropy": f64, "text": pa.string(),
}

EVAL_COLUMNS: dict[str, pa.DataType] = {
    "step": i64, "rank": i32, "name": pa.string(), "value": f64, "n": i64,
}

EVENT_COLUMNS: dict[str, pa.DataType] = {
    "step": i64, "rank": i32, "time": f64, "kind": pa.string(), "name": pa.string(),
    "severity": pa.string(), "first_step": i64, "last_step": i64, "message": pa.string(),
    "detail": pa.string(),
}
EVENT_KINDS = ("flag", "alert", "alert_failed", "switch", "stop", "checkpoint_failed")

CORE_TYPES: dict[str, dict[str, pa.DataType]] = {
    "steps": {name: dtype for name, (dtype, _) in STEP_COLUMNS.items()},
    "tokens": TOKEN_COLUMNS,
    "samples": SAMPLE_COLUMNS,
    "spans": SPAN_COLUMNS,
    "evals": EVAL_COLUMNS,
    "events": EVENT_COLUMNS,
}


def part_name(rank: int, seq: int) -> str:
    """File name of a completed part file."""
    return f"part-r{rank:05d}-{seq:06d}.parquet"


def compacted_name(rank: int, first: int, last: int) -> str:
    """File name of a compacted part file: the rows of the parts ``first``..``last`` of ``rank``
    (``entrodiag compact``). A reader ignores every part of the same table and rank whose sequence
    range lies inside it (see ``parse_part_name``)."""
    return f"part-r{rank:05d}-{first:06d}-{last:06d}.parquet"


_PART_RE = re.compile(r"part-r(\d+)-(\d+)(?:-(\d+))?\.parquet")


def parse_part_name(name: str) -> tuple[int, int, int] | None:
    """``(rank, first, last)`` of a completed part file's name (``first == last`` for a plain part),
    or ``None`` for any other name (temporary files, foreign files)."""
    m = _PART_RE.fullmatch(name)
    if not m:
        return None
    rank, first = int(m[1]), int(m[2])
    last = int(m[3]) if m[3] is not None else first
    return (rank, first, last) if last >= first else None


PART_GLOB = "part-r*-*.parquet"


# ------------------------------------------------------------------------- reading parts' schemas
def _kind(t: pa.DataType) -> str:
    """The family of a type: parts whose column is of one family read into one type."""
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_kind(t.value_type)}>"
    return str(t)


def _fits(kind: str, into: str) -> bool:
    """Whether a column of family ``kind`` reads losslessly as family ``into`` (null reads as
    anything; integers widen to floats; never the other way)."""
    return kind in ("null", into) or (kind == "integer" and into == "float")


def _shown(t: pa.DataType) -> str:
    return str(t).replace("large_string", "string").replace("large_list", "list")


def _widest(types: list[pa.DataType]) -> pa.DataType:
    fields = [pa.schema([("x", t)]) for t in types]
    try:
        return pa.unify_schemas(fields, promote_options="permissive").field("x").type
    except (pa.ArrowTypeError, pa.ArrowInvalid, NotImplementedError):
        return types[0]


def table_schema(table: str, found: list[pa.Schema],
                 rows: list[int] | None = None) -> tuple[pa.Schema, dict[int, str]]:
    """The schema a table is read with, from the schemas of its parts (``found``, with their row
    counts ``rows``), and the parts that cannot be read with it: ``{index in found: why}``.

    Each column gets one type. A core column (``CORE_TYPES``) keeps its family: a part whose
    column is of another family (``entropy_mean`` or ``step`` as text, ``step`` as a float) does
    not fit and is left out (schema drift is damage); within the family the widest type wins
    (``int32`` and ``int64`` read as ``int64``, ``float32`` and ``float64`` as ``float64``) and
    integers read as floats (a float column stored as ``int64`` by one part is read, not left
    out). A column the writer does not know takes the family most rows have (integers and
    floats together), and the parts of other families are left out. An all-null column fits
    every type.
    """
    rows = rows if rows is not None else [1] * len(found)
    # Parts written by one writer share a schema: decide once per distinct schema (its parts' rows
    # pooled), then give each part its schema's verdict (1,000 runs of 50 parts: 50,000 -> 1,000).
    # Grouped by the schema itself: equal schemas have equal names and types (metadata aside, which
    # can split one schema into two groups: the same verdict, decided twice).
    groups: dict[pa.Schema, int] = {}
    unique: list[pa.Schema] = []
    weights: list[int] = []
    members: list[list[int]] = []
    for i, s in enumerate(found):
        g = groups.setdefault(s, len(unique))
        if g == len(unique):
            unique.append(s)
            weights.append(0)
            members.append([])
        weights[g] += max(rows[i], 1)
        members[g].append(i)
    schema, bad = _unique_table_schema(table, unique, weights)
    # in the order a part-by-part pass finds them: by column, then by part
    order = sorted((col, i, why) for g, (col, why) in bad.items() for i in members[g])
    return schema, {i: why for _, i, why in order}


def _unique_table_schema(table: str, found: list[pa.Schema],
                         rows: list[int]) -> tuple[pa.Schema, dict[int, tuple[int, str]]]:
    core = CORE_TYPES.get(table, {})
    names = list(dict.fromkeys(name for s in found for name in s.names))
    fields, bad = [], {}
    for col, name in enumerate(names):
        seen = [(i, s.field(name).type) for i, s in enumerate(found) if name in s.names]
        if name in core:
            into, base = _kind(core[name]), [core[name]]
        else:
            votes: dict[str, int] = {}
            for i, t in seen:
                family = "number" if _kind(t) in ("integer", "float") else _kind(t)
                if family != "null":
                    votes[family] = votes.get(family, 0) + max(rows[i], 1)
            into, base = (max(votes, key=votes.get) if votes else "null"), []
            if into == "number":
                into = "float" if any(_kind(t) == "float" for _, t in seen) else "integer"
        fit = [t for i, t in seen if _fits(_kind(t), into)]
        dtype = _widest(base + fit) if base + fit else pa.null()
        for i, t in seen:
            if not _fits(_kind(t), into) and i not in bad:
                bad[i] = (col, f"column {name!r} is {_shown(t)} where the table's is {_shown(dtype)} (schema drift)")
        fields.append(pa.field(name, dtype))
    return pa.schema(fields), bad
