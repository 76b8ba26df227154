"""``Recorder``: from a training loop's tensors to a run directory.

``record_batch`` validates its inputs (bad shapes raise at once), computes every per-step
aggregate of docs/run-directory.md on the tensors' own device over all valid tokens, picks a sample of
responses for token/sample/span rows, and hands the small results to the writer thread, which
moves them to the host, decodes text and writes Parquet. The training loop never waits for disk
and, on a GPU, never synchronises with the device (copies go to pinned memory behind a CUDA
event). Errors after the first call are logged and counted (``errors``), never raised. The writer
thread's side, from host tensors to rows, is :mod:`entrodiag.hooks.batch_rows`.
"""

from __future__ import annotations

import atexit
import logging
import math
import random
import sys
import time
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..metrics import (
    DEFAULT_HIST_EDGES,
    HIGH_ENTROPY_THRESHOLD,
    entropy_and_logprobs,
    entropy_discriminator,
    entropy_histogram,
    hwe_mask,
    masked_quantiles,
    per_token,
    token_covariance,
    window_entropy,
)
from ..sinks import SinkSet, TrackerSink
from ..sinks.outlook import outlook_values, run_outlook
from ..store.writer import Batch, RunWriter, event_row
from .batch_rows import QUANTILES, HostCopy, Scalars, finite_or_none, sample_rows, step_row

