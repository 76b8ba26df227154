"""The ``template_collapse`` detector: the mutual-information proxy falls while entropy holds.

RAGEN-2 (Wang et al. 2026, arXiv 2604.06268): a policy can keep its entropy while its answers stop
depending on their input, a fixed template that looks diverse; entropy does not see it, the mutual
information between prompt and answer does. The built-in trainer logs a proxy of it every
``mi_every`` steps (``mi_proxy``; ``entrodiag.hooks.mutual_info`` defines it and gives it to
Recorder users). RAGEN-2 explains the collapse by a low signal-to-noise ratio: with little reward
variance the task gradient is weak and the regularisers wipe out the differences between inputs;
so the flag names the share of zero-variance groups when the run has it.

Rule (thresholds in ``CollapseThresholds``): over the steps that logged ``mi_proxy``, its end and
its last ``template_persist`` points are at most (1 − ``template_mi_drop``) × its start, while
the end entropy stays within ``template_entropy_band`` of H0 (an entropy that fell or rose with
it is judged by the entropy flags). Warning; critical when the fall reaches
``template_mi_drop_critical``.
"""

from __future__ import annotations

import numpy as np

from .collapse_context import Context, Flag, Skip

HOW_TO_LOG = ("train with the built-in trainer (--mi-every N), or pass mi_proxy=float(mi_proxy(model, ...).mean()) "
              "to record_batch (entrodiag.hooks.mutual_info)")


def template_collapse(c: Context) -> Flag | None:
    """The flag, ``None`` when the MI proxy holds (or falls with entropy), ``Skip`` without its inputs."""
    try:
        steps, mi = c.get("mi_proxy", HOW_TO_LOG)
    except Skip:
        if len(c.series["mi_proxy"][1]):  # too few points: that reason stands
            raise
        # the same hint whatever the framework: none logs it, so the framework hints do not apply
        raise Skip(f"no mi_proxy in the step rows ({HOW_TO_LOG})") from None
    start, end = c.start_end(mi)
    if start <= c.th.template_mi_min_start:
        raise Skip(f"the MI proxy starts at {start:.3g} nats: the answers never depended measurably on their prompts")
    level = (1.0 - c.th.template_mi_drop) * start
    below = mi <= level
    k = min(int(c.th.template_persist), len(mi))
    if end > level or not below[-k:].all():
        return None
    _, h, h0 = c.entropy()
    h_end = c.start_end(h)[1]
    if abs(h_end / h0 - 1.0) > c.th.template_entropy_band:
        return None  # entropy moved with it: the entropy flags judge that collapse
    above = np.nonzero(~below)[0]
    first = int(above[-1]) + 1 if len(above) else 0  # the first point of the final run below the level
    fall = 1.0 - end / start
    evidence = {"mi_start": start, "mi_end": end, "mi_fall": fall, "mi_points": len(mi),
                "entropy_start": h0, "entropy_end": h_end, "entropy_ratio": h_end / h0}
    snr = ""
    try:
        zero = c.start_end(c.get("zero_adv_group_frac", "")[1])[1]
        evidence["zero_adv_end"] = zero
        snr = f"; {zero:.0%} of the groups have all-equal rewards (the weak signal RAGEN-2 names as the cause)"
    except Skip:
        pass
    return Flag(
        "template_collapse", "critical" if fall >= c.th.template_mi_drop_critical else "warning",
        steps[first], steps[-1], evidence,
        "train on the prompts whose rewards vary (RAGEN-2's SNR-aware filtering: keep the groups of highest "
        "reward std each step; at the least drop the all-equal groups, DAPO's dynamic sampling) and lower the "
        "regularisers that take over when the reward signal is weak (entropy bonus, KL coefficient); read the "
        "samples: one answer template across different prompts",
        f"the MI proxy fell {fall:.0%} from its start ({start:.3g} → {end:.3g} nats) from step {steps[first]} on "
        f"while entropy held ({h0:.3g} → {h_end:.3g} nats, {h_end / h0 - 1:+.0%}): the answers stopped depending on "
        f"their prompts (template collapse, RAGEN-2), which entropy does not show{snr}",
    )


__all__ = ["HOW_TO_LOG", "template_collapse"]
