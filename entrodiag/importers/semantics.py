"""What an imported entropy number means, from the framework's known semantics.

``entropy_semantics`` fills run.json's ``entropy_semantics``:

- ``kind``: ``token_entropy`` (the full-vocabulary entropy −Σ_v p_v log p_v of each next-token
  distribution, averaged) or ``sampled_neglogp`` (the mean −log p of the sampled tokens: an
  unbiased but noisy Monte-Carlo estimate of the same quantity, one sample per position), or
  ``None`` when unknown;
- ``aggregation``: ``token_mean`` (over all response tokens of the batch), ``seq_mean`` (the mean
  over responses of each response's token mean), ``seq_sum`` (summed over each response's tokens),
  or ``None``;
- ``temperature``: the temperature the logits were divided by before the entropy, when known;
- ``basis``: where each field comes from (read in the framework's code, or only the name).

Sources (read in the frameworks' code): verl's ``dp_actor`` computes ``entropy_from_logits`` on the
logits divided by the rollout temperature and aggregates with a masked mean over response tokens
(``loss_agg_mode`` token-mean by default); until Dec 2024 it logged that as
``actor/entropy_loss``. TRL's ``GRPOTrainer`` (≥ 0.20) computes the entropy of
``logits / temperature`` per completion token and logs the masked mean over completion tokens;
TRL's old ``PPOTrainer``/``RLOOTrainer`` logged ``objective/entropy`` = the sum over a response of
−log p of its sampled tokens, averaged over responses. OpenRLHF logs ``entropy_loss``, the masked
token mean of the full-vocabulary entropy. Tinker's cookbook logs ``optim/entropy`` = −(mean log p of
the sampled action tokens) under the sampling policy, over all action tokens of the batch
(``compute_kl_sample_train``): a sampled estimate, token mean. ROLL logs ``critic/entropy/mean``: the
token mean (``agg_loss`` token-mean over the response mask) of the per-token entropy from the old
policy's log-prob pass, before the update; its actor worker logs ``actor/entropy``, the entropy of
the training pass aggregated by the pipeline's ``loss_agg_mode``, and its pipelines key each step's
metrics by ``system/step``. AReaL logs ``ppo_actor/update/entropy/avg`` in its PPO
update (a token average by its stats tracker's name; not checked further). NeMo-RL's
``train/approx_entropy`` is, by its name, an approximation: read as a sampled estimate; its
``train_data_step`` dumps hold log p of sampled tokens (−log p is the surprisal), never entropy:
``tokens`` says ``surprisal``. slime logs ``train/entropy_loss``, the masked mean entropy of the update.
"""

from __future__ import annotations

import re
from typing import Any

from ..metric_names import metric_notes, normalise

__all__ = ["FRAMEWORKS", "entropy_semantics", "guess_framework", "metric_notes"]

#: names of frameworks as written in run.json's ``imported.framework``
FRAMEWORKS = ("verl", "trl", "openrlhf", "tinker", "roll", "areal", "nemo_rl", "slime", "custom")


def guess_framework(fmt: str, names: list[str]) -> str:
    """The framework that wrote a log, from its format and (normalised) metric names."""
    names_set = set(names)
    # ROLL: its console's entropy name, or its pipelines' step key beside actor/ metrics
    if "critic/entropy/mean" in names_set or (
            "system/step" in names_set and any(n.startswith("actor/") for n in names)):
        return "roll"
    if any(n.startswith("ppo_actor/") for n in names):
        return "areal"
    if "approx_entropy" in names_set:
        return "nemo_rl"
    if names_set & {"rollout/raw_reward", "rollout/step"}:
        return "slime"
    if fmt in ("verl", "verl_console") or any(n.startswith(("actor/", "critic/", "val-core/")) for n in names):
        return "verl"
    if (fmt in ("trainer_state", "console") or names_set & {"completions/mean_length", "frac_reward_zero_std"}
            or any(n.startswith(("rewards/", "objective/")) for n in names)):
        return "trl"
    if names_set & {"policy_loss", "actor_lr", "actor_grad_norm", "entropy_loss"}:
        return "openrlhf"
    if "optim/entropy" in names_set or any(n.startswith(("env/all/", "optim/kl_sample_train")) for n in names):
        return "tinker"
    return "custom"


def base_name(column: str) -> str:
    """A logged entropy name as its framework logs it (no W&B/OpenRLHF ``train/`` prefix, ``/`` not
    flattened to ``_``: ``metric_names.normalise``)."""
    return normalise(column)


