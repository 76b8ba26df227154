"""Metric names of other frameworks' logs: the column-name table and what a logged name means.

Plain Python (imports nothing of the project, never torch, polars or pyarrow): the tables where
their users meet, the importers (``entrodiag import``), the TRL drop-in (``hooks.trl_logs``) and
the analysis (``analysis.summary``'s metric notes).

A logged name is first normalised (the ``train/`` prefix that W&B and OpenRLHF put on training
metrics is dropped), then looked up in ``STEP_ALIASES``; names that look like evaluations
(``eval_*``, ``eval/*``, ``val-core/*``, ``val-aux/*``, ``val/*``, ``test/*``) become evaluation
names ``val/<rest>``. Everything else is *unrecognised*: the importer keeps it as an extra step
column under its own name and lists it, so nothing is dropped silently.

Sources of the names (read in the frameworks' code):

- TRL ``GRPOTrainer.log`` (1.x): ``loss``, ``grad_norm``, ``learning_rate``, ``epoch``, ``entropy``
  (token mean over completion tokens), ``reward``, ``reward_std``, ``frac_reward_zero_std``,
  ``completions/mean_length``, ``kl``, ``clip_ratio/{low_mean,high_mean,region_mean}``,
  ``eval_*`` in evaluation; with W&B, Hugging Face's callback writes ``train/<name>`` and
  ``eval/<name>``.
- verl (``RayPPOTrainer.fit`` metrics, the ``file`` logger writes ``{"step": N, "data": {...}}``):
  ``actor/entropy``, ``actor/pg_loss``, ``actor/pg_clipfrac``, ``actor/pg_clipfrac_lower``,
  ``actor/ppo_kl``, ``actor/kl_loss``, ``actor/grad_norm``, ``actor/lr``, ``critic/rewards/mean``,
  ``critic/score/mean``, ``critic/advantages/mean``, ``response_length/mean``,
  ``val-core/<data source>/<variable>/<metric>``, ``val-aux/...``.
- verl ≥ 0.6 (``RayPPOTrainer._validate``, ``process_validation_metrics``): ``val-core/<data
  source>/<var>/mean@N`` (``<var>`` is ``acc`` when the reward function returns one, else
  ``reward``; N the samples per prompt), with ``best@N/mean``, ``maj@N/mean`` of the core variable
  at the largest N; ``val-aux/`` holds the rest (``std@N``, ``worst@N/...``, smaller N, other
  variables). Both become evaluations (``val/<rest>``, ``val/aux/<rest>``); only a ``mean@N`` is
  chosen as R by default (``analysis.metric``). ``critic/score/mean`` is the task score,
  ``critic/rewards/mean`` the reward the advantages use: the score minus β·KL when
  ``algorithm.use_kl_in_reward`` is on, whose penalty verl logs as ``actor/reward_kl_penalty``
  (and its coefficient ``actor/reward_kl_penalty_coeff``); ``analysis.sources.reward_series``
  then reads the task score as the run's reward.
- verl before its 2025 renames (the console logs verl's docs link to, Dec 2024):
  ``actor/entropy_loss`` is the masked token-mean entropy (a positive number, not a loss),
  validation ``val/test_score/<data source>`` (printed as ``test_score/<data source>`` on some lines
  and in the ``Initial validation metrics`` dict).
- TRL's per-reward-function ``rewards/<fn>/mean``/``std``, ``completions/*`` and ``clip_ratio/*``
  are recognised and kept as logged; TRL's old PPO/RLOO ``objective/entropy`` (−log p of the
  sampled tokens, summed per response) is the entropy column, marked as a sampled estimate.
- custom loops: ``token_entropy``, ``avg_response_token_length``, step keys ``grpo_step``,
  ``train_step``, ``update_step``, ``rollout_step``; ``mean_<name>`` or ``avg_<name>`` of a name
  above whose column is a mean is that column (``mean_entropy``, ``mean_reward``: axiom-rl's trainer).
- OpenRLHF (``PPOTrainer`` status, logged as ``train/<name>`` to W&B and TensorBoard):
  ``policy_loss``, ``reward``, ``return``, ``response_length``, ``kl``, ``actor_lr``,
  ``actor_grad_norm``, ``entropy_loss`` (the mean token entropy), ``ppo_clip_ratio``, ``ppo_kl``;
  evaluations ``eval/eval_<dataset>_pass1`` and friends; 0.11 adds ``rollout/reward_mean``,
  ``rollout/reward_std``, ``rollout/response_length_mean``, ``rollout/truncated_rate``.

- Tinker (tinker-cookbook's RL loop, ``metrics.jsonl``, one row per step with ``step``):
  ``optim/entropy`` is −(mean log p of the sampled action tokens) under the sampling policy
  (``compute_kl_sample_train``: a sampled estimate of the token entropy, token mean over the
  batch), ``optim/kl_sample_train_v1``/``v2`` the sampler–learner log-prob mismatch (not a KL
  penalty), ``optim/lr``; ``env/all/reward/total`` the mean total reward per episode,
  ``env/all/correct`` the task score of the cookbook's problem environments (the reward adds a
  format term to it), ``env/all/format``, ``env/all/ac_tokens_per_turn`` (action tokens per turn:
  the response length), ``env/all/by_group/frac_{mixed,all_good,all_bad}`` (groups whose rewards
  differ / are all good / all bad: the last two give no advantage), ``kl_policy_base`` (the KL to
  the base model that ``incorporate_kl_penalty`` adds to the advantages, not to the reward),
  ``teacher_kl`` (on-policy distillation: the reverse KL to the teacher, the objective, not a
  score), ``progress/batch`` (the step again), ``time/*``; evaluations ``test/env/all/...``.

- ROLL (``roll/utils/tracking.py`` stdout tracker, its pipelines' ``compute_data_metrics``):
  ``critic/entropy/mean`` (the old policy's token-mean entropy), ``critic/score/mean``,
  ``critic/rewards/mean``, ``tokens/response_length/mean``, ``actor/ppo_ratio_clipfrac``,
  ``actor_train/grad_norm``, ``actor/approxkl``. AReaL (``stats_tracker`` scopes):
  ``ppo_actor/update/entropy/avg`` (``/min``, ``/max``), ``ppo_actor/task_reward/avg``,
  ``ppo_actor/update/clip_ratio/avg``, ``ppo_actor/update/grad_norm``, ``rollout/reward``.
  NeMo-RL: ``train/approx_entropy`` (an estimate); its dumps give ``surprisal_mean`` (the mean −log p
  of the sampled tokens: not an entropy). slime: ``train/entropy_loss`` (the mean entropy),
  ``rollout/entropy``, ``rollout/raw_reward`` (the reward before group normalisation; ``rollout/rewards``
  after it).

Checked against logs written by the real classes (verl 0.9.1 and 0.7.1's ``FileLogger``, OpenRLHF
0.11.2's ``TensorboardLogger``) in ``tests/test_frameworks_verl.py`` and ``test_frameworks_openrlhf.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: logged name (after normalisation) → entrodiag step column
STEP_ALIASES: dict[str, str] = {
    # --- TRL / Hugging Face Trainer
    "entropy": "entropy_mean",
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "zero_adv_group_frac",
    "completions/mean_length": "resp_len_mean",
    "completions/min_length": "resp_len_min",
    "completions/max_length": "resp_len_max",
    "completions/clipped_ratio": "resp_clipped_frac",
    "kl": "kl",
    "loss": "loss",
    "learning_rate": "lr",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
    "clip_ratio/low_mean": "clip_low_frac",
    "clip_ratio/high_mean": "clip_high_frac",
    "clip_ratio/region_mean": "clip_frac",
    "num_tokens": "num_tokens_seen",
    # --- verl
    "actor/entropy": "entropy_mean",
    "actor/pg_loss": "loss",
    "actor/pg_clipfrac": "clip_frac",
    "actor/pg_clipfrac_lower": "dual_clip_frac",
    "actor/ppo_kl": "ppo_kl",
    "actor/kl_loss": "kl",
    "actor/grad_norm": "grad_norm",
    "actor/lr": "lr",
    "critic/rewards/mean": "reward_mean",
    "critic/score/mean": "score_mean",
    "critic/advantages/mean": "advantage_mean",
    "actor/reward_kl_penalty": "reward_kl_penalty",  # β·KL taken off the score in critic/rewards/mean
    "actor/reward_kl_penalty_coeff": "reward_kl_coef",
    "response_length/mean": "resp_len_mean",
    "response_length/max": "resp_len_max",
    "response_length/min": "resp_len_min",
    "response_length/clip_ratio": "resp_clipped_frac",
    "training/epoch": "epoch",
    "train_entropy/all": "entropy_seq_mean",  # Cui et al.'s fork: seq-mean-token-mean at T = 1
    # verl before the rename to actor/entropy (Dec 2024 console logs): the masked token-mean
    # entropy of the policy, a positive number, despite the name
    "actor/entropy_loss": "entropy_mean",
    # --- custom loops (e.g. the CS336 GRPO assignment's typed JSONL)
    "token_entropy": "entropy_mean",
    "objective/entropy": "entropy_mean",  # TRL's old PPO/RLOO: −log p of sampled tokens, seq sum
    "mean_token_entropy": "entropy_mean",
    "avg_response_token_length": "resp_len_mean",
    "avg_response_length": "resp_len_mean",
    # --- OpenRLHF
    "policy_loss": "loss",
    "response_length": "resp_len_mean",
    "actor_lr": "lr",
    "actor_grad_norm": "grad_norm",
    "entropy_loss": "entropy_mean",
    "ppo_clip_ratio": "clip_frac",
    "ppo_kl": "ppo_kl",
    "rollout/reward_mean": "reward_mean",  # 0.11: before dynamic batching (``reward`` wins when both)
    "rollout/reward_std": "reward_std",
    "rollout/response_length_mean": "resp_len_mean",
    "rollout/truncated_rate": "resp_clipped_frac",
    # --- Tinker (tinker-cookbook's RL loop, metrics.jsonl)
    "optim/entropy": "entropy_mean",  # −mean log p of the sampled action tokens: a sampled estimate
    "optim/lr": "lr",
    "env/all/reward/total": "reward_mean",
    "env/all/correct": "score_mean",  # the problem environments' correctness; the reward adds a format term
    "env/all/ac_tokens_per_turn": "resp_len_mean",
    # --- ROLL (its compute_data_metrics and the old-policy log-prob pass)
    "critic/entropy/mean": "entropy_mean",  # the old policy's token-mean entropy, before the update
    "tokens/response_length/mean": "resp_len_mean",
    "actor/ppo_ratio_clipfrac": "clip_frac",
    "actor_train/grad_norm": "grad_norm",
    "actor/approxkl": "ppo_kl",
    # --- AReaL (stats_tracker scopes ppo_actor and rollout)
    "ppo_actor/update/entropy/avg": "entropy_mean",
    "ppo_actor/task_reward/avg": "reward_mean",
    "ppo_actor/update/clip_ratio/avg": "clip_frac",
    "ppo_actor/update/grad_norm": "grad_norm",
    # --- NeMo-RL (train/<name> to its loggers)
    "approx_entropy": "entropy_mean",  # an estimate from the sampled tokens, as its name says
    # --- slime (rollout/ and train/ to W&B and TensorBoard)
    "rollout/raw_reward": "reward_mean",  # before the group normalisation (rollout/rewards is after it)
    "rollout/response_lengths": "resp_len_mean",
    "pg_clipfrac": "clip_frac",
    "pg_loss": "loss",
    # --- W&B export
    "_timestamp": "wall_time",
}

#: entrodiag's own step columns: a log that already uses these names maps onto itself
CANONICAL = frozenset(STEP_ALIASES.values()) | {
    "n_tokens", "n_responses", "n_groups", "entropy_seq_mean", "entropy_std", "entropy_p50",
    "entropy_p80", "entropy_p90", "entropy_p99", "high_entropy_frac", "logprob_mean", "cov_mean",
    "cov_pos_frac", "hwe_token_frac", "entropy_pressure",
    "reward_penalised_mean",  # the verl attachment: token_level_rewards (score − β·KL) per response
    "surprisal_mean",  # NeMo-RL's dumps: the mean −log p of the sampled tokens (not an entropy)
}

#: candidate step columns, most specific first (the first one present is the step)
STEP_KEYS = (
    "step", "global_step", "train/global_step", "trainer/global_step", "training/global_step",
    "grpo_step", "train_step", "training_step", "update_step", "rollout_step",
    "_step", "Step", "iteration", "iter", "progress/batch",
)

#: recognised names kept as logged (after normalisation): TRL's per-function rewards and its
#: completion/clipping statistics that have no entrodiag column of their own
KEEP_AS_LOGGED = re.compile(r"^(rewards/[^/]+/(mean|std)|completions/.+|clip_ratio/.+)$")

#: step columns that the Recorder computes itself from tokens; the TRL hook keeps TRL's own value
#: of these under ``trl/<name>`` instead of overwriting the measured one
MEASURED_COLUMNS = frozenset({
    "entropy_mean", "entropy_seq_mean", "entropy_std", "reward_mean", "reward_std",
    "zero_adv_group_frac", "resp_len_mean", "advantage_mean", "logprob_mean", "cov_mean",
})

#: evaluation-time numbers that are bookkeeping or rollout diagnostics, not performance: kept as
#: step columns under their logged name (``eval_entropy``), so that the evaluations hold only what
#: the entropy law can use as R (reward, accuracy, pass rates, loss)
EVAL_DIAGNOSTIC = re.compile(
    r"^(.*runtime|.*samples_per_second|.*steps_per_second|num_samples|num_tokens|step_time|entropy|kl"
    r"|frac_reward_zero_std|reward_std|rewards/.*/std|clip_ratio/.*|completions/.*|entropy_coef"
    r"|global_step|epoch|step|optimizer_step|.*seconds|.*_time|num_.*|temperature|top_p|top_k|max_tokens|include_.*|stop)$"
)

#: names that are never a performance (matched anywhere in the name, case-insensitive): what the
#: analysis may take as R (``analysis.metric``) and which series the importer guards as R's source
NOT_PERFORMANCE = re.compile(
    r"(seconds|runtime|timing|_time\b|time_|/time\b|per_second|throughput|mfu|perf/|length|(^|[_/])len([_/]|$)|tokens|learning_rate|(^|/)lr\b|count"
    r"|(^|/|_)num_|(^|/)n_|(^|/)steps?\b|epoch|entropy|surprisal|(^|/|_)kl(\b|_)|grad|loss|clip|frac"
    r"|temperature|top_p|memory|gib\b|include_|max_tokens|examples)",
    re.IGNORECASE,
)
#: statistics of a prompt's samples (or of a batch: verl's ``critic/score/max``) that are not their mean
#: score: R only when named with --metric (``@k`` also as ``_at_k``, as verl's MLflow logger writes it:
#: MLflow refuses ``@`` in a name)
NOT_MEAN = re.compile(r"((^|[/_@])(best|worst|maj|max|min|maximum|minimum)(@|_|\b)"
                      r"|pass@([2-9]|\d{2,})|pass_at_([2-9]|\d{2,})"
                      r"|(^|[/_@])std(@|_at_|\b)|_std\b)", re.IGNORECASE)


def is_performance(name: str) -> bool:
    """Whether ``name`` may be R (not a time, length, rate, count, loss, entropy, ...)."""
    bare = name.removeprefix("val/")
    return not NOT_PERFORMANCE.search(bare)


def is_mean_score(name: str) -> bool:
    """Whether ``name`` is a mean score, not ``best@k``/``worst@k``/``maj@k``/``pass@k``/a std
    (``NOT_MEAN``): only a mean score is chosen as R without ``--metric``."""
    return not NOT_MEAN.search(name.removeprefix("val/"))


_EVAL_PREFIXES = ("val-core/", "val-aux/", "eval/", "eval_", "val/", "val_", "test/", "test_")
_STRIP_PREFIXES = ("train/",)
#: a custom loop's ``mean_<name>`` / ``avg_<name>`` (``mean_entropy``): ``<name>``'s column when that is
#: a mean
_MEAN_OF = re.compile(r"^(?:mean|avg)_(.+)$")
#: names a mapping may not target (keys and list columns)
RESERVED_TARGETS = frozenset({"rank", "entropy_hist"})


@dataclass(frozen=True)
class Target:
    """Where a logged column goes: ``kind`` is ``step`` (a step column), ``eval`` (an evaluation
    name ``val/...``), ``key`` (the step number itself) or ``skip``; ``known`` says whether the
    name was recognised (or mapped by the user) rather than kept as is."""

    kind: str
    name: str
    known: bool = True


def eval_name(name: str) -> str | None:
    """``val/<rest>`` for a name that looks like an evaluation metric, else ``None``.

    >>> eval_name("eval_reward"), eval_name("val-core/gsm8k/acc/mean@1"), eval_name("eval/eval_math_pass1")
    ('val/reward', 'val/gsm8k/acc/mean@1', 'val/math_pass1')
    """
    rest = _eval_rest(name)
    return None if rest is None or EVAL_DIAGNOSTIC.match(rest) else f"val/{rest}"


def _eval_rest(name: str) -> str | None:
    """The metric part of an evaluation-looking name (``eval_reward`` -> ``reward``), else None."""
    rest = None
    for prefix in _EVAL_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix):]
            if prefix == "val-aux/":
                rest = "aux/" + rest
            break
    if rest is None:
        return None
    for prefix in ("eval_", "eval/"):  # OpenRLHF: eval/eval_<dataset>_pass1
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
    return rest or None


def normalise(name: str) -> str:
    """Drop a ``train/`` prefix (W&B and OpenRLHF log training metrics as ``train/<name>``) and undo
    ``/`` flattened to ``_`` (``unflatten``)."""
    for prefix in _STRIP_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return unflatten(name)


#: known names with ``/`` flattened to ``_`` (a metrics CSV of verl's per-step metrics writes
#: ``actor_entropy``, ``critic_score_mean``) → the name as the framework logs it
_FLATTENED = {k.replace("/", "_"): k for k in STEP_ALIASES if "/" in k and k.replace("/", "_") not in STEP_ALIASES}
_FLAT_EVAL = re.compile(r"^(val-core|val-aux)_(?=.)")


def unflatten(name: str) -> str:
    """A known name whose ``/`` were flattened to ``_`` back as logged (``actor_entropy`` →
    ``actor/entropy``; ``val-core_<source>_acc_mean@1`` → ``val-core/<source>_acc_mean@1``: the rest
    of a validation name cannot be split back unambiguously); any other name unchanged.

    >>> unflatten("critic_score_mean"), unflatten("val-aux_num_turns_mean"), unflatten("actor_lr")
    ('critic/score/mean', 'val-aux/num_turns_mean', 'actor_lr')
    """
    if name in _FLATTENED:
        return _FLATTENED[name]
    return _FLAT_EVAL.sub(r"\1/", name)


def classify(name: str, user_map: dict[str, str] | None = None) -> Target:
    """Where the logged column ``name`` goes (a user mapping wins over the built-in aliases).

    A user mapping's field is ``step`` (the step column), ``skip`` (or ``-``: drop it), a name
    starting with ``val/`` (an evaluation), or any other name (a step column).

    >>> classify("actor/entropy")
    Target(kind='step', name='entropy_mean', known=True)
    >>> classify("train/reward")
    Target(kind='step', name='reward_mean', known=True)
    >>> classify("timing_s/gen")
    Target(kind='step', name='timing_s/gen', known=False)
    """
    if user_map and name in user_map:
        field = user_map[name]
        if field == "step":
            return Target("key", "step")
        if field in ("skip", "-"):
            return Target("skip", name)
        if field.startswith("val/"):
            return Target("eval", field)
        return Target("step", field)
    if name in STEP_KEYS:
        return Target("key", "step")
    norm = normalise(name)
    if norm in STEP_ALIASES:
        return Target("step", STEP_ALIASES[norm])
    mean_of = _MEAN_OF.match(norm)
    if mean_of and STEP_ALIASES.get(mean_of.group(1), "").endswith("_mean"):
        return Target("step", STEP_ALIASES[mean_of.group(1)])
    if norm in CANONICAL:
        return Target("step", norm)
    if KEEP_AS_LOGGED.match(norm):
        return Target("step", norm)
    if name.startswith("test_score/"):  # verl before val-core/ (Dec 2024): test_score/<data source>
        return Target("eval", f"val/{name}")
    rest = _eval_rest(unflatten(name))
    if rest is not None:
        if EVAL_DIAGNOSTIC.match(rest):
            return Target("step", name)  # evaluation-time diagnostics stay step columns, as named
        return Target("eval", f"val/{rest}")
    return Target("step", name, known=False)


#: what a logged name means, for the run's metric notes (verl ≥ 0.6 names; read in verl's
#: ``compute_data_metrics``, ``apply_kl_penalty`` and ``process_validation_metrics``)
VERL_NOTES: tuple[tuple[str, str], ...] = (
    (r"^critic/score/mean$", "the task score (token_level_scores per response): the performance series"),
    (r"^critic/rewards/mean$", "the reward the advantages use (token_level_rewards per response): the task "
                               "score minus β·KL when algorithm.use_kl_in_reward is on, else equal to it"),
    (r"^actor/reward_kl_penalty$", "β·KL taken off the task score in critic/rewards/mean (KL in the reward)"),
    (r"^actor/reward_kl_penalty_coeff$", "β of the KL penalty in the reward"),
    (r"^val-core/.+/mean(@|_at_)\d+$",
     "validation: the mean score over N samples per prompt (a candidate for R)"),
    (r"^val-core/.+/(best|maj)@\d+/(mean|std)$", "validation: the best or majority-vote score of N samples, "
                                                    "bootstrapped (not a mean score: R only with --metric)"),
    (r"^val-aux/", "validation, auxiliary: other sample counts, spreads (std@N) and worst@N (R only with --metric)"),
)


#: what a logged Tinker name means (read in tinker-cookbook's ``rl/metrics.py``, ``rl/metric_util.py``
#: and ``rl/problem_env.py``)
TINKER_NOTES: tuple[tuple[str, str], ...] = (
    (r"^optim/entropy$", "−(mean log p of the sampled action tokens) under the sampling policy: a sampled "
                         "estimate of the token entropy (the entropy series)"),
    (r"^optim/kl_sample_train_v[12]$", "the log-prob mismatch between the sampler and the learner on the same "
                                       "tokens (off-policy drift), not a KL penalty"),
    (r"^env/all/correct$", "the task score (share of correct answers): the performance series"),
    (r"^env/all/reward/total$", "the mean total reward per episode: the task score plus the environment's other "
                                "terms (e.g. a format penalty)"),
    (r"^env/all/format$", "the share of answers in the expected format (part of the reward, not the task score)"),
    (r"^env/all/by_group/frac_(all_good|all_bad)$", "groups whose rewards are all equal (all good / all bad): "
                                                    "they give no advantage"),
    (r"^env/all/by_group/frac_mixed$", "groups whose rewards differ: the only ones that give a gradient"),
    (r"^kl_policy_base$", "the KL to the base model that the KL penalty adds to the advantages (not to the "
                          "logged reward)"),
    (r"^teacher_kl(/.*)?$", "on-policy distillation: the reverse KL to the teacher, the objective the run "
                            "minimises, not a task score"),
    (r"^test/", "evaluation on the test set (Tinker's evaluator)"),
)

#: what a logged name of ROLL, AReaL, NeMo-RL and slime means (read in their code: ROLL's pipelines,
#: AReaL's ``stats_logger``/``rlvr``, NeMo-RL's ``grpo.py``, slime's ``arguments.py``/rollout logging)
OTHER_NOTES: dict[str, tuple[tuple[str, str], ...]] = {
    "roll": ((r"^critic/entropy/mean$", "the old policy's token-mean entropy (log-prob pass before the update): "
                                          "the entropy series"),),
    "areal": ((r"^ppo_actor/update/entropy/(min|max)$", "the smallest / largest token entropy of the update"),),
    "nemo_rl": ((r"^(train/)?approx_entropy$", "an estimate of the entropy from the sampled tokens, not the "
                                               "full-vocabulary entropy"),
                (r"^surprisal_mean$", "the mean −log p of the sampled tokens (surprisal): one Monte-Carlo "
                                      "sample of the entropy per token, not the entropy")),
    "slime": ((r"^rollout/entropy$", "the per-token entropy of the rollout batch under the policy before the update"),
              (r"^rollout/rewards$", "the rewards after the group normalisation (not the task score)")),
}

#: framework → its notes (``metric_notes``)
NOTES: dict[str, tuple[tuple[str, str], ...]] = {"verl": VERL_NOTES, "tinker": TINKER_NOTES, **OTHER_NOTES}


def metric_notes(framework: str | None, names: list[str]) -> dict[str, str]:
    """``{logged name: what it means}`` for the names of ``framework`` whose meaning is known and
    matters to the analysis (verl's task score against its KL-penalised reward, its validation
    statistics; Tinker's sampled entropy, task score and reward); empty for others."""
    notes = NOTES.get(framework or "")
    if not notes:
        return {}
    out = {}
    for name in names:
        for pattern, meaning in notes:
            if re.search(pattern, unflatten(name)):
                out[name] = meaning
                break
    return out


def is_lost(entry: dict) -> bool:
    """Whether a series is lost to parsing (an entry of run.json ``imported.lost``: ``lost`` of ``of``
    values): more than half of its values, at least two, gone."""
    return entry.get("lost", 0) >= 2 and entry["lost"] * 2 > entry.get("of", 0)
