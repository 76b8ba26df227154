"""Which metric is R of the entropy law: the one choice that analyze, report, dashboard and watch
all make through ``choose_metric``.

The law (Cui et al. 2025) ties *held-out* performance to the training entropy, so R is:

1. a validation accuracy when the run logged one: ``val/accuracy_sampled``, ``val/accuracy``,
   then a name with ``accuracy`` (not a format check), then one with ``acc``/``pass``/``score``/
   ``correct``/``solve``/``success``/``exact_match``, then any other validation metric that is a
   performance (a reward, a format accuracy);
2. only when there is none (or only one logged at a single step, which says where the run stood
   once, not how performance moved with the entropy: ``evaluated_once``), a training series: a training accuracy or rule-based score
   (``score_mean``, a name with ``accuracy``), else the training reward ``reward_mean``, else one
   reward function's mean (``rewards/<fn>/mean``), else a series named like a score (``pass``,
   ``score``, ``correct``, ... as in tier 1: ROLL's ``reward/hard_pass_rate``); the choice then
   says *training* everywhere, because a fit on the batches the policy trains on is not a
   statement about unseen problems.
   Where the run logs several reward functions, ``reward_mean`` is their weighted total (TRL),
   which holds format or shape terms; R is then the one function named for correctness (accuracy,
   correct, exact match, answer, an answer index, ...; not format/think/length/penalty terms) whose
   values lie in [0, 1], and the total only where no single function is identifiable, the reason
   saying which it used and why.

A series that lost most of its values to parsing on import (``lost_to_parsing``: e.g. the
validation keys after the 4,096th character of lines W&B's ``output.log`` cut) is not a candidate.

R is a *mean* score (the law is about the expected score of the sampling policy): a statistic
of the samples of a prompt other than their mean (``best@k``, ``worst@k``, ``maj@k``, ``pass@k``
for k > 1, a ``std``, a ``max`` or ``min``; ``NOT_MEAN``) is never chosen by default, only with
``metric=``. Among the
candidates of a tier, a ``mean@N`` name comes first (verl's ``val-core/<data source>/<var>/mean@N``, or
``mean_at_N`` as its MLflow logger writes ``@``; ``best_at_N``, ``std_at_N``, ... are statistics as above),
and verl's ``val-aux/`` names (``val/aux/...``) come after its ``val-core/`` ones.

Never a time, length, rate, count, loss, entropy or KL (``NOT_PERFORMANCE``), even when named with
``metric=`` (``--metric``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from ..metric_names import NOT_MEAN, NOT_PERFORMANCE, is_lost, is_mean_score, is_performance
from ..store.reader import Run
from .runs import AnalysisError

_MEAN_AT = re.compile(r"(^|/)mean(@|_at_)\d+$", re.IGNORECASE)  # mean@N; mean_at_N in verl's MLflow names
_ACCURACY = re.compile(r"accuracy", re.IGNORECASE)
_ACCURACY_LIKE = re.compile(  # a pass, not a bypass
    r"(acc\b|acc/|acc@|(?<![a-z])pass|score|correct|solve|success|exact_match|(^|/)em\b)", re.IGNORECASE)
_FORMAT = re.compile(r"format", re.IGNORECASE)
_REWARD_FN = re.compile(r"^rewards/([^/]+)/mean$")
# a reward function named for the task's correctness (TRL's accuracy_reward, correctness_reward_func,
# an exact-match or multiple-choice answer-index reward) and one named for a format or shape term
_CORRECTNESS_FN = re.compile(
    r"(accura|correct|exact|match|answer|solv|pass|(^|_)acc(_|$)|(^|_)idx(_|$)|(^|_)em(_|$))", re.IGNORECASE)
_SHAPE_FN = re.compile(r"(format|think|tag|xml|length|len(_|$)|penalty|style|strict|soft|count|diversity)",
                       re.IGNORECASE)


@dataclass(frozen=True)
class MetricChoice:
    """R of the law: ``name`` (an evaluation name, or a step column when ``source`` is
    ``"train"``), ``label`` (``validation accuracy``, ``training reward``, ...) and ``reason``
    (one sentence: why this one)."""

    name: str
    source: str  # "eval" or "train"
    label: str
    reason: str

    @property
    def is_training(self) -> bool:
        return self.source == "train"

    def describe(self) -> str:
        """``R = <name> (<label>): <reason>``, the line every output prints."""
        return f"R = {self.name} ({self.label}): {self.reason}"

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "label": self.label, "reason": self.reason,
                "training": self.is_training}


def _eval_rank(name: str) -> int | None:
    if not is_performance(name):
        return None
    if name in ("val/accuracy_sampled", "val/accuracy"):
        return 0 if name.endswith("sampled") else 1
    if "accuracy_sampled" in name:
        return 2
    fmt = bool(_FORMAT.search(name))
    if _ACCURACY.search(name) and not fmt:
        return 3
    if _ACCURACY_LIKE.search(name) and not fmt:
        return 4
    if "reward" in name.lower():
        return 5
    return 6


def _eval_label(name: str) -> str:
    rank = _eval_rank(name)
    return "validation accuracy" if rank is not None and rank <= 4 else "validation metric"


def rank_eval_metrics(names: list[str]) -> list[str]:
    """The evaluation names that can be R without ``--metric``, best first: mean scores only
    (``is_mean_score``), by tier, ``val-core`` before ``val-aux``, ``mean@N`` first within a tier,
    else in logged order."""
    ranked = [(n.startswith("val/aux/"), r, not _MEAN_AT.search(n), i, n) for i, n in enumerate(names)
              if is_mean_score(n) and (r := _eval_rank(n)) is not None]
    return [t[-1] for t in sorted(ranked)]


def _train_rank(name: str) -> int | None:
    if name == "score_mean":
        return 0
    if not is_performance(name) or not is_mean_score(name) or name.startswith(("trl/", "eval/")):
        return None
    if _ACCURACY.search(name) and not _FORMAT.search(name) and not name.startswith("best_"):
        return 1
    if name == "reward_mean":
        return 2
    if _REWARD_FN.match(name):
        return 3
    if _ACCURACY_LIKE.search(name) and not _FORMAT.search(name):
        return 4  # a pass rate or score under a name of the framework's own (ROLL's reward/hard_pass_rate)
    return None


def _train_label(name: str) -> str:
    return "training accuracy" if (_train_rank(name) or 0) in (0, 1, 4) else "training reward"


def eval_names(run: Run) -> list[str]:
    """Evaluation metric names in the order the run first logged them."""
    ev = run.evals
    if ev.is_empty():
        return []
    first = ev.drop_nulls("value").group_by("name").agg(pl.col("step").min()).sort("step", "name")
    return first["name"].to_list()


def _step_columns(run: Run) -> list[str]:
    steps = run.steps
    return [c for c in steps.columns
            if c not in ("step", "rank") and steps[c].dtype.is_numeric() and steps[c].drop_nulls().len() > 0]


def lost_to_parsing(run: Run) -> dict[str, str]:
    """``{evaluation or step column: why}`` for the series of an imported run that lost most of
    their values to parsing (run.json ``imported.lost``, written by the importer: lines a logger
    cut short, text that is not a number): what is left of such a series is not taken as R."""
    lost = (run.meta.get("imported") or {}).get("lost") or {}
    return {e["name"]: f"{k} lost {e['lost']} of {e['of']} values: {e['why']}" for k, e in lost.items()
            if isinstance(e, dict) and is_lost(e)}


def reward_functions(run: Run) -> list[str]:
    """The step columns of a run's separate reward functions (TRL's ``rewards/<fn>/mean``), whose
    weighted sum is its total reward ``reward_mean``; empty when it logged none."""
    return [c for c in _step_columns(run) if _REWARD_FN.match(c)]


def _task_reward_function(run: Run) -> tuple[str, str]:
    """The training R where the total reward ``reward_mean`` would be it and the run logs several
    reward functions (TRL's ``rewards/<fn>/mean``; ``reward_mean`` is their weighted sum): the one
    function named for correctness (``_CORRECTNESS_FN``, not a format or shape term), provided its
    values lie in [0, 1] as a mean of per-sample correctness does; else the total. Returns
    ``(name, the clause of the reason that says which and why)``."""
    fns = reward_functions(run)
    if len(fns) < 2:
        return "reward_mean", ""
    short = [_REWARD_FN.match(c).group(1) for c in fns]
    task = [c for c, f in zip(fns, short) if _CORRECTNESS_FN.search(f) and not _SHAPE_FN.search(f)]
    listed = ", ".join(short)
    if len(task) == 1:
        v = run.steps[task[0]].drop_nulls().to_numpy()
        if len(v) and float(v.min()) >= 0.0 and float(v.max()) <= 1.0:
            return task[0], (f"; not reward_mean, the weighted total of the reward functions {listed}, "
                             f"which holds format or shape terms: {task[0]} is the one function named for "
                             "correctness, its values within [0, 1] (the share of correct samples)")
    why = ("several are named for correctness" if len(task) > 1 else
           "its values are not within [0, 1]" if task else "none is named for correctness")
    return "reward_mean", (f"; reward_mean is the weighted total of the reward functions {listed} and may "
                           "hold format or shape terms, but no one of them is identifiable as the task score "
                           f"({why})")


def evaluated_once(run: Run, names: list[str]) -> list[str]:
    """Those of the evaluation ``names`` logged at a single step (a final or initial validation
    only): one point says where the run stood once, not how performance moved with the entropy,
    so it is R only with ``metric=`` when the run has a training score or reward."""
    ev = run.evals.drop_nulls("value")
    if ev.is_empty():
        return []
    counts = dict(ev.filter(pl.col("name").is_in(names)).group_by("name").agg(pl.col("step").n_unique()).iter_rows())
    return [n for n in names if counts.get(n, 0) < 2]


def choose_metric(run: Run, metric: str | None = None) -> MetricChoice:
    """R of the law for ``run`` (see the module docstring); ``metric`` names it explicitly.

    Raises:
        AnalysisError: ``metric`` is not logged or is not a performance, or the run has neither a
            validation metric nor a training reward/accuracy; the message lists what it has.
    """
    evals = eval_names(run)
    if metric is not None:
        if not is_performance(metric):
            raise AnalysisError(
                f"--metric {metric}: a time, length, rate, count, loss or entropy is not a performance "
                "the entropy law can predict; name an accuracy or a reward")
        if metric in evals:
            return MetricChoice(metric, "eval", _eval_label(metric), "chosen with --metric")
        cols = _step_columns(run)
        if metric in cols:
            label = _train_label(metric) if _train_rank(metric) is not None else "training metric"
            return MetricChoice(metric, "train", label, "chosen with --metric; a training series, not held out")
        raise AnalysisError(
            f"run {run.run_id} has no evaluation or step column named {metric!r}; evaluations: "
            f"{', '.join(evals) or 'none'}; step columns that can be R: "
            f"{', '.join(sorted((c for c in cols if _train_rank(c) is not None), key=_train_rank)) or 'none'}")
    lost = lost_to_parsing(run)
    ranked = [n for n in rank_eval_metrics(evals) if n not in lost]
    cols = [(r, i, c) for i, c in enumerate(_step_columns(run)) if (r := _train_rank(c)) is not None]
    once = evaluated_once(run, ranked) if cols else []
    ranked = [n for n in ranked if n not in once]
    if ranked:
        name = ranked[0]
        others = [n for n in ranked if n != name]
        stats = [n for n in evals if not is_mean_score(n) and _eval_rank(n) is not None]
        gone = [f"{n} ({lost[n]})" for n in rank_eval_metrics(evals) if n in lost]
        why = ("the law relates held-out performance to the training entropy"
               + (f"; preferred over {', '.join(others)}" if others else "")
               + (f"; not R, most of its values lost to parsing: {', '.join(gone)}" if gone else "")
               + (f"; not a mean score, so R only with --metric: {', '.join(stats)}" if stats else ""))
        return MetricChoice(name, "eval", _eval_label(name), why)
    if cols:
        name = sorted(cols)[0][2]
        total = ""
        if name == "reward_mean":
            name, total = _task_reward_function(run)
        label = _train_label(name)
        rest = [n for n in evals if n not in once]
        skipped = f" (its evaluations {', '.join(rest)} are not a performance)" if rest else ""
        no_series = (f"the run's validation {', '.join(once)} was logged at a single step (one point is no "
                     f"series to relate to the entropy){skipped}" if once
                     else f"the run logged no validation metric{skipped}")
        return MetricChoice(
            name, "train", label,
            f"{no_series}, so R is the {label} on the training batches: "
            "the fit and its ceiling describe the training batches, not accuracy on unseen problems" + total)
    raise AnalysisError(
        f"run {run.run_id} has no validation metric and no training reward or accuracy to use as R"
        + (f" (its evaluations {', '.join(evals)} are not a performance)" if evals else ""))


__all__ = ["NOT_MEAN", "NOT_PERFORMANCE", "MetricChoice", "choose_metric", "eval_names", "evaluated_once",
           "is_mean_score", "is_performance", "lost_to_parsing", "rank_eval_metrics", "reward_functions"]