#: (framework, entropy name) -> (kind, aggregation, basis) for the frameworks read from their own code
_FRAMEWORK_BASIS: dict[tuple[str, str], tuple[str | None, str | None, str]] = {
    ("roll", "critic/entropy/mean"): (
        "token_entropy", "token_mean", "ROLL critic/entropy/mean: the old policy's per-token entropy from its "
        "log-prob pass before the update, token mean over the response mask (agg_loss token-mean)"),
    ("roll", "actor/entropy"): (
        "token_entropy", None, "ROLL actor/entropy: the full-vocabulary entropy of the policy's logits in "
        "its training pass (op_compute_entropy), aggregated over the response mask by the pipeline's "
        "loss_agg_mode (a token mean or a sequence mean; the mode is not in the log)"),
    ("areal", "ppo_actor/update/entropy/avg"): (
        "token_entropy", "token_mean", "AReaL ppo_actor/update/entropy/avg: the entropy of the PPO update, averaged "
        "over tokens by its stats tracker (read from the name; full-vocabulary not checked in its code)"),
    ("nemo_rl", "approx_entropy"): (
        "sampled_neglogp", "token_mean", "NeMo-RL train/approx_entropy: an estimate of the entropy from the sampled "
        "tokens' log-probabilities, as its name says, not the full-vocabulary entropy"),
    ("slime", "entropy_loss"): (
        "token_entropy", "token_mean", "slime train/entropy_loss: the mean per-token entropy of the update, a "
        "positive number despite the name"),
    ("slime", "entropy_mean"): (
        "token_entropy", "token_mean", "slime --dump-details train_data: the per-token entropy the actor computed, "
        "token mean over the loss mask"),
}


#: config keys that hold the sampling temperature (the last part of a nested or dotted path)
_TEMPERATURE_KEYS = ("temperature", "sampling_temperature", "rollout_temperature")
#: a path part that names validation sampling (verl's ``rollout.val_kwargs``, ROLL's ``validation``)
_NOT_TRAINING = re.compile(r"^(val|eval|test)", re.IGNORECASE)


def _leaves(config: Any, path: tuple[str, ...] = (), depth: int = 0) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, value)`` of every setting of ``config``: nested dicts walked (to depth 12), a key
    with dots or slashes (``actor_rollout_ref.rollout.temperature``, MLflow's flattened params) split
    into parts, W&B's ``config.yaml`` wrapper ``{"value": ..., "desc": ...}`` unwrapped."""
    if isinstance(config, dict) and "value" in config and set(config) <= {"value", "desc"}:
        config = config["value"]
    if not isinstance(config, dict) or depth > 12:
        return [(path, config)] if path else []
    out = []
    for k, v in config.items():
        out += _leaves(v, path + tuple(p for p in re.split(r"[./]", str(k)) if p), depth + 1)
    return out


def _temperature(config: dict[str, Any]) -> float | None:
    """The training sampling temperature in ``config``: a setting named ``temperature`` (or
    ``sampling_``/``rollout_temperature``) at any depth (verl's ``actor_rollout_ref.rollout.temperature``
    nested in a W&B config), not under a validation section; the shallowest such setting, a
    ``temperature`` before the other names."""
    found = [(len(p), _TEMPERATURE_KEYS.index(p[-1]), float(v)) for p, v in _leaves(config)
             if p[-1] in _TEMPERATURE_KEYS and not any(_NOT_TRAINING.match(q) for q in p[:-1])
             and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")]
    return min(found)[2] if found else None


def entropy_semantics(framework: str, column: str | None, config: dict[str, Any] | None = None,
                      tokens: str | None = None) -> dict[str, Any]:
    """run.json's ``entropy_semantics`` for the logged entropy ``column`` of ``framework``;
    ``tokens`` (``surprisal``) says what the imported token rows hold when it is not entropy."""
    config = config or {}
    temp = _temperature(config)
    out: dict[str, Any] = {"column": column, "kind": None, "aggregation": None, "temperature": temp,
                           "basis": None}
    if tokens is not None:
        out["tokens"] = tokens
    if column is None:
        out["basis"] = "no entropy column in the log"
        if tokens == "surprisal":
            out["basis"] += ("; the token rows hold log p of each sampled token, labelled surprisal "
                             "(−log p: one sample of the entropy at its position), not the entropy")
        return out
    frame = _FRAMEWORK_BASIS.get((framework, base_name(column)))
    if frame is not None:
        kind, agg, basis = frame
        out.update(kind=kind, aggregation=agg, basis=basis)
        if temp is None:
            out["basis"] += "; temperature not in the log"
        return out
    base = base_name(column)
    if base == "objective/entropy":
        out.update(kind="sampled_neglogp", aggregation="seq_sum",
                   basis="TRL PPO/RLOO objective/entropy: −log p of the sampled tokens, summed per response")
    elif framework == "verl":
        out.update(kind="token_entropy", aggregation="token_mean",
                   basis=f"verl {column}: full-vocabulary entropy of logits/temperature, masked token mean")
    elif framework == "trl":
        out.update(kind="token_entropy", aggregation="token_mean",
                   basis=f"TRL GRPOTrainer {column}: full-vocabulary entropy of logits/temperature, "
                   "masked mean over completion tokens")
    elif framework == "tinker" and base == "optim/entropy":
        out.update(kind="sampled_neglogp", aggregation="token_mean",
                   basis="Tinker cookbook optim/entropy: −mean log p of the sampled action tokens under the "
                   "sampling policy, over all action tokens of the batch")
    elif framework == "openrlhf":
        out.update(kind="token_entropy", aggregation="token_mean",
                   basis=f"OpenRLHF {column}: full-vocabulary entropy, masked token mean")
    elif "token_entropy" in base:
        out.update(kind="token_entropy", basis=f"custom loop; the name {column!r} says token entropy "
                   "(not checked against its code); aggregation unknown")
    else:
        out["basis"] = f"custom loop; what {column!r} measures is not known"
    if temp is None:
        out["basis"] += "; temperature not in the log"
    return out
