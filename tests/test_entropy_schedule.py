"""Entropy schedules as control targets (issue 28): the schedule's values by hand, the parser's
errors, the controller state across a checkpoint with a schedule and the guard, and the deviation
statistics against a hand count."""

import math

import numpy as np
import pytest
import torch
from wild import steps_run

from entrodiag.analysis.control import band_stats, control_summary
from entrodiag.entropy_control import EntropyControl
from entrodiag.entropy_schedule import Schedule, parse_schedule
from entrodiag.trainer import load_config


def feed_baseline(c, h0=0.6):
    """Ten steps at entropy ``h0``: the initial entropy is then exactly ``h0``."""
    return [c.observe(s, h0) for s in range(10)]


@pytest.mark.parametrize("spec, step, frac", [
    ("constant:0.75", 0, 0.75), ("constant:0.75", 500, 0.75),
    # linear from 1.0 at the control start (20) to 0.8 at step 120: a straight line
    ("linear:1.0,0.8@120", 0, 1.0), ("linear:1.0,0.8@120", 20, 1.0), ("linear:1.0,0.8@120", 45, 0.95),
    ("linear:1.0,0.8@120", 70, 0.9), ("linear:1.0,0.8@120", 120, 0.8), ("linear:1.0,0.8@120", 400, 0.8),
    # cosine: 0.8 + 0.2·(1 + cos(π·p))/2; p = 1/4 at step 45, 1/2 at step 70, 3/4 at step 95
    ("cosine:1.0,0.8@120", 20, 1.0), ("cosine:1.0,0.8@120", 45, 0.8 + 0.1 * (1 + math.sqrt(0.5))),
    ("cosine:1.0,0.8@120", 70, 0.9), ("cosine:1.0,0.8@120", 95, 0.8 + 0.1 * (1 - math.sqrt(0.5))),
    ("cosine:1.0,0.8@120", 200, 0.8),
    ("linear:0.5,1.0@30", 25, 0.75),  # upwards works too
])
def test_schedule_values_by_hand(spec, step, frac):
    assert parse_schedule(spec).frac(step, 20) == pytest.approx(frac)
    # through the controller: the target is the fraction × the initial entropy, the band ±20% around it
    c = EntropyControl("pi_coef", schedule=spec, control_from=20, guard=0)
    feed_baseline(c, 0.6)
    assert math.isnan(EntropyControl("pi_coef", schedule=spec, control_from=20).target_at(step))  # unknown yet
    assert c.target_at(step) == pytest.approx(0.6 * frac)
    if step >= 10:
        cols = c.observe(step, 0.5)
        assert cols["control/target"] == pytest.approx(0.6 * frac)
        assert (cols["control/band_low"], cols["control/band_high"]) == pytest.approx((0.48 * frac, 0.72 * frac))
        assert cols["control/error"] == pytest.approx(0.6 * frac - 0.5)


def test_schedule_ends_at_the_runs_last_step_and_a_bare_constant_keeps_the_target():
    cfg = load_config("tiny-arith-test", entropy_control="pi_coef", entropy_schedule="linear:1.0,0.5",
                      entropy_control_from=10)
    from entrodiag.trainer.controllers import from_config

    c = from_config(cfg)
    feed_baseline(c, 0.8)
    assert c.target_at(cfg.steps - 1) == pytest.approx(0.4) and c.target_at(10) == pytest.approx(0.8)
    assert c.target_at((10 + cfg.steps - 1) / 2) == pytest.approx(0.6)
    bare = EntropyControl("pi_coef", target_frac=0.5, schedule="constant")
    feed_baseline(bare, 0.8)
    assert bare.target_at(300) == pytest.approx(0.4)
    assert str(parse_schedule(" cosine:1,0.8@300 ")) == "cosine:1,0.8@300" and parse_schedule("") is None
    assert parse_schedule("constant") == Schedule("constant")


@pytest.mark.parametrize("spec, message", [
    ("wavy:1,0.8", "the kind must be one of constant, linear, cosine"),
    ("linear:1.0", "linear takes 2 fraction"),
    ("cosine:1.0,abc", "the fractions must be numbers"),
    ("linear:1.0,-0.8", "must be > 0"),
    ("linear:1.0,0.8@soon", "after @ comes the end step"),
    ("linear:1.0,0.8@", "after @ comes the end step"), ("linear:1.0,0.8@3_0", "after @ comes the end step"),
    ("linear:1.0,0.8@-5", "the end step must be >= 0"), ("linear:1.0,0.8@\u0663\u0660", "after @ comes the end step"),
    ("constant:0.7@100", "a constant target has no end step"),
])
def test_parser_errors_are_one_clear_line(spec, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_schedule(spec)
    assert "\n" not in str(e.value) and spec in str(e.value)
    # the same line reaches the user through the configuration
    with pytest.raises(ValueError, match=message):
        load_config("tiny-arith-test", entropy_control="pi_coef", entropy_schedule=spec)


@pytest.mark.parametrize("kw, message", [
    ({"entropy_schedule": "linear:1.0,0.8", "entropy_target_frac": 0.75}, "drop entropy_target"),
    ({"entropy_schedule": "linear:1.0,0.8@20", "entropy_control_from": 30}, "not after the control start 30"),
    ({"entropy_schedule": "constant"}, "needs a target"),
    ({"entropy_schedule": "linear:1.0,0.8", "entropy_guard": 0.9}, "entropy_guard must be 0 .off. or a multiple > 1"),
])
def test_configuration_errors(kw, message):
    with pytest.raises(ValueError, match=message) as e:
        load_config("tiny-arith-test", entropy_control="pi_clip", **kw)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="needs an end step"):  # where no run length is known (TRL)
        EntropyControl("pi_coef", schedule="cosine:1.0,0.8")


