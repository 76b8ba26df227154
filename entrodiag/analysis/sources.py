"""Advice that fits where a run came from, and what its entropy number means.

For a run imported from another framework (run.json ``source`` = ``import:<format>``), "not
judged" and "missing" lines name what to log *in that framework* (its metric names and settings),
not a Recorder argument. ``log_hint(run, what)`` gives that sentence, or ``None`` for runs that
entrodiag recorded itself (their callers keep the Recorder advice).

``entropy_notes(run)`` states the imported entropy's kind, aggregation and temperature (run.json
``entropy_semantics``, filled by the importer from the framework's known semantics) and warns
when the law or a threshold is applied to an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.reader import Run
from .metric import reward_functions
from .series import step_series

_TRL_CALLBACK = ("TRL does not log it; train with entrodiag.hooks.trl.RecordingGRPOTrainer (a drop-in "
                 "GRPOTrainer, see training_hooks/trl_grpo.py) to record it")
_VERL_HOOK = ("verl does not log it; record it with entrodiag.hooks.integrations.verl.attach in the actor "
              "workers (training_hooks/README.md, 'verl and OpenRLHF')")
_OPENRLHF_HOOK = ("OpenRLHF does not log it; record it with entrodiag.hooks.integrations.openrlhf.attach "
                  "(training_hooks/README.md, 'verl and OpenRLHF')")

#: framework → what (a step column, or ``evals``/``tokens``/``spans``/``histograms``) → hint
HINTS: dict[str, dict[str, str]] = {
    "trl": {
        "evals": "give GRPOTrainer an eval_dataset with eval_strategy='steps' and eval_steps=N; TRL then logs "
                 "eval_reward and eval_rewards/<reward fn>/mean (an accuracy reward function gives the "
                 "validation accuracy)",
        "entropy_mean": "TRL's GRPOTrainer logs 'entropy' from TRL 0.20 on; upgrade TRL",
        "reward_mean": "TRL logs 'reward' (the sum of the reward functions)",
        "reward_std": "TRL logs 'reward_std'",
        "zero_adv_group_frac": "TRL logs 'frac_reward_zero_std' from TRL 0.19 on",
        "resp_len_mean": "TRL logs 'completions/mean_length'",
        "*": _TRL_CALLBACK,
    },
    "verl": {
        "evals": "set trainer.test_freq=N with data.val_files; verl logs val-core/<data source>/reward/mean@1 "
                 "(older verl: val/test_score/<data source>)",
        "entropy_mean": "verl logs 'actor/entropy' (before 2025: 'actor/entropy_loss')",
        "reward_mean": "verl logs 'critic/rewards/mean'",
        "resp_len_mean": "verl logs 'response_length/mean'",
        "*": _VERL_HOOK,
    },
    "openrlhf": {
        "evals": "pass --eval_dataset and --eval_steps N; OpenRLHF logs eval/eval_<dataset>_pass1",
        "entropy_mean": "OpenRLHF logs 'entropy_loss' (the mean token entropy)",
        "reward_mean": "OpenRLHF logs 'reward'",
        "resp_len_mean": "OpenRLHF logs 'response_length'",
        "*": _OPENRLHF_HOOK,
    },
    "tinker": {
        "evals": "give the cookbook's RL loop a test-set evaluator (RLTestSetEvaluator) and eval_every=N; it logs "
                 "test/env/all/correct",
        "entropy_mean": "Tinker's cookbook logs 'optim/entropy' (a sampled estimate)",
        "reward_mean": "Tinker's cookbook logs 'env/all/reward/total'",
        "resp_len_mean": "Tinker's cookbook logs 'env/all/ac_tokens_per_turn'",
        "tokens": "token rows come only from a loop recorded with entrodiag.Recorder (token_sample > 0); "
                  "Tinker's metrics.jsonl has none",
        "*": "Tinker's cookbook does not log {what}; record the loop with entrodiag.Recorder",
    },
    "custom": {
        "evals": "log a validation accuracy every few steps (in a typed JSONL, as records of kind 'eval' "
                 "with an 'accuracy' field); entrodiag import reads it as val/accuracy",
        "tokens": "token rows come only from a loop recorded with entrodiag.Recorder (token_sample > 0); "
                  "a metrics file has none",
        "*": "log a column named {what} in the metrics file (entrodiag import maps it), or record the loop "
             "with entrodiag.Recorder",
    },
}


def framework(run: Run) -> str | None:
    """``trl``/``verl``/``openrlhf``/``tinker``/``custom`` for an imported run, ``None`` for entrodiag's own."""
    source = str(run.meta.get("source") or "")
    if not source.startswith("import:"):
        return None
    return (run.meta.get("imported") or {}).get("framework") or "custom"