log = logging.getLogger("entrodiag")


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Recorder:
    """Records per-token entropy dynamics of a training loop into a run directory.

    Args:
        run_dir: the run directory to create (``resume=True`` appends to an existing one): a
            local path or an object-store URL (``s3://bucket/runs/a``, ``gs://...``,
            ``file://...``; credentials and endpoint from the standard environment). On an object
            store each part file is one whole object, written once (``entrodiag.store.writer``).
        config: free dict stored in run.json (the loop's hyper-parameters).
        source: ``builtin`` | ``trl`` | ``custom`` | ``probe``.
        token_sample: responses per step (and rank) whose token, sample and span rows are kept:
            an int count, a float fraction in (0, 1], or ``"all"``. Step aggregates always use
            every valid token.
        tokenizer: anything with ``decode(list[int]) -> str``; token and response text is
            decoded on the writer thread.
        hwe_window: window length w of window entropy (ARES: 4).
        hwe_threshold: window entropy above which a position is HWE; ``None`` = the step's 95th
            percentile.
        forking_quantile: tokens at or above this entropy quantile of the step fork (0.8).
        high_entropy_threshold: the ``high_entropy_frac`` cut-off in nats (0.672).
        hist_edges: fixed entropy-histogram bin edges in nats (stored in run.json).
        entropy_temperature: temperature applied to logits before the entropy (record which).
        rank, world_size: default from ``torch.distributed`` when initialised, else 0 and 1.
        seed: seeds the choice of sampled responses (reproducible per step and rank).
        flush_rows, flush_interval_s, heartbeat_s: writer settings (rows, seconds, seconds).
        sinks: trackers that also get rank 0's step numbers, events and outlook (``entrodiag.sinks``):
            ``"wandb"``, ``"tensorboard"``, ``"mlflow"``, ``"trackio"`` (or a comma list) or ``TrackerSink``
            objects, joining the user's open run; on the writer thread, failures logged and counted.
        **meta: more run.json fields (``model``, ``task``, ``intervention``, ...).

    Example:
        >>> with Recorder("runs/my-run", config={"lr": 1e-6}) as rec:   # doctest: +SKIP
        ...     rec.record_batch(step, token_ids=ids, response_mask=mask, logits=logits,
        ...                      advantages=adv, rewards=rewards, group_ids=groups)
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        config: dict | None = None,
        source: str = "custom",
        token_sample: int | float | str = 8,
        tokenizer: Any = None,
        hwe_window: int = 4,
        hwe_threshold: float | None = None,
        forking_quantile: float = 0.8,
        high_entropy_threshold: float = HIGH_ENTROPY_THRESHOLD,
        hist_edges: Sequence[float] = DEFAULT_HIST_EDGES,
        entropy_temperature: float = 1.0,
        rank: int | None = None,
        world_size: int | None = None,
        resume: bool = False,
        seed: int = 0,
        flush_rows: int = 100_000,
        flush_interval_s: float = 30.0,
        heartbeat_s: float = 10.0,
        sinks: str | Sequence[str | TrackerSink] = (),
        **meta: Any,
    ) -> None:
        if isinstance(token_sample, str):
            if token_sample != "all":
                raise ValueError(f"token_sample must be an int, a fraction or 'all', got {token_sample!r}")
        elif isinstance(token_sample, float) and not 0 < token_sample <= 1:
            raise ValueError(f"a fractional token_sample must lie in (0, 1], got {token_sample}")
        elif isinstance(token_sample, int) and token_sample < 0:
            raise ValueError(f"token_sample must be >= 0, got {token_sample}")
        if hwe_window < 1:
            raise ValueError(f"hwe_window must be >= 1, got {hwe_window}")
        if not 0 < forking_quantile < 1:
            raise ValueError(f"forking_quantile must lie in (0, 1), got {forking_quantile}")
        edges = [float(e) for e in hist_edges]
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError("hist_edges must hold at least two increasing values")
        d_rank, d_world = _dist_rank_world()
        self.rank = d_rank if rank is None else int(rank)
        self.world_size = d_world if world_size is None else int(world_size)
        self.token_sample = token_sample
        self.tokenizer = tokenizer
        self.hwe_window = int(hwe_window)
        self.hwe_threshold = hwe_threshold
        self.forking_quantile = float(forking_quantile)
        self.high_entropy_threshold = float(high_entropy_threshold)
        self.hist_edges = edges
        self.entropy_temperature = float(entropy_temperature)
        self.seed = seed
        self._errors = 0
        self._calls = 0
        self._last_step: int | None = None
        self._token_text: dict[int, str] = {}
        run_meta = {
            "source": source,
            "config": config or {},
            "model": meta.pop("model", None),
            "task": meta.pop("task", None),
            "intervention": meta.pop("intervention", None),
            "entropy_temperature": self.entropy_temperature,
            "world_size": self.world_size,
            "entrodiag_version": __version__,
            "recorder": {
                "token_sample": token_sample,
                "hwe_window": self.hwe_window,
                "hwe_threshold": hwe_threshold,
                "forking_quantile": self.forking_quantile,
                "high_entropy_threshold": self.high_entropy_threshold,
            },
            # bins [e_i, e_{i+1}); null stands for +inf
            "entropy_hist_edges": [e if math.isfinite(e) else None for e in edges],
            **meta,
        }
        self.sinks = SinkSet(sinks if self.rank == 0 else ())  # an unknown or missing tracker fails here
        self.writer = RunWriter(
            run_dir, rank=self.rank, meta=run_meta, resume=resume, flush_rows=flush_rows,
            flush_interval_s=flush_interval_s, heartbeat_s=heartbeat_s,
        )
        self.path = self.writer.path
        local = self.writer.location.local_path if self.writer.location.is_local else None
        self.sinks.start({**run_meta, "local_dir": local, "run_id": run_meta.get("run_id") or (
            local.resolve().name if local else self.writer.location.name)})
        # closes the run at interpreter exit if close() was forgotten; a weak reference, so that
        # it does not keep the Recorder alive (registered after the writer's: it runs first)
        ref = weakref.ref(self)
        self._atexit = lambda: (r := ref()) is not None and r._close_at_exit()
        atexit.register(self._atexit)

    # ------------------------------------------------------------------------------ public
    @property
    def errors(self) -> int:
        """Failures logged and swallowed so far (recorder computation, writer thread, sinks)."""
        return self._errors + self.writer.errors + self.sinks.error_count

    def record_batch(
        self,
        step: int,
        *,
        token_ids: torch.Tensor,
        response_mask: torch.Tensor,
        advantages: torch.Tensor,
        logits: torch.Tensor | None = None,
        entropy: torch.Tensor | None = None,
        logprobs: torch.Tensor | None = None,
        rewards: torch.Tensor | None = None,
        group_ids: torch.Tensor | None = None,
        texts: Sequence[str] | None = None,
        prompts: Sequence[str] | None = None,
        prompt_ids: torch.Tensor | None = None,
        **scalars: float | torch.Tensor,
    ) -> None:
        """Record one step's rollout batch (call once per step and rank, with the whole batch).

        Args:
            step: the training step.
            token_ids: response token ids ``[B, T]``.
            response_mask: ``[B, T]``, true (or 1) at valid response tokens.
            advantages: per response ``[B]`` or per token ``[B, T]``.
            logits: ``[B, T, V]``, aligned so that ``logits[b, t]`` produced ``token_ids[b, t]``;
                or give ``entropy`` (and ``logprobs``) ``[B, T]`` computed elsewhere instead.
            rewards: ``[B]``; group_ids: ``[B]`` (the responses of one group share an id,
                unique within the step: a prompt drawn twice is two groups).
            texts: ``B`` decoded responses (else decoded with the tokenizer, when given).
            prompts: ``B`` prompt strings; prompt_ids: ``[B]``.
            **scalars: more step columns (``loss``, ``kl``, ``lr``, ...), numbers or 0-d tensors.

        Raises:
            ValueError: on missing, mismatched or wrongly typed inputs, naming the argument.
        """
        args = (token_ids, response_mask, advantages, logits, entropy, logprobs, rewards, group_ids,
                texts, prompts, prompt_ids)
        self._validate(step, *args)
        extra = Scalars(scalars)
        if self._last_step == step:
            warnings.warn(
                f"record_batch called twice for step {step}: the step row keeps the last call; "
                "pass the whole rollout batch once per step", stacklevel=2,
            )
        self._last_step = step
        try:
            work = self._compute(step, *args, extra)
        except Exception:
            if self._calls == 0:
                raise
            self._errors += 1
            log.exception("entrodiag: record_batch failed at step %s; the step is not recorded", step)
            return
        finally:
            self._calls += 1
        self.writer.submit(work)

    def log_scalars(self, step: int, **values: float | torch.Tensor) -> None:
        """Add columns to the step row of ``step`` (``loss=..., kl=..., lr=...``)."""
        if not values:
            return
        extra = Scalars(values)

        def work() -> Batch:
            row = extra.row()
            self.sinks.step(int(step), row)
            return [("steps", {"step": [int(step)], "rank": [self.rank], **{k: [v] for k, v in row.items()}})]
        self.writer.submit(work)

    def log_eval(self, step: int, name: str, value: float, n: int | None = None) -> None:
        """Log an evaluation metric (e.g. ``val/accuracy``): R of the entropy law."""
        self.writer.append(
            "evals",
            {"step": [int(step)], "rank": [self.rank], "name": [str(name)],
             "value": [finite_or_none(value)],
             "n": [None if n is None else int(n)]},
        )

    def log_event(
        self, step: int, kind: str, name: str, *, severity: str | None = None,
        first_step: int | None = None, last_step: int | None = None, message: str = "",
        detail: dict | None = None,
    ) -> None:
        """Record an event in the run's ``events`` table: ``kind`` is ``flag``, ``alert``,
        ``alert_failed``, ``switch`` (``name`` = the new intervention) or ``stop``."""
        row = event_row(step, kind, name, rank=self.rank, severity=severity, first_step=first_step,
                        last_step=last_step, message=message, detail=detail)
        if not self.sinks:
            self.writer.append("events", row)
            return
        self.writer.submit(lambda: self.sinks.event(step, kind, name, severity, message) or [("events", row)])

    def log_outlook(self, step: int, status: Any) -> None:
        """Send the entropy law's ceiling and forecast of a ``WatchStatus`` to the sinks, where
        they changed (``entrodiag/outlook/*``); the run directory is unchanged."""
        if self.sinks:
            values = outlook_values(status)
            self.writer.submit(lambda: self.sinks.outlook(step, values) or [])

    def update_meta(self, **fields: Any) -> None:
        """Merge ``fields`` into run.json (written by rank 0's writer thread; a no-op elsewhere)."""
        self.writer.update_meta(**fields)

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Write everything recorded so far (blocks until done or ``timeout``)."""
        return self.writer.flush(timeout)

    def close(self, status: str = "finished") -> None:
        """Flush, stop the writer thread and mark the run ``status`` in run.json.

        A Recorder that is never closed is closed at interpreter exit (``atexit``): ``finished``,
        or ``failed`` when the program ends on an uncaught exception, with ``closed_at_exit`` in
        run.json. A process killed without running ``atexit`` (SIGKILL, ``os._exit``, a Ray actor
        killed with ``ray.kill``) leaves the run ``running`` until its heartbeat goes stale, when
        readers call it ``interrupted``: call ``close()`` yourself on such a process's way out.
        """
        atexit.unregister(self._atexit)
        self.writer.close(status, recorder_errors=self._errors, **self._close_sinks(status))

    def _close_at_exit(self) -> None:
        failed = getattr(sys, "last_value", None) is not None  # set when an uncaught exception was printed
        try:
            status = "failed" if failed else "finished"
            self.writer.close(status, recorder_errors=self._errors, closed_at_exit=True, **self._close_sinks(status))
        except Exception:  # never raise at exit
            log.exception("entrodiag: closing the run %s at exit failed", self.path)

    def _close_sinks(self, status: str) -> dict:
        """Send the outlook of the whole run, close the sinks (waiting a bounded time); their error
        counts for run.json, read after the close so that its own failures are counted."""
        if not self.sinks:
            return {}
        self.writer.flush()  # every sink call of the writer thread is queued by now
        step, values = run_outlook(self.path)
        if step is not None:
            self.sinks.outlook(step, values)
        self.sinks.close(status)
        return {"sink_errors": dict(self.sinks.errors)}

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("failed" if exc_type is not None else "finished")

    # ------------------------------------------------------------------------- internals
    def _validate(self, step, token_ids, response_mask, advantages, logits, entropy, logprobs,
                  rewards, group_ids, texts, prompts, prompt_ids) -> None:
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"step must be an int, got {type(step).__name__}")
        _tensor("token_ids", token_ids)
        if token_ids.ndim != 2:
            raise ValueError(f"token_ids must be [B, T], got shape {tuple(token_ids.shape)}")
        if token_ids.is_floating_point() or token_ids.dtype == torch.bool:
            raise ValueError(f"token_ids must be an integer tensor, got dtype {token_ids.dtype}")
        shape = tuple(token_ids.shape)
        device = token_ids.device
        _tensor("response_mask", response_mask, shape, device)
        if response_mask.is_floating_point():
            raise ValueError(f"response_mask must be bool or integer 0/1, got dtype {response_mask.dtype}")
        if (logits is None) == (entropy is None):
            raise ValueError("give either logits [B, T, V] or entropy [B, T] (with logprobs), not both or neither")
        if logits is not None:
            _tensor("logits", logits, device=device, floating=True)
            if logits.ndim != 3 or tuple(logits.shape[:2]) != shape:
                raise ValueError(
                    f"logits must be [B, T, V] matching token_ids [B, T]: logits is "
                    f"{tuple(logits.shape)}, token_ids is {shape}"
                )
            if logits.shape[2] < 1:
                raise ValueError("logits has an empty vocabulary dimension")
        else:
            _tensor("entropy", entropy, shape, device, floating=True)
            if logprobs is not None:
                _tensor("logprobs", logprobs, shape, device, floating=True)
        _tensor("advantages", advantages, device=device, floating=True)
        if tuple(advantages.shape) not in (shape, shape[:1]):
            raise ValueError(
                f"advantages must be per response {shape[:1]} or per token {shape}, got "
                f"{tuple(advantages.shape)}"
            )
        if rewards is not None:
            _tensor("rewards", rewards, shape[:1], floating=None)
        for name, ids in (("group_ids", group_ids), ("prompt_ids", prompt_ids)):
            if ids is not None:
                _tensor(name, ids, shape[:1])
                if ids.is_floating_point():
                    raise ValueError(f"{name} must be an integer tensor, got dtype {ids.dtype}")
        for name, strings in (("texts", texts), ("prompts", prompts)):
            if strings is not None and len(strings) != shape[0]:
                raise ValueError(f"{name} must hold one string per response: {len(strings)} for B={shape[0]}")

    @torch.no_grad()
    def _compute(self, step, token_ids, response_mask, advantages, logits, entropy, logprobs,
                 rewards, group_ids, texts, prompts, prompt_ids, extra: Scalars):
        wall = time.time()
        mask = response_mask.bool()
        if logits is not None:
            h, lp = entropy_and_logprobs(
                logits.detach(), torch.where(mask, token_ids, 0), temperature=self.entropy_temperature
            )
        else:
            h = entropy.detach().float()
            lp = None if logprobs is None else logprobs.detach().float()
        finite = torch.isfinite(h) if lp is None else torch.isfinite(h) & torch.isfinite(lp)
        valid = mask & finite
        n = valid.sum()
        hv = torch.where(valid, h, 0.0)
        h_sum = hv.double().sum()
        mean_h = (h_sum / n.clamp(min=1)).float()
        adv = per_token(advantages.detach(), h, "advantages").float()
        adv_v = torch.where(valid, adv, 0.0)
        nan = torch.tensor(torch.nan, device=h.device)
        if lp is not None:
            cov, cov_mean = token_covariance(lp, adv, valid)
            s_star = entropy_discriminator(h, lp)
            pressure = torch.where(valid, -adv * s_star, 0.0).sum()
            lp_sum = torch.where(valid, lp, 0.0).sum()
            cov_pos = (valid & (cov > 0)).sum()
        else:
            cov = s_star = None
            cov_mean = pressure = lp_sum = cov_pos = nan
        q = masked_quantiles(h, valid, (*QUANTILES, self.forking_quantile))
        is_forking = valid & (h >= q[-1])
        win = window_entropy(h, valid, self.hwe_window)
        is_hwe, hwe_thr = hwe_mask(win, valid, self.hwe_threshold)
        scal = torch.stack([
            n.double(), (mask & ~finite).sum().double(), h_sum,
            (torch.where(valid, h - mean_h, 0.0).double() ** 2).sum(), lp_sum.double(),
            adv_v.double().sum(), cov_mean.double(), torch.as_tensor(cov_pos).double(),
            (valid & (h > self.high_entropy_threshold)).sum().double(), is_hwe.sum().double(),
            hwe_thr.double(), pressure.double(), *q[: len(QUANTILES)].double(),
        ])
        pick = self._choose(step, token_ids.shape[0])
        row_len = mask.sum(-1)
        to_host = {
            "scalars": scal,
            "hist": entropy_histogram(h, valid, self.hist_edges),
            "row_len": row_len,
            "row_valid": valid.sum(-1),
            "row_hsum": hv.sum(-1),
            "row_adv": advantages.detach().to(torch.float64, copy=True) if advantages.ndim == 1
            else (adv.double() * mask).sum(-1) / row_len.clamp(min=1),
        }
        if rewards is not None:
            to_host["rewards"] = rewards.detach().to(torch.float64, copy=True)
        if group_ids is not None:
            to_host["group_ids"] = group_ids.detach().clone()
        if prompt_ids is not None:
            to_host["prompt_ids"] = prompt_ids.detach().clone()
        if pick:
            idx = torch.tensor(pick, device=h.device)
            zeros = torch.zeros_like(h)
            per_tok = (h, zeros if lp is None else lp, adv, zeros if cov is None else cov,
                       zeros if s_star is None else s_star, win)
            to_host.update(
                tok_float=torch.stack([x.index_select(0, idx) for x in per_tok]),
                tok_ids=token_ids.index_select(0, idx),
                tok_mask=mask.index_select(0, idx), tok_valid=valid.index_select(0, idx),
                tok_hwe=is_hwe.index_select(0, idx), tok_fork=is_forking.index_select(0, idx),
            )
        host = HostCopy(to_host)
        texts = None if texts is None else list(texts)
        prompts = None if prompts is None else list(prompts)
        has_lp = lp is not None
        return lambda: self._rows(step, wall, host.get(), pick, extra, texts, prompts, has_lp)

    def _choose(self, step: int, batch: int) -> list[int]:
        ts = self.token_sample
        k = batch if ts == "all" else math.ceil(ts * batch) if isinstance(ts, float) else min(ts, batch)
        if k >= batch:
            return list(range(batch))
        return sorted(random.Random(f"{self.seed}-{step}-{self.rank}").sample(range(batch), k))

    # --------------------------------------------------------------- writer thread only
    def _rows(self, step, wall, t, pick, extra, texts, prompts, has_lp) -> Batch:
        row = step_row(step, self.rank, wall, t, extra, has_lp)
        self.sinks.step(step, row)
        out: Batch = [("steps", {k: [v] for k, v in row.items()})]
        if pick:
            try:
                out += sample_rows(step, self.rank, t, pick, texts, prompts, has_lp, self._decode,
                                   self._decode_each)
            except Exception:  # keep the step row even if decoding or a token row fails
                self._errors += 1
                log.exception("entrodiag: token/sample rows of step %s failed; step row kept", step)
        return out

    def _decode(self, ids: list[int]) -> str | None:
        if self.tokenizer is None:
            return None
        return self.tokenizer.decode(ids)

    def _decode_each(self, ids: list[int]) -> list[str | None]:
        if self.tokenizer is None:
            return [None] * len(ids)
        cache = self._token_text
        for i in set(ids) - cache.keys():
            cache[i] = self.tokenizer.decode([i])
        return [cache[i] for i in ids]


def _tensor(name, t, shape=None, device=None, floating: bool | None = False) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (from token_ids), got {tuple(t.shape)}")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but token_ids is on {device}")
    if floating and not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