def plant(h, k):
    """The synthetic plant of tests/test_entropy_control.py (drift and the bonus coefficient)."""
    return h - 0.003 * h + 0.1 * k.coef + 0.01 * (k.clip_high - 0.2) + 0.01 * (0.2 - k.clip_low) + 0.05 * k.detach


def same(a, b):
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.mark.parametrize("mode", ["pi_coef", "pi_clip"])
def test_state_round_trip_continues_a_schedule_exactly(tmp_path, mode):
    kw = {"schedule": "cosine:1.0,0.7@150", "control_from": 30, "guard": 1.2}

    def run(c, h, steps, cols):
        for s in steps:
            k = c.knobs(s)
            cols.append(c.observe(s, h))
            h = plant(h, k)
        return h

    full: list = []
    run(EntropyControl(mode, **kw), 0.67, range(160), full)
    part: list = []
    c = EntropyControl(mode, **kw)
    h = run(c, 0.67, range(80), part)
    torch.save({"control": c.state_dict()}, tmp_path / "state.pt")  # as the checkpoint saves it
    c2 = EntropyControl(mode, **kw)
    c2.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True)["control"])
    run(c2, h, range(80, 160), part)
    assert len(part) == len(full) and all(same(a, b) for a, b in zip(part, full))
    targets = [col["control/target"] for col in full[30:151]]
    h0 = c2.initial_entropy  # the mean of the first 10 steps, restored from the checkpoint
    assert targets[0] == pytest.approx(h0) and targets[-1] == pytest.approx(0.7 * h0)  # the schedule's ends
    assert all(a >= b for a, b in zip(targets, targets[1:]))


def test_deviation_statistics_against_a_hand_count(tmp_path):
    steps = np.arange(8)
    target = np.array([0.5, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3])  # a schedule; control start at step 2
    h = np.array([0.9, 0.9, 0.55, 0.65, 0.41, 0.2, 0.35, 0.3])
    # from step 2: |H − T| / T = 0.1, 0.3, 0.025, 0.5, 1/6, 0 → within ±20%: steps 2, 4, 6, 7 (4 of 6)
    s = band_stats(steps, h, target, (0.8 * target, 1.2 * target), 2)
    assert s["in_schedule"] == pytest.approx(4 / 6) and s["n_after"] == 6
    assert s["mean_rel_deviation"] == pytest.approx((0.1 + 0.3 + 0.025 + 0.5 + 1 / 6 + 0) / 6)
    assert s["time_in_band"] == pytest.approx(4 / 6)  # the band follows the schedule
    assert s["target_start"] == 0.5 and s["target"] == 0.3
    # the same through a recorded run: analyze's control section and its text, the watch line
    run = steps_run(tmp_path / "r", {
        "entropy_mean": h, "control/target": target, "control/band_low": 0.8 * target,
        "control/band_high": 1.2 * target, "control/active": [0, 0, 1, 1, 1, 1, 1, 1],
        "control/coef": np.zeros(8), "control/error": target - h,
        "control/guard": [0, 0, 0, 0, 0, 1, 1, 0], "control/guard_bound": np.full(8, 1.0)})
    # steps_run numbers the steps from 1: the control start is step 3
    cs = control_summary(run)
    assert cs.in_schedule == pytest.approx(4 / 6) and cs.control_from == 3 and cs.guard_steps == 2
    assert "within ±20% of the target on 67% of 6 steps from step 3 (mean deviation 18%)" in cs.describe()
    from entrodiag.watch import Watcher

    w = Watcher(tmp_path / "r", events=None)
    w.poll(force=True, emit=False)
    line = w.status.line()
    assert "entropy within ±20% of the target on 67% of 6 steps" in line and "guard acted on 2 steps" in line