def log_hint(run: Run, what: str) -> str | None:
    """What to log in the run's framework to get ``what``; ``None`` for entrodiag's own runs."""
    fw = framework(run)
    if fw is None:
        return None
    table = HINTS.get(fw, HINTS["custom"])
    return table.get(what, table["*"]).format(what=what)


_KIND = {"token_entropy": "full-vocabulary token entropy",
         "sampled_neglogp": "a sampled estimate (mean −log p of the sampled tokens)"}
_AGG = {"token_mean": "token mean", "seq_mean": "sequence mean of token means", "seq_sum": "sum per response"}


def entropy_notes(run: Run) -> tuple[str | None, list[str]]:
    """``(statement, warnings)`` about the run's entropy column, from run.json ``entropy_semantics``.

    The statement says what the number is (kind, aggregation, temperature, on what basis); the
    warnings say when the law or the collapse thresholds are applied to an approximation: a
    sampled −log p estimate, a per-response sum, an unknown kind, or a temperature other than 1.
    Runs entrodiag recorded itself measure full-vocabulary token entropy: no statement.
    """
    sem = run.meta.get("entropy_semantics")
    if isinstance(sem, dict) and sem.get("tokens") == "surprisal" and not sem.get("column"):
        return ("no entropy was logged; the token rows hold surprisal (−log p of each sampled token), not entropy",
                ["the token rows are surprisal (−log p of the sampled token: one noisy sample of the entropy at each "
                 "position), not the full-vocabulary entropy: there is no entropy series for the law or the collapse "
                 "thresholds"])
    if not isinstance(sem, dict) or not sem.get("column"):
        return None, []
    kind, agg, temp = sem.get("kind"), sem.get("aggregation"), sem.get("temperature")
    statement = (f"entropy {sem['column']}: {_KIND.get(kind, 'kind unknown')}, {_AGG.get(agg, 'aggregation unknown')}, "
                 f"temperature {temp if temp is not None else 'unknown'} ({sem.get('basis')})")
    warnings = []
    if kind == "sampled_neglogp":
        warnings.append("the entropy is a sampled −log p estimate, not the full-vocabulary entropy the law and the "
                        "thresholds were calibrated on: read its fit and flags as approximate")
    elif kind is None:
        warnings.append("what the entropy column measures is not known: the law and the thresholds assume the "
                        "full-vocabulary token entropy at temperature 1")
    if agg == "seq_sum":
        warnings.append("the entropy is summed per response, so it grows with response length: a length change "
                        "moves it without any change of the policy's uncertainty")
    if temp is not None and abs(float(temp) - 1.0) > 1e-6:
        warnings.append(f"the entropy was measured at temperature {temp}, not 1: the law's coefficients and the "
                        "thresholds were calibrated at temperature 1")
    return statement, warnings


@dataclass(frozen=True)
class RewardSeries:
    """The training series the detectors, the dynamics and watch read as the run's reward:
    ``column`` (a step column), ``label`` (``reward``, ``task score``, ...), ``reason`` (why this
    one; empty when there was no choice) and ``kl`` (whether ``reward_mean`` is known to hold a KL
    penalty: True, False, or None when nothing says)."""

    column: str
    label: str
    reason: str = ""
    kl: bool | None = None

    def to_dict(self) -> dict:
        return {"column": self.column, "label": self.label, "reason": self.reason, "kl_in_reward": self.kl}


#: frameworks whose logged reward never holds a KL penalty (Tinker's cookbook adds its KL penalty to the
#: advantages, ``incorporate_kl_penalty``): there a reward that differs from the task score adds other
#: terms to it (a format penalty), and the reason says so
REWARD_WITHOUT_KL = frozenset({"tinker"})


