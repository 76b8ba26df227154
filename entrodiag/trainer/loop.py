"""The GRPO training loop: rollout, group advantages, policy-loss mode, update, record.

One step: each rank samples its share of ``prompts_per_step`` prompts, G responses each (KV cache,
keeping the sampling log-probs and entropies), scores them, normalises rewards within each group,
then takes ``epochs`` optimizer passes over the batch on the objective ``losses.compose`` builds
(the chosen loss mode, the entropy controller's knobs, the reference KL). The Recorder always records the step; evaluation (sampled and greedy held-out accuracy, R of the
entropy law) runs before the update of every ``eval_every``-th step and of the last one, so each
evaluation pairs with the entropy of the policy that was evaluated.

Every random draw of a step comes from a generator seeded by (seed, step, rank), so a run resumed
from a checkpoint continues exactly as it would have (``runtime.step_seed``). The stop deadline's
checks (``deadline.DeadlineChecks``) and the watch of the run's own collapse flags
(``watching.CollapseWatch``) are parts of ``Trainer`` kept in their own modules.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..hooks.recorder import Recorder
from ..hooks.signals import GracefulStop, StepAbandoned, TrainingStopped, signal_name
from ..metrics import group_advantages
from ..store.location import LocationError, check_store, locate, run_path
from ..store.truncate import truncate_run
from ..store.writer import RunExistsError, RunInUseError, check_no_live_writer
from ..hooks.checkpoint_time import state_bytes, write_speed
from .checkpoint import (checkpoint_dir, list_checkpoints, load_trainer_state, local_policy,
                         resume_config, save_checkpoint)
from .config import TrainConfig
from .controllers import Knobs, from_config
from .deadline import DeadlineChecks, Snapshot
from .chunked_head import linear_head
from .forward import response_entropy, response_logp
from .hf_models import ModelFetchError, is_named
from .losses import PolicyBatch, compose
from .model import load_policy, n_params
from .mutual_info import step_mi  # before the update: the MI proxy of the policy that sampled
from .rollout import Prompts, decode_responses, encode_prompts, generate, score
from .runtime import TrainingError, adamw, cpu_has_bf16, pick_device, setup_distributed, step_seed, sum_over
from .tasks import make_task
from .warmstart import tiny_policy
from .watching import CollapseWatch, WatchDecision

__all__ = ["Trainer", "TrainingError", "TrainingStopped", "resume_config", "train"]  # the last three re-exported


class Trainer(DeadlineChecks, CollapseWatch):
    """Holds the state of one run; :meth:`run` trains it to ``cfg.steps``."""

    def __init__(self, cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
                 log=print, handle_signals: bool = True) -> None:
        self.cfg, self.progress = cfg, progress
        self.out: Path | str = run_path(out)  # a local folder, or an object-store URL (s3://, gs://)
        self.handle_signals = handle_signals
        self.failed_checkpoints: list[dict] = []
        self.device = pick_device(cfg)
        self.rank, self.world = setup_distributed(self.device)
        self.log = log if self.rank == 0 else (lambda *a, **k: None)
        try:
            taken = check_store(self.out).child("run.json").exists()
        except LocationError as e:
            raise TrainingError(str(e)) from None
        if not resume and taken:
            raise TrainingError(f"{self.out} already holds a run: pass a new --out, or --resume {self.out}")
        if resume and self.rank == 0:  # before loading anything: a live trainer keeps its run
            self._refuse_live_writer()
        if cfg.prompts_per_step % self.world:
            raise TrainingError(f"prompts_per_step ({cfg.prompts_per_step}) must divide among {self.world} ranks")
        if self.device.type == "cuda":
            self.autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        elif cfg.cpu_bf16 and cpu_has_bf16():
            self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            if cfg.cpu_bf16:
                self.log("cpu_bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); training in fp32")
            self.autocast = contextlib.nullcontext()
        torch.manual_seed(cfg.seed)
        self.task = make_task(cfg.task, cfg.val_size, cfg.seed)
        self.start = 0
        ckpt = None
        if resume:
            found = list_checkpoints(self.out)
            if not found:
                raise TrainingError(f"{self.out} has no complete checkpoint to resume from")
            self.start, ckpt = found[-1][0] + 1, found[-1][1]
            with local_policy(ckpt) as folder:
                self.model, self.tok = self._load(folder)
        elif cfg.model == "tiny":
            if self.rank != 0:  # rank 0 trains (or finds) the cached warm start; the others read it
                torch.distributed.barrier()
            self.model, self.tok = tiny_policy(cfg, self.task, log=self.log)
            if self.rank == 0 and self.world > 1:
                torch.distributed.barrier()
        else:
            self.model, self.tok = self._load(cfg.model)
        self.model.to(self.device)
        if cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.config.use_cache = True
        shown = cfg.prompt_template.replace
        self.train_prompts = encode_prompts(self.tok, [shown("{prompt}", p) for p in self.task.train_prompts])
        self.val_prompts = encode_prompts(self.tok, [shown("{prompt}", p) for p in self.task.val_prompts])
        # a plain linear output head: log-probs and entropy from the hidden states, never the whole logits
        self.head = linear_head(self.model, self.train_prompts.ids[:1].to(self.device))
        self.ref = self.ref_head = None
        if cfg.kl_coef > 0:  # a frozen copy of the initial policy
            ref = tiny_policy(cfg, self.task, log=self.log)[0] if cfg.model == "tiny" else self._load(cfg.model)[0]
            self.ref = ref.to(self.device).eval().requires_grad_(False)
            self.ref_head = None if self.head is None else self.ref.get_output_embeddings().weight
        self.policy = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.policy = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.opt = adamw(list(self.model.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warm = max(cfg.warmup_steps, 0)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        self.intervention = cfg.intervention  # the loss mode in use: --on-collapse may switch it
        self.control = from_config(cfg)  # the entropy controller: --on-collapse may switch one on
        if ckpt is not None:
            state = load_trainer_state(ckpt)
            self.intervention = state.get("intervention") or cfg.intervention
            if state.get("control"):
                self.control = from_config(cfg, state["control"]["mode"])
                self.control.load_state_dict(state["control"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            if self.rank == 0:
                self._refuse_live_writer()  # again: it may have started while this one loaded
                removed = truncate_run(self.out, self.start - 1)
                self.log(f"resuming {self.out} at step {self.start} from {ckpt.name}"
                         + (f"; dropped {removed} rows recorded after it" if removed else ""))
            if self.world > 1:
                torch.distributed.barrier()
        model_name = "tiny-llama-2x64" if cfg.model == "tiny" else Path(cfg.model).name.removesuffix(".gguf")
        try:
            self.rec = Recorder(
                self.out, config=cfg.to_dict(), source="builtin", tokenizer=self.tok, token_sample=cfg.token_sample,
                entropy_temperature=cfg.entropy_temperature, seed=cfg.seed, resume=resume,
                model=model_name, task=self.task.name, intervention=self.intervention,
                n_params=n_params(self.model), device=str(self.device), sinks=cfg.log_to,
            )
        except RunInUseError as e:  # --resume: another writer took the run over meanwhile
            raise TrainingError(str(e)) from None
        except RunExistsError:  # two trainers on one --out: the other claimed it while this one loaded
            raise TrainingError(f"{self.out} already holds a run: another trainer started writing it while this "
                                "one was loading its model; pass a new --out") from None
        self.watching = bool(cfg.stop_on or cfg.on_collapse or cfg.alerts)
        self.watcher = None
        if self.rank == 0 and self.watching:
            from ..watch import Watcher, load_alert_config

            try:
                alerts = load_alert_config(cfg.alerts) if cfg.alerts else None
            except ValueError as e:
                self.rec.close("failed")
                raise TrainingError(f"alerts: {e}") from None
            self.watcher = Watcher(self.out, events=self.rec.log_event, alerts=alerts, source="trainer")
            if resume:  # flags raised before the checkpoint are not new (no second stop, switch or alert)
                self.watcher.poll(emit=False)
        if resume and self.rank == 0:  # failures of checkpoints before the resume point stay on record
            earlier = json.loads(locate(self.out).child("run.json").read_text()).get("failed_checkpoints") or []
            self.failed_checkpoints = [f for f in earlier if isinstance(f, dict) and f.get("step", 0) < self.start]
        # the stop deadline (trainer/deadline.py): what a checkpoint takes, a snapshot for multi-epoch updates
        self._stop: GracefulStop | None = None
        self._step_started: float | None = None  # perf_counter() at the start of the step in progress
        self._last_step_s: float | None = None  # the last finished step's duration in this process
        self.snapshot = Snapshot() if cfg.epochs > 1 and handle_signals else None
        self._bar = None  # the progress bar while run() runs
        self._entropy_after_s = 0.0  # the last measured entropy_after()
        self.checkpoint_time: dict[str, Any] = {}
        self.checkpoint_seconds = 0.0  # the last measured checkpoint, else the start-up estimate (rank 0)
        if self.rank == 0:
            self._estimate_checkpoint()

    def _refuse_live_writer(self) -> None:
        """``TrainingError`` (one line) when another writer is still live on the run to resume."""
        try:
            check_no_live_writer(self.out)
        except RunInUseError as e:
            raise TrainingError(str(e)) from None

    def _load(self, path):
        """A policy from a checkpoint, a model folder, a GGUF file or a named model (rank 0 fetches
        and converts a named model first; the others wait, then read the cache)."""
        cfg = self.cfg
        if is_named(str(path)) and self.world > 1 and self.rank != 0:
            torch.distributed.barrier()
        try:
            loaded = load_policy(path, prompt_format=cfg.prompt_format, system_prompt=cfg.system_prompt,
                                 log=self.log)
        except ModelFetchError as e:
            raise TrainingError(str(e)) from None
        if is_named(str(path)) and self.world > 1 and self.rank == 0:
            torch.distributed.barrier()
        return loaded

    # --- one step -------------------------------------------------------------------------
    def rollout(self, step: int):
        cfg = self.cfg
        gen = torch.Generator(self.device).manual_seed(step_seed(cfg.seed, step, self.rank))
        per_rank = cfg.prompts_per_step // self.world
        idx = torch.randint(len(self.task.train_prompts), (per_rank,), generator=gen, device=self.device).cpu()
        idx = idx.repeat_interleave(cfg.group_size)
        prompts = self.train_prompts.take(idx).to(self.device)
        self.model.eval()
        with self.autocast:
            roll = generate(self.model, prompts, cfg.max_new_tokens, self.tok.eos_token_id, self.tok.pad_token_id,
                            temperature=cfg.temperature, entropy_temperature=cfg.entropy_temperature, generator=gen,
                            between_tokens=self._local_check)
        texts = decode_responses(self.tok, roll)
        rewards = score(self.task, texts, [self.task.train_answers[i] for i in idx.tolist()]).to(self.device)
        group_ids = (torch.arange(per_rank, device=self.device) + self.rank * per_rank).repeat_interleave(cfg.group_size)
        adv = group_advantages(rewards, group_ids, scale=cfg.scale_advantages)
        return prompts, roll, texts, rewards, group_ids, adv, idx

    def update(self, prompts: Prompts, roll, adv: torch.Tensor, knobs: Knobs | None = None) -> dict[str, float]:
        """``epochs`` optimizer passes over the batch, on the objective ``losses.compose`` builds
        from the loss mode in use and the entropy controller's ``knobs``."""
        cfg = self.cfg
        objective = compose(cfg, self.intervention, knobs, base=self.control.base,
                            log_detach=self.control.mode == "pi_clip")  # pi_clip logs detach_frac every step
        self.model.train()
        share_prompts = not cfg.gradient_checkpointing  # a checkpointed model keeps no cache
        bare = self.model if self.policy is not self.model else None  # DDP: the shared prompts run bare
        B = roll.response.shape[0]
        mb = cfg.micro_batch_size or B
        n_tokens = roll.mask.sum().clamp(min=1)
        totals: dict[str, torch.Tensor] = {}
        applied = False  # an optimizer step of this update was applied (the snapshot then holds the state before)
        try:
            for epoch in range(cfg.epochs):
                self.opt.zero_grad(set_to_none=True)
                for lo in range(0, B, mb):
                    sl = slice(lo, min(lo + mb, B))
                    last = lo + mb >= B
                    sync = contextlib.nullcontext() if last or self.world == 1 else self.policy.no_sync()
                    with sync, self.autocast:
                        part = prompts.take(sl)
                        logp, entropy = response_logp(self.policy, part, roll.response[sl], roll.mask[sl],
                                                      cfg.temperature, head=self.head, share_prompts=share_prompts,
                                                      prompt_model=bare, need_entropy=objective.needs_entropy)
                        batch = PolicyBatch(logp, roll.old_logp[sl], adv[sl, None].expand_as(logp), roll.mask[sl],
                                            roll.entropy[sl], entropy,  # valid tokens counted on the host:
                                            None if roll.lengths is None else sum(roll.lengths[sl]))
                        ref_logp = None
                        if self.ref is not None:
                            with torch.no_grad():
                                ref_logp, _ = response_logp(self.ref, part, roll.response[sl], roll.mask[sl],
                                                            cfg.temperature, head=self.ref_head)
                        out = objective(batch, n_tokens, ref_logp)
                        loss = out.loss
                    loss.backward()
                    w = (sl.stop - sl.start) / B / cfg.epochs
                    if out.kl is not None:  # statistics stay on the device: one sync at the end of the update
                        _add(totals, "kl", out.kl.detach() / cfg.epochs)
                    _add(totals, "loss", loss.detach() / cfg.epochs)
                    for k, v in out.stats.items():
                        _add(totals, k, v.detach() * w)
                    if not last:
                        self._local_check()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                _add(totals, "grad_norm", grad_norm.detach() / cfg.epochs)
                self._check()  # every rank: the last chance to abandon before this optimizer step
                if epoch == 0 and self.snapshot is not None:
                    self.snapshot.take(self.model, self.opt)
                self.opt.step()
                applied = True
        except StepAbandoned:
            if applied and self.snapshot is not None:  # the model is no step's state: put the last finished one's back
                self.snapshot.restore(self.model, self.opt)
            self.opt.zero_grad(set_to_none=True)
            raise
        names = list(totals)
        values = torch.stack([totals[k].float().reshape(()) for k in names]).tolist()  # the update's one sync
        stats = dict(zip(names, values), lr=self.sched.get_last_lr()[0])
        self.sched.step()
        return stats

    @torch.no_grad()
    def entropy_after(self, prompts: Prompts, roll) -> float:
        """Mean token entropy of the same batch under the updated policy (measured ΔH)."""
        self.model.eval()
        with self.autocast:
            h = response_entropy(self.model, prompts, roll.response, roll.mask, self.cfg.entropy_temperature,
                                 head=self.head)
        s = sum_over(torch.stack([(h * roll.mask).sum(), roll.mask.sum().float()]), self.world)
        return (s[0] / s[1].clamp(min=1)).item()

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        """Sampled (T = 1) and greedy accuracy on the held-out split, sharded over ranks."""
        cfg = self.cfg
        self.model.eval()
        shard = torch.arange(self.rank, len(self.task.val_prompts), self.world)
        prompts = self.val_prompts.take(shard).to(self.device)
        answers = [self.task.val_answers[i] for i in shard.tolist()]
        gen = torch.Generator(self.device).manual_seed(step_seed(cfg.seed + 1, step, self.rank))
        result = {}
        for name, greedy in (("val/accuracy_sampled", False), ("val/accuracy_greedy", True)):
            with self.autocast:
                roll = generate(self.model, prompts, cfg.max_new_tokens, self.tok.eos_token_id,
                                self.tok.pad_token_id, temperature=1.0, greedy=greedy, generator=gen,
                                between_tokens=self._local_check)
            right = score(self.task, decode_responses(self.tok, roll), answers).sum()
            total = sum_over(torch.stack([right, torch.tensor(float(len(answers)))]).to(self.device), self.world)
            result[name] = (total[0] / total[1]).item()
            if self.rank == 0:
                self.rec.log_eval(step, name, result[name], n=len(self.task.val_prompts))
        return result

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> Path | str:
        """Train from ``self.start`` to ``cfg.steps``; returns the run directory.

        Raises:
            TrainingStopped: on SIGTERM or SIGINT (``handle_signals``), after checkpointing the
                last step whose update was applied and closing the run as ``stopped``, within
                ``cfg.stop_grace`` seconds of the signal (trainer/deadline.py).
        """
        cfg = self.cfg
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.steps, initial=self.start, desc="train", unit="step", dynamic_ncols=True,
                       file=sys.stderr)
        acc: float | None = None  # None until this process evaluates (a resume may start between evaluations)
        status = "failed"
        done = saved = self.start - 1  # the last step updated and recorded; the last one checkpointed
        signum = abandoned = None
        with GracefulStop(self.handle_signals, cfg.stop_grace) as stop:
            self._stop, self._bar = stop, bar
            if not stop.installed:  # no signal can ask for a stop: no snapshot to keep
                self.snapshot = None
            try:
                for step in range(self.start, cfg.steps):
                    if (signum := self._signalled(stop)) is not None:
                        break
                    t0 = self._step_started = time.perf_counter()
                    try:  # abandoned (StepAbandoned) when a stop signal came and the step cannot finish in time
                        torch.manual_seed(step_seed(cfg.seed + 2, step, self.rank))  # Clip-Cov's random picks
                        if self._evaluates(step):
                            acc = self.evaluate(step)["val/accuracy_sampled"]
                            self._check()
                        prompts, roll, texts, rewards, group_ids, adv, idx = self.rollout(step)
                        self._check()
                        mi = step_mi(self, step, prompts, roll)  # {} on the steps mi_every skips
                        stats = mi | self.update(prompts, roll, adv, self.control.knobs(step))
                    except StepAbandoned:
                        signum, abandoned = self._signalled(stop), step
                        break
                    if self.control.measuring:  # no target, no controller: nothing to feed (no all-reduce)
                        h = sum_over(torch.stack([(roll.entropy * roll.mask).sum(), roll.mask.sum().float()]),
                                      self.world)
                        stats.update(self.control.observe(step, (h[0] / h[1].clamp(min=1)).item()))
                    if cfg.measure_entropy_change and not self._past_deadline(self._entropy_after_s):
                        t1 = time.perf_counter()
                        stats["entropy_after"] = self.entropy_after(prompts, roll)
                        self._entropy_after_s = time.perf_counter() - t1
                    stats["step_time"] = time.perf_counter() - t0
                    self.rec.record_batch(
                        step, token_ids=roll.response, response_mask=roll.mask, entropy=roll.entropy,
                        logprobs=roll.logp, advantages=adv, rewards=rewards, group_ids=group_ids, texts=texts,
                        prompts=[self.task.train_prompts[i] for i in idx.tolist()], prompt_ids=idx, **stats,
                    )
                    done = step
                    # watch before the checkpoint, so that it holds a loss mode switched at this step
                    flagged = (self.watching and (step + 1) % cfg.watch_every == 0
                               and self.watch(step, bar) is WatchDecision.STOP)
                    if flagged or (step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1:
                        if self.checkpoint(step):
                            saved = step
                    if flagged:
                        status = "stopped"
                        break
                    if bar is not None:
                        h = (roll.entropy * roll.mask).sum().item() / max(int(roll.mask.sum()), 1)
                        acc_text = "—" if acc is None else f"{acc:.2f}"
                        bar.set_postfix_str(
                            f"entropy {h:.3f}  reward {rewards.mean().item():.3f}  acc {acc_text}  "
                            f"{time.perf_counter() - t0:.2f} s/step", refresh=False)
                        bar.update(1)
                    self._last_step_s = time.perf_counter() - t0
                else:
                    status = "finished"
                if signum is not None:
                    if bar is not None:
                        bar.close()
                    self._stop_on_signal(signum, done, saved, abandoned)
                    status = "stopped"
            except KeyboardInterrupt:  # only where no handler could be installed (not the main thread)
                self.log(f"\ninterrupted; the run keeps every step recorded so far (resume with --resume {self.out})")
                raise
            finally:
                if bar is not None:
                    bar.close()
                if self.watcher is not None:
                    self.watcher.close()
                if self.failed_checkpoints:
                    self.rec.update_meta(failed_checkpoints=self.failed_checkpoints)
                self.rec.close(status)
                if abandoned is not None and self.rank == 0 and self._evaluates(abandoned):
                    truncate_run(self.out, done)  # the abandoned step's evaluation: a resume redoes it
                if self.world > 1 and torch.distributed.is_initialized():
                    torch.distributed.destroy_process_group()
        if signum is not None:
            if stop.received is not None:
                self.log(f"run closed as stopped {time.monotonic() - stop.received:.1f} s after {signal_name(signum)} "
                         f"(--stop-grace {cfg.stop_grace:g} s)")
            raise TrainingStopped(signum, self.out)
        return self.out

    def _evaluates(self, step: int) -> bool:
        return step % self.cfg.eval_every == 0 or step == self.cfg.steps - 1

    def _estimate_checkpoint(self) -> None:
        """Rank 0 at start-up: a checkpoint's expected time (its bytes over the write speed
        measured where it goes), in run.json as ``checkpoint_time``; a warning when it cannot fit
        the stop grace."""
        size = state_bytes(self.model, self.opt)
        try:
            speed = write_speed(checkpoint_dir(self.out))
        except OSError as e:  # the checkpoint itself will fail and say so
            self.log(f"could not measure the checkpoint write speed ({_one_line(e)})")
            return
        self.checkpoint_seconds = size / speed
        self.checkpoint_time = {"estimate_s": round(self.checkpoint_seconds, 4), "bytes": size,
                                "write_bytes_per_s": round(speed)}
        self.rec.update_meta(checkpoint_time=self.checkpoint_time)
        self._warn_if_too_slow(f"a checkpoint of this model ({size / 1e6:.0f} MB at {speed / 1e6:.0f} MB/s measured) "
                               f"takes about {self.checkpoint_seconds:.1f} s")

    def checkpoint(self, step: int) -> bool:
        """Save after the update of ``step``; every rank's rows up to it are on disk first.

        A checkpoint that cannot be saved (``save_pretrained`` refusing the model, a full disk)
        does not stop training: it becomes a ``checkpoint_failed`` event, a one-line message and
        an entry of ``failed_checkpoints`` in run.json. Returns whether it was saved (rank 0;
        other ranks return True)."""
        self.rec.flush()
        ok = True
        if self.rank == 0:
            t0 = time.perf_counter()
            try:
                save_checkpoint(self.out, step, self.model, self.tok, self.opt, self.sched,
                                self.cfg.keep_checkpoints, intervention=self.intervention,
                                control=self.control.state_dict())
            except Exception as e:
                ok = False
                reason = _one_line(e)
                self.failed_checkpoints.append({"step": step, "error": reason})
                self.rec.log_event(step, "checkpoint_failed", f"step-{step:07d}", severity="warning", message=reason,
                                   detail={"error": reason, "type": type(e).__name__})
                self.rec.update_meta(failed_checkpoints=self.failed_checkpoints)
                print(f"entrodiag train: the checkpoint of step {step} was not saved ({reason}); training goes on "
                      "and every step is still recorded", file=sys.stderr)
            else:
                self._measured_checkpoint(step, time.perf_counter() - t0)
        if self.world > 1:
            torch.distributed.barrier()
        return ok


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or "no message"
    text = f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _add(d: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    d[key] = value if key not in d else d[key] + value


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True, log=print,
          handle_signals: bool = True) -> Path | str:
    """Train ``cfg`` into the run directory ``out``, a local path or an object-store URL
    (``s3://bucket/runs/a``; checkpoints go there too) (``resume=True``: continue it from its last
    checkpoint). Returns the run directory (a ``Path``, or the URL).

    With ``handle_signals`` (from the main thread), SIGTERM or SIGINT stops training gracefully:
    the step in progress is finished (or abandoned when its update has not started), the last
    updated step is checkpointed, the run is closed as ``stopped`` with a ``stop`` event naming
    the signal, and ``TrainingStopped`` (a ``SystemExit`` with code 128 + signum) is raised. A
    second signal ends the process at once.

    Example:
        >>> from entrodiag.trainer import load_config, train      # doctest: +SKIP
        >>> train(load_config("tiny-arith-test"), "runs/t")       # doctest: +SKIP
    """
    return Trainer(cfg, out, resume=resume, progress=progress, log=log, handle_signals=handle_signals).run()