def test_a_hand_over_keeps_the_schedule_running():
    """--on-collapse at step 60 (schedule linear:1.0,0.5 from 10 to 99): the anneal goes on where it was
    (0.6 × (1 − 0.5·50/89) at step 60), it does not restart at F0; a checkpoint keeps the schedule's start."""
    kw = {"schedule": "linear:1.0,0.5@99", "control_from": 10, "guard": 0}
    c = EntropyControl("none", **kw)
    feed_baseline(c, 0.6)
    before = c.target_at(60)
    new = c.hand_over(EntropyControl("pi_coef", **kw), 60)
    assert new.control_from == 60 and new.active(60) and not new.active(59)
    assert new.target_at(60) == pytest.approx(before) == pytest.approx(0.6 * (1 - 0.5 * 50 / 89))
    again = EntropyControl("pi_coef", **kw)
    again.load_state_dict(new.state_dict())
    assert again.target_at(80) == pytest.approx(new.target_at(80)) == pytest.approx(0.6 * (1 - 0.5 * 70 / 89))


def test_resume_refuses_a_schedule_or_an_end_that_moves_the_target(tmp_path, caplog):
    """The state holds the schedule and its end step: a resume with another schedule, or another run
    length under a schedule without @END, is refused in one line; the same end given as @END is fine."""
    from entrodiag.trainer.controllers import from_config

    cfg = load_config("tiny-arith-test", entropy_control="pi_coef", entropy_schedule="linear:1.0,0.5",
                      entropy_control_from=10)
    c = from_config(cfg)
    feed_baseline(c, 0.6)
    state = c.state_dict()
    assert (state["schedule"], state["end_step"]) == ("linear:1,0.5", 49)
    for kw, message in (({"steps": 80}, "schedule linear:1,0.5 ends at step 49, this run's linear:1,0.5 at 79 "
                                         r"\(the run's length changed"),
                        ({"entropy_schedule": "cosine:1.0,0.5"}, "target is schedule 'linear:1,0.5', this run's "
                                                                  "schedule 'cosine:1,0.5'")):
        other = from_config(load_config("tiny-arith-test", **{**cfg.to_dict(), **kw}))
        with pytest.raises(ValueError, match=message) as e:
            other.load_state_dict(state)
        assert "\n" not in str(e.value)
    same_end = from_config(load_config("tiny-arith-test", **{**cfg.to_dict(), "steps": 80,
                                                            "entropy_schedule": "linear:1.0,0.5@49"}))
    same_end.load_state_dict(state)
    assert same_end.target_at(30) == pytest.approx(c.target_at(30))
    moved_end = from_config(load_config("tiny-arith-test", **{**cfg.to_dict(), "entropy_schedule": "linear:1.0,0.5@40"}))
    with pytest.raises(ValueError, match=r"schedule linear:1,0.5 ends at step 49, this run's linear:1,0.5@40 at 40 "
                                         r"\(the end step \(@END\) changed: resume with linear:1,0.5@49\)"):
        moved_end.load_state_dict(state)
    # an older checkpoint: no schedule saved (not checked), no initial entropy though past step 0: guard off, said
    old = {k: v for k, v in state.items() if k not in ("schedule", "end_step", "target_spec")} | {"baseline": [], "last_error": 0.1}
    with caplog.at_level("WARNING", logger="entrodiag.entropy_control"):
        c2 = from_config(cfg)
        c2.load_state_dict(old)
    assert c2.guard == 0 and "guard is off" in caplog.text


def test_resume_compares_the_target_not_how_it_is_written():
    """The state holds the resolved target: another entropy_target(_frac) is refused in one line; the
    same target written another way (constant:F or entropy_target_frac F; a bare constant or none)
    is accepted; a state without target_spec (older) is checked on its schedule alone."""
    from entrodiag.trainer.controllers import from_config

    cfg = load_config("tiny-arith-test", entropy_control="pi_coef", entropy_target_frac=0.9, entropy_control_from=10)
    base = from_config(cfg)
    state = base.state_dict()
    for kw, message in (({"entropy_target_frac": 0.8}, "target is 0.9 × the initial entropy, this run's 0.8 ×"),
                        ({"entropy_target_frac": 0.0, "entropy_target": 0.5}, "this run's 0.5 nats"),
                        ({"entropy_target_frac": 0.0, "entropy_schedule": "linear:1.0,0.5"}, "schedule 'linear:1,0.5'")):
        with pytest.raises(ValueError, match=message) as e:
            from_config(load_config("tiny-arith-test", **{**cfg.to_dict(), **kw})).load_state_dict(state)
        assert "\n" not in str(e.value)
    for kw in ({"entropy_target_frac": 0.0, "entropy_schedule": "constant:0.9"}, {"entropy_schedule": "constant"}):
        same = from_config(load_config("tiny-arith-test", **{**cfg.to_dict(), **kw}))
        same.load_state_dict(state)
        assert same.state_dict()["target_spec"] == state["target_spec"]
    older = {k: v for k, v in state.items() if k != "target_spec"}
    from_config(load_config("tiny-arith-test", **{**cfg.to_dict(), "entropy_target_frac": 0.8})).load_state_dict(older)