def _logged(run: Run, column: str) -> str:
    """The name the framework logged ``column`` under (run.json ``imported.columns``), else ``column``."""
    cols = (run.meta.get("imported") or {}).get("columns") or {}
    return next((k for k, v in cols.items() if v == column), column)


def reward_series(run: Run) -> RewardSeries | None:
    """Which step column is the run's reward, a task score free of a KL penalty where there is one.

    verl with ``algorithm.use_kl_in_reward`` subtracts β·KL from the score per token: its
    ``critic/rewards/mean`` (``reward_mean``) is then the score minus the penalty, and
    ``critic/score/mean`` (``score_mean``) the task score. A reward is known to hold a KL penalty
    when the run logged a nonzero ``reward_kl_penalty`` (verl's ``actor/reward_kl_penalty``) or
    when its task score differs from it, except in a framework whose reward never holds one
    (``REWARD_WITHOUT_KL``: Tinker's ``env/all/reward/total`` is ``env/all/correct`` plus a format
    term): there the task score is still the performance series, and the reason says so without
    naming a KL penalty (``kl`` is ``None``). Then the task score is the performance series when the
    run has it; else the reward is used and the reason says it holds the penalty. A run that logs
    several reward functions (TRL's ``rewards/<fn>/mean``) and no task score reads its total reward
    (TRL's ``reward``, what the policy was trained on), even where R is one of the functions, and
    the reason says so. ``None`` when the run has neither.
    """
    r_steps, r = step_series(run, "reward_mean")
    s_steps, s = step_series(run, "score_mean")
    _, pen = step_series(run, "reward_kl_penalty")
    penalised = bool(len(pen)) and bool(np.any(np.abs(pen) > 1e-12))
    r_name, s_name = _logged(run, "reward_mean"), _logged(run, "score_mean")
    if len(r) and len(s):
        common, ir, is_ = np.intersect1d(r_steps, s_steps, return_indices=True)
        gap = float(np.max(np.abs(r[ir] - s[is_]))) if len(common) else 0.0
        differs = gap > 1e-9 * max(1.0, float(np.max(np.abs(s))))
        other_terms = framework(run) in REWARD_WITHOUT_KL  # the reward differs by other terms, never by a KL
        if (differs and not other_terms) or penalised:
            why = (f"{r_name} differs from the task score by up to {gap:.3g}" if differs else "")
            if penalised:
                why = (why + "; " if why else "") + f"{_logged(run, 'reward_kl_penalty')} is nonzero"
            return RewardSeries("score_mean", "task score",
                                f"the task score {s_name}: the reward {r_name} holds a KL penalty ({why}), so its "
                                "rise or fall is partly the penalty's", kl=True)
        if differs:  # a framework whose reward adds other terms to the score (Tinker's format term)
            return RewardSeries("score_mean", "task score",
                                f"the task score {s_name}: the reward {r_name} differs from it by up to {gap:.3g} "
                                "(it adds other terms to the score), so the score is the performance series")
        return RewardSeries("reward_mean", "reward", "", kl=False)
    if len(r):
        if penalised:
            return RewardSeries("reward_mean", "reward (holds a KL penalty)",
                                f"the reward {r_name} holds a KL penalty ({_logged(run, 'reward_kl_penalty')} is "
                                "nonzero) and the run logged no task score: a change of it may be the penalty's",
                                kl=True)
        fns = reward_functions(run)
        if len(fns) >= 2:  # TRL: the total is what the policy was trained on, whichever function R is
            return RewardSeries("reward_mean", "reward",
                                f"{r_name}, the total reward the policy was trained on (the weighted sum of the "
                                f"reward functions {', '.join(fns)}), not one of them")
        return RewardSeries("reward_mean", "reward")
    if len(s):
        return RewardSeries("score_mean", "task score", f"the run logged no reward, so its task score {s_name}")
    return None


__all__ = ["HINTS", "REWARD_WITHOUT_KL", "RewardSeries", "entropy_notes", "framework", "log_hint", "reward_series"]
