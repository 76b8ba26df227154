"""Closed-loop entropy control: each controller on a synthetic plant, the controller state across
a checkpoint and a resumed run, and the control analysis against hand-computed numbers."""

import json

import numpy as np
import polars as pl
import pytest
import torch

from entrodiag import load_run
from entrodiag.analysis.control import band_stats, control_summary
from entrodiag.trainer import load_config
from entrodiag.trainer.controllers import CONTROLLERS, EntropyControl, parse_pair
from schema_check import diagnosis

# The synthetic plant: with no control, entropy decays by 0.3% of itself per step (GRPO's drift);
# a bonus coefficient α adds G_COEF·α nats per step, the clip bounds add G_CLIP·(ε_high − 0.2) and
# G_CLIP·(0.2 − ε_low) (a wider upper, a tighter lower bound raise entropy), a detached share d of
# the tokens (> 0: the largest covariance) adds G_DETACH·d.
# (On tiny-arith a fixed α = 0.1 raised entropy by ~0.01 nats per step at first: G_COEF = 0.1.)
DRIFT, G_COEF, G_CLIP, G_DETACH = 0.003, 0.1, 0.01, 0.05


def plant(h, knobs, g_clip=G_CLIP):
    return (h - DRIFT * h + G_COEF * knobs.coef + g_clip * (knobs.clip_high - 0.2) + g_clip * (0.2 - knobs.clip_low)
            + G_DETACH * knobs.detach)


def simulate(mode, steps=300, h0=0.67, g_clip=G_CLIP, **kw):
    """Run ``mode`` on the plant; returns (controller, entropies, per-step columns)."""
    c = EntropyControl(mode, **{"target_frac": 0.75, "control_from": 50, "clip_high": 0.2, "coef": 0.0, **kw})
    h, hs, cols = h0, [], []
    for s in range(steps):
        k = c.knobs(s)
        hs.append(h)
        cols.append(c.observe(s, h))
        h = plant(h, k, g_clip)
    return c, np.array(hs), cols


def pi_clip_knobs(u, span=0.25, eps_min=0.02, eps_max=0.5, detach_max=0.5, base=0.2):
    """pi_clip's split as its docstring states it, written out independently (both bounds at 0.2)."""
    s = min(max(u / span, -1), 1)
    hi = base + s * (eps_max - base) if s >= 0 else base + (-s) * (eps_min - base)
    lo = base + s * (eps_min - base) if s >= 0 else base + (-s) * (eps_max - base)
    d = np.sign(u) * detach_max * max(abs(u) - span, 0) / (1 - span) if span < 1 else 0.0
    return hi, lo, d


def settling_after(hs, target, start, tol=0.05):
    """Steps after ``start`` from which |H − target| <= tol·target to the end (None: never)."""
    inside = np.abs(hs - target) <= tol * target
    if not inside[-1]:
        return None
    out = np.flatnonzero(~inside)
    return max(int(out[-1]) + 1 - start, 0) if out.size else 0


@pytest.mark.parametrize("mode", ["pi_coef", "adaptive_coef", "pi_clip"])
def test_each_controller_settles_on_the_plant_within_its_stated_steps(mode):
    c, hs, cols = simulate(mode)
    target = 0.75 * hs[:10].mean()  # the first 10 steps define the target
    assert c.target == pytest.approx(target)
    settle = settling_after(hs, target, 50)
    assert settle is not None and settle <= CONTROLLERS[mode].settles_within, (mode, settle)
    # before the control start the knobs are the configured ones; the columns say what was applied
    assert all(col["control/coef"] == 0.0 and col["control/clip_high"] == 0.2 and col["control/clip_low"] == 0.2
               and col["control/detach"] == 0.0 for col in cols[:50])
    assert cols[49]["control/active"] == 0.0 and cols[50]["control/active"] == 1.0
    knob = "control/effort" if mode == "pi_clip" else "control/coef"
    assert len({round(col[knob], 12) for col in cols[50:]}) > 5, "the controller must move its knob"
    # without control the same plant leaves the ±5% band and does not come back
    _, free, _ = simulate("none")
    assert settling_after(free, target, 50) is None and free[-1] < 0.8 * target


def test_pi_clip_uses_the_covariance_clip_when_the_clip_bounds_have_no_authority():
    """tiny-arith's case: the clip bounds do not move entropy at all (g_clip = 0). pi_clip then
    saturates them and holds the target with the detached share, within its stated steps;
    where the bounds do have authority (the default plant) it holds it with them alone."""
    c, hs, cols = simulate("pi_clip", g_clip=0.0, steps=600)
    settle = settling_after(hs, c.target, 50)
    assert settle is not None and settle <= CONTROLLERS["pi_clip"].settles_within, settle
    last = cols[-1]
    assert last["control/clip_high"] == pytest.approx(0.5) and last["control/clip_low"] == pytest.approx(0.02)
    assert last["control/detach"] > 0  # detaching entropy-lowering tokens holds it up
    # in steady state the detached share cancels the drift: G_DETACH·d = DRIFT·target
    assert last["control/detach"] == pytest.approx(DRIFT * c.target / G_DETACH, rel=0.02)
    # the knobs are the split of the effort, as stated (an independent recomputation)
    for col in cols[50:]:
        hi, lo, d = pi_clip_knobs(col["control/effort"])
        assert (col["control/clip_high"], col["control/clip_low"], col["control/detach"]) == pytest.approx((hi, lo, d))
    _, hs_auth, cols_auth = simulate("pi_clip")
    assert all(col["control/detach"] == 0.0 for col in cols_auth[120:])  # the bounds suffice here
    # entropy above the target: by default the effort stops at −0.4, so at most 10% of the tokens
    # (the smallest covariance) are detached; with bounds (−1, 1) up to half, and it gets there sooner
    c, hs, cols = simulate("pi_clip", g_clip=0.0, h0=0.9, target=0.5, target_frac=0.0, control_from=0)
    assert min(col["control/effort"] for col in cols) == pytest.approx(-0.4)
    assert min(col["control/detach"] for col in cols) == pytest.approx(-0.5 * (0.4 - 0.25) / 0.75)
    c2, hs2, cols2 = simulate("pi_clip", g_clip=0.0, h0=0.9, target=0.5, target_frac=0.0, control_from=0,
                              bounds=(-1.0, 1.0))
    assert min(col["control/detach"] for col in cols2) < 0 and abs(hs2[-1] - 0.5) < 0.025
    reach = [int(np.argmax(np.asarray(h) <= 0.55)) for h in (hs, hs2)]
    assert reach[1] < reach[0]


def test_pi_clip_bounds_and_trl_mode():
    with pytest.raises(ValueError, match=r"effort u in \[-1, 1\]"):
        EntropyControl("pi_clip", target=0.5, bounds=(0.02, 2.0))
    c = EntropyControl("pi_clip", target=0.5, control_from=0, bounds=(-0.25, 0.25))  # the clip bounds only
    for s in range(50):
        c.observe(s, 0.2)
    k = c.knobs(50)
    assert c.ctl.u == pytest.approx(0.25) and k.detach == 0.0 and (k.clip_high, k.clip_low) == pytest.approx((0.5, 0.02))
    # without the covariance clip (TRL) the whole effort range moves the bounds
    t = EntropyControl("pi_clip", target=0.5, control_from=0, detach=False)
    t.observe(0, 0.45)
    u = t.ctl.u
    assert u == pytest.approx(2 * 0.05 + 0.5 * 0.05)
    assert (t.knobs(1).clip_high, t.knobs(1).clip_low, t.knobs(1).detach) == pytest.approx(pi_clip_knobs(u, span=1.0))


def test_covariance_detach_against_a_naive_choice():
    """losses.covariance_detach zeroes the loss of the round(|share|·N) free tokens with the
    largest (share > 0) or smallest (share < 0) covariance, computed here by hand."""
    from entrodiag.trainer.losses import PolicyBatch, covariance_detach, ppo_clip

    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 6, generator=g) * 3
    old = logp + 0.3 * torch.randn(4, 6, generator=g)  # some ratios leave [0.8, 1.2]
    adv = torch.randn(4, 1, generator=g).expand(4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 4:] = False
    b = PolicyBatch(logp, old, adv, mask, torch.zeros(4, 6))
    base = ppo_clip(b, 0.2, 0.2)
    n = int(mask.sum())
    lm, am = logp[mask].mean(), adv[mask].mean()
    for share in (0.25, -0.25, 0.0):
        out = covariance_detach(b, ppo_clip(b, 0.2, 0.2), share)
        free = [(float((logp[i, j] - lm) * (adv[i, j] - am)), (i, j)) for i in range(4) for j in range(6)
                if mask[i, j] and not base.selected[i, j]]
        free.sort(reverse=share > 0)
        want = {ij for _, ij in free[:round(abs(share) * n)]}
        got = {(i, j) for i in range(4) for j in range(6) if out.loss[i, j] == 0 and base.loss[i, j] != 0}
        assert got == want and float(out.stats["detach_frac"]) == pytest.approx(len(want) / n)
        assert torch.equal(out.selected, base.selected | torch.tensor(
            [[(i, j) in want for j in range(6)] for i in range(4)]))


def test_pi_coef_pushes_entropy_down_with_a_negative_coefficient_and_respects_its_bounds():
    c, hs, cols = simulate("pi_coef", h0=0.9, target=0.5, target_frac=0.0, control_from=0)
    coefs = np.array([col["control/coef"] for col in cols])
    assert coefs[1] < 0 and coefs.min() == pytest.approx(-0.05)  # saturated at the lower bound at first
    assert coefs.max() <= c.ctl.hi + 1e-12 and c.ctl.hi == pytest.approx(0.3)
    assert abs(hs[-1] - 0.5) < 0.01


def test_anti_windup_keeps_the_integrator_at_the_bound():
    c = EntropyControl("pi_coef", target=0.5, control_from=0)
    kp, ki = c.ctl.gains
    for s in range(200):  # entropy stuck far above target: the output saturates at −0.05
        c.observe(s, 2.0)
    assert c.knobs(200).coef == pytest.approx(-0.05)
    assert kp * (0.5 - 2.0) + ki * c.ctl.integral == pytest.approx(-0.05)  # not wound up beyond
    c.observe(200, 0.3)  # the error changes sign: the output leaves the bound at once
    assert c.knobs(201).coef > -0.05 + kp * 0.1


def test_adaptive_coef_follows_trl_rule():
    """TRL's use_adaptive_entropy: ±δ per step, clamped to [0, 1], applied only while H <= target."""
    c = EntropyControl("adaptive_coef", target=0.5, control_from=0)
    seq = [0.4, 0.45, 0.6, 0.3]
    expected_u = [0.005, 0.010, 0.005, 0.010]
    expected_applied = [0.005, 0.010, 0.0, 0.010]
    for s, (h, u, a) in enumerate(zip(seq, expected_u, expected_applied)):
        c.observe(s, h)
        assert c.ctl.u == pytest.approx(u) and c.knobs(s + 1).coef == pytest.approx(a)
    c2 = EntropyControl("adaptive_coef", target=0.5, control_from=0)
    c2.observe(0, 0.9)
    assert c2.ctl.u == 0.0  # clamped at the lower bound


def test_state_round_trip_continues_exactly(tmp_path):
    _, full_h, full_cols = simulate("pi_coef", steps=120)
    # interrupted at step 70: save through torch (weights_only, as the checkpoint does), restore
    c = EntropyControl("pi_coef", target_frac=0.75, control_from=50, clip_high=0.2, coef=0.0)
    h = full_h[0]
    cols = []
    for s in range(70):
        k = c.knobs(s)
        cols.append(c.observe(s, h))
        h = plant(h, k)
    torch.save({"control": c.state_dict()}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)["control"]
    c2 = EntropyControl("pi_coef", target_frac=0.75, control_from=50, clip_high=0.2, coef=0.0)
    c2.load_state_dict(state)
    for s in range(70, 120):
        k = c2.knobs(s)
        cols.append(c2.observe(s, h))
        h = plant(h, k)
    assert cols == full_cols
    with pytest.raises(ValueError, match="pi_clip"):
        EntropyControl("pi_clip", target=0.5).load_state_dict(state)


def test_bad_configuration_says_what_to_do():
    for kw, msg in [
        ({"entropy_control": "pi_coef"}, "needs a target"),
        ({"entropy_control": "pid"}, "not one of none, adaptive_coef, pi_coef, pi_clip"),
        ({"entropy_control": "pi_coef", "entropy_target": 0.5, "entropy_target_frac": 0.7}, "not both"),
        ({"entropy_band": "0.6,0.4"}, "LOW <= HIGH"),
        ({"control_gains": "fast"}, "comma-separated numbers"),
        ({"entropy_control": "pi_coef", "entropy_target": 0.5, "control_gains": "1"}, "takes 2 gain"),
        ({"on_collapse": "pi_clip"}, "needs a target"),
    ]:
        with pytest.raises(ValueError, match=msg):
            load_config("tiny-arith-test", **kw)
    assert parse_pair([0.4, 0.6], "band") == (0.4, 0.6)  # TOML may give a list
    assert load_config("tiny-arith-test", entropy_band=[0.4, 0.6]).entropy_band == "0.4,0.6"


def test_band_stats_hand_computed():
    # target 0.5, band [0.4, 0.6], control from step 2, scored from step 3
    steps = np.arange(10)
    h = np.array([0.70, 0.68, 0.65, 0.55, 0.45, 0.38, 0.47, 0.62, 0.52, 0.50])
    s = band_stats(steps, h, 0.5, (0.4, 0.6), start=2, from_step=3)
    # scored steps 3..9: 0.55 in, 0.45 in, 0.38 out, 0.47 in, 0.62 out, 0.52 in, 0.50 in -> 5/7
    assert s["time_in_band"] == pytest.approx(5 / 7) and s["n_scored"] == 7
    assert s["tracking_error"] == pytest.approx((0.05 + 0.05 + 0.12 + 0.03 + 0.12 + 0.02 + 0.0) / 7)
    # started above the target (0.65 at step 2): overshoot = deepest dip below 0.5 = 0.12 nats
    assert s["overshoot"] == pytest.approx(0.12) and s["overshoot_frac"] == pytest.approx(0.24)
    # last step outside the band is 7 -> in band from step 8 on: settled 6 steps after step 2
    assert s["settling_step"] == 8 and s["settling_steps"] == 6
    assert band_stats(steps, np.r_[h[:-1], 0.3], 0.5, (0.4, 0.6), 2)["settling_steps"] is None


FAST = ["train", "--preset", "tiny-arith-test", "--prompts-per-step", "16", "--group-size", "4",
        "--val-size", "100", "--eval-every", "100", "--no-measure-entropy-change", "--token-sample", "1",
        "--entropy-control", "pi_clip", "--entropy-target", "0.6", "--entropy-control-from", "2",
        "--control-gains", "1,0.1", "--no-progress"]


def test_resumed_run_continues_the_controller_exactly(warm_start_val100, tmp_path, capsys):
    """A run stopped after its checkpoint at step 5 and resumed logs the same control columns,
    and the same entropy, as the uninterrupted run (all draws are seeded per step)."""
    from entrodiag.cli import main
    from entrodiag.trainer.checkpoint import list_checkpoints, load_trainer_state

    full, part = tmp_path / "full", tmp_path / "part"
    assert main([*FAST, "--steps", "10", "--checkpoint-every", "6", "--out", str(full)]) == 0
    assert main([*FAST, "--steps", "6", "--checkpoint-every", "6", "--out", str(part)]) == 0
    state = load_trainer_state(list_checkpoints(part)[-1][1])["control"]
    assert state["mode"] == "pi_clip" and state["target"] == 0.6 and state["controller"]["integral"] != 0
    assert main(["train", "--resume", str(part), "--steps", "10", "--no-progress"]) == 0
    cols = ["step", "entropy_mean", "control/target", "control/error", "control/active", "control/clip_high",
            "control/clip_low", "control/detach", "control/effort", "control/coef", "control/integral"]
    a, b = (load_run(p).steps.sort("step").select(cols) for p in (full, part))
    assert b["step"].to_list() == list(range(10))
    assert a.equals(b), (a.tail(5), b.tail(5))
    active = a.filter(pl.col("control/active") > 0)
    assert active["step"][0] == 2 and active["control/clip_high"].n_unique() > 1
    # effort u = Kp·e + Ki·Σe from the errors logged, and the clip bounds it sets (an independent
    # recomputation)
    e = a["control/error"].to_numpy()
    for s in range(2, 10):
        u = min(max(1 * e[s - 1] + 0.1 * e[1:s].sum(), -1), 1)
        hi, lo, d = pi_clip_knobs(u)
        assert a["control/clip_high"][s] == pytest.approx(hi), s
        assert (a["control/clip_low"][s], a["control/detach"][s]) == pytest.approx((lo, d)), s
    # the analysis reads it back
    summary = control_summary(full)
    assert summary.mode == "pi_clip" and summary.control_from == 2 and summary.knob == "control/effort"
    assert summary.target == 0.6 and summary.band == pytest.approx([0.48, 0.72])
    # and analyze shows a control section, in text and JSON
    capsys.readouterr()
    assert main(["analyze", str(full), "--json"]) == 0
    out = diagnosis(capsys.readouterr().out)
    assert out["control"]["status"] == "ok" and out["control"]["mode"] == "pi_clip"
    assert main(["analyze", str(full)]) == 0
    assert "Entropy control" in capsys.readouterr().out


def test_pi_clip_detaches_tokens_in_the_trainer(warm_start_val100, tmp_path):
    """In the loop: a target far above the entropy drives pi_clip's effort to its bound 1 at
    once, so ε_high = 0.5, ε_low = 0.02 and half of the valid tokens are detached by covariance;
    the loss reports the share it actually zeroed (``detach_frac``, every micro-batch and epoch)."""
    from entrodiag.cli import main

    out = tmp_path / "run"
    assert main([*FAST[:FAST.index("--entropy-target")], "--entropy-target", "3.0", "--entropy-control-from", "1",
                 "--steps", "3", "--checkpoint-every", "100", "--no-progress", "--out", str(out)]) == 0
    s = load_run(out).steps.sort("step")
    assert s["control/active"].to_list() == [0.0, 1.0, 1.0]
    assert s["control/effort"].to_list()[1:] == [1.0, 1.0]  # Kp·e alone is > 1 here
    assert s["control/detach"].to_list() == [0.0, 0.5, 0.5]
    assert s["control/clip_high"].to_list()[1:] == pytest.approx([0.5, 0.5])
    assert s["control/clip_low"].to_list() == pytest.approx([0.2, 0.02, 0.02])
    frac = s["detach_frac"].to_list()
    assert frac[0] == 0.0 and frac[1:] == pytest.approx([0.5, 0.5], abs=0.01)
    raw = pl.concat([pl.read_parquet(p) for p in sorted((out / "steps").glob("part-*.parquet"))], how="diagonal")
    assert raw["detach_frac"].null_count() == 0  # in every part, so a raw scan (Spark, DuckDB) finds one schema


@pytest.fixture
def plant_run(tmp_path):
    """A run recorded from the synthetic plant under pi_coef (step columns only), and its arrays."""
    from entrodiag import Recorder

    c, hs, cols = simulate("pi_coef", steps=120)
    with Recorder(tmp_path / "runs" / "plant", source="custom",
                  config={"entropy_control": "pi_coef", "entropy_control_from": 50}) as rec:
        for s, (h, col) in enumerate(zip(hs, cols)):
            rec.log_scalars(s, entropy_mean=float(h), **col)
    return tmp_path / "runs" / "plant", c, hs, cols


def test_control_summary_of_a_recorded_run(plant_run):
    path, c, hs, _ = plant_run
    cs = control_summary(path, from_step=60)
    expected = band_stats(np.arange(120), hs, c.target, (0.8 * c.target, 1.2 * c.target), 50, 60)
    assert cs.mode == "pi_coef" and cs.control_from == 50 and cs.knob == "control/coef"
    for k in ("time_in_band", "overshoot", "settling_step", "n_scored", "tracking_error"):
        assert getattr(cs, k) == pytest.approx(expected[k]), k
    assert cs.time_in_band == 1.0 and cs.settling_steps <= CONTROLLERS["pi_coef"].settles_within
    assert cs.knob_start == pytest.approx(-0.05) and "pi_coef: target" in cs.describe()


def test_dashboard_and_report_show_the_control_section(plant_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from entrodiag.dashboard import ROOT_ENV, app_dir
    from entrodiag.report.data import collect
    from entrodiag.report.pages import plan

    path, c, hs, cols = plant_run
    assert "Entropy control" in [s.title for s in plan(collect(path)) if s.build is not None]
    monkeypatch.setenv(ROOT_ENV, str(path.parent))
    at = AppTest.from_file(str(app_dir() / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("page_dynamics.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    cs = control_summary(path)
    assert shown["time in band"] == f"{cs.time_in_band:.0%}" and shown["target (nats)"] == f"{c.target:.3f}"
    specs = [json.loads(ch.proto.spec) for ch in at.get("plotly_chart")]
    knob = next(t for f in specs for t in f["data"] if t.get("name") == "entropy-bonus coefficient α")
    assert knob["y"] == pytest.approx([col["control/coef"] for col in cols])  # the controller's output


def test_on_collapse_hand_over_switches_a_controller_on_with_the_same_target():
    """What ``--on-collapse pi_coef`` does at a flag: the measuring controller hands its target
    (derived from the first 10 steps) to pi_coef, which acts from the next step on."""
    from entrodiag.trainer.controllers import from_config

    cfg = load_config("tiny-arith-test", entropy_target_frac=0.75, on_collapse="pi_coef")
    c = from_config(cfg)
    assert c.mode == "none" and c.measuring
    h = 0.67
    for s in range(80):
        if s == 40:  # a flag at step 39: switch from step 40 on
            c = c.hand_over(from_config(cfg, cfg.on_collapse), 40)
        k = c.knobs(s)
        col = c.observe(s, h)
        assert col["control/active"] == (1.0 if s >= 40 else 0.0)
        h = plant(h, k)
    assert c.mode == "pi_coef" and c.control_from == 40 and c.target == pytest.approx(0.75 * 0.67, rel=0.05)
    state = c.state_dict()
    assert state["mode"] == "pi_coef" and state["control_from"] == 40  # a resume rebuilds pi_coef
    resumed = from_config(cfg, state["mode"])
    resumed.load_state_dict(state)
    assert resumed.knobs(80) == c.knobs(80) and resumed.control_from == 40


def test_toml_fields_and_help(tmp_path, capsys):
    from entrodiag.cli import main

    f = tmp_path / "c.toml"
    f.write_text('[train]\npreset = "tiny-arith"\nentropy_control = "pi_clip"\nentropy_target_frac = 0.75\n'
                 'entropy_band = [0.4, 0.6]\nentropy_control_from = 50\ncontrol_gains = "1,0.1"\n')
    cfg = load_config(path=f)
    assert (cfg.entropy_control, cfg.entropy_target_frac, cfg.entropy_band, cfg.entropy_control_from,
            cfg.control_gains) == ("pi_clip", 0.75, "0.4,0.6", 50, "1,0.1")
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--entropy-control", "--entropy-target-frac", "--entropy-band", "--entropy-control-from"):
        assert flag in out


def test_on_collapse_switches_a_controller_on_in_the_trainer(warm_start_val100, tmp_path):
    """``--on-collapse pi_coef`` on a collapsing run (lr 3e-3, as in test_trainer_watch): at the
    first critical flag the controller starts acting, the switch is an event, and the checkpoint
    holds the controller."""
    from entrodiag.cli import main
    from entrodiag.trainer.checkpoint import list_checkpoints, load_trainer_state

    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny-arith-test", "--lr", "3e-3", "--watch-every", "5", "--val-size", "100",
                 "--no-progress", "--steps", "20", "--on-collapse", "pi_coef", "--entropy-target", "0.5",
                 "--out", str(out)]) == 0
    run = load_run(out)
    switch = run.events.filter(pl.col("kind") == "switch")
    assert switch.height == 1 and switch["name"][0] == "pi_coef"
    at = int(switch["step"][0])
    assert json.loads(switch["detail"][0])["from"] == "none" and run.meta["entropy_control"] == "pi_coef"
    active = run.steps.sort("step")["control/active"].to_list()
    assert active == [0.0] * (at + 1) + [1.0] * (20 - at - 1)
    assert run.meta["intervention"] == "none"  # the loss stays
    assert load_trainer_state(list_checkpoints(out)[-1][1])["control"]["mode"] == "pi_coef"
    assert control_summary(out).control_from == at + 1


def test_negative_bounds_on_the_command_line():
    """``--control-bounds -1,1`` (as the docs write it) parses: argparse alone would take ``-1,1``
    for an option."""
    from entrodiag.cli import _join_negative_values, build_parser

    argv = ["train", "--preset", "tiny-arith-test", "--control-bounds", "-1,1", "--entropy-band", "-0.1,0.2",
            "--lr", "-1e-3"]
    joined = _join_negative_values(argv)
    assert joined[3:] == ["--control-bounds=-1,1", "--entropy-band=-0.1,0.2", "--lr=-1e-3"]
    assert _join_negative_values(["query", "runs", "select 1"]) == ["query", "runs", "select 1"]
    args = vars(build_parser().parse_args(joined))
    assert [v for k, v in args.items() if k.endswith("control_bounds")] == ["-1,1"]


def runaway_plant(h, knobs, h_start=0.67):
    """The plant above, plus the runaway the bonus set off on tiny-arith (a fixed α = 0.1 took
    entropy 0.67 → 1.08 nats in 25 steps): above 1.3× the start, entropy feeds itself (5% of the
    excess per step), up to log 17 (uniform over tiny-arith's vocabulary)."""
    return min(plant(h, knobs) + 0.05 * max(0.0, h - 1.3 * h_start), np.log(17))


@pytest.mark.parametrize("mode, frac", [("adaptive_coef", 1.4), ("pi_coef", 2.0)])
def test_the_guard_stops_a_controller_from_blowing_entropy_up(mode, frac):
    """A target above what the policy can hold (anchored to the initial entropy, as AER does, but
    too high): without the guard the controller drives entropy into the runaway (≥ 1.5× the start,
    the explosion of Logics-STEM); with the default guard (1.5) the target is capped at 1.25× the
    start and entropy stays below the bound."""

    def run(guard):
        c = EntropyControl(mode, target=frac * 0.67, control_from=50, guard=guard)  # nats: capped, not refused
        h, hs, cols = 0.67, [], []
        for s in range(300):
            k = c.knobs(s)
            hs.append(h)
            cols.append(c.observe(s, h))
            h = runaway_plant(h, k)
        return c, np.array(hs), cols

    _, free, free_cols = run(0.0)
    start = free[:10].mean()
    assert free.max() >= 1.5 * start and "control/guard" not in free_cols[-1]
    c, hs, cols = run(1.5)
    assert c.guard_bound == pytest.approx(1.5 * start)
    assert hs.max() < c.guard_bound and hs[-1] < 1.3 * start
    assert cols[-1]["control/target"] == pytest.approx(1.25 * start) and cols[-1]["control/guard"] == 1.0
    assert cols[-1]["control/guard_bound"] == pytest.approx(1.5 * start)


def test_the_guard_never_caps_a_target_silently(caplog):
    """A fraction above guard/1.2 is refused up front (one line, what to change); a target in nats that
    the guard caps is logged once; with the guard off or raised the same fraction is accepted."""
    for kw in ({"target_frac": 1.3}, {"schedule": "linear:1.0,1.4@99"}):
        with pytest.raises(ValueError, match="above the guard's cap 1.5/1.2 = 1.25.*raise/disable --entropy-guard"
                           ".*entrodiag_control_args' guard") as e:
            EntropyControl("pi_coef", **kw)
        assert "\n" not in str(e.value)
        EntropyControl("pi_coef", guard=0, **kw), EntropyControl("pi_coef", guard=2.0, **kw)
    with pytest.raises(ValueError, match="raise/disable --entropy-guard"):
        load_config("tiny-arith-test", entropy_control="pi_clip", entropy_target_frac=1.3)
    c = EntropyControl("pi_coef", target=0.9, control_from=0)
    with caplog.at_level("WARNING", logger="entrodiag.entropy_control"):
        cols = [c.observe(s, 0.5) for s in range(15)]
    assert cols[-1]["control/target"] == pytest.approx(0.75 / 1.2) and cols[-1]["control/guard"] == 1.0
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1 == len(caplog.records)
    assert "above the guard's cap" in caplog.records[0].message


@pytest.mark.parametrize("mode", ["pi_coef", "pi_clip", "adaptive_coef"])
def test_above_the_bound_the_guard_clamps_the_output_and_resets_the_integrator(mode):
    c = EntropyControl(mode, target=0.9, control_from=0, coef=0.01)  # a target in nats, above the bound
    for s in range(30):
        c.observe(s, 0.5)  # far below the target: the output and the integrator wind up
    u0 = 0.01 if mode != "pi_clip" else 0.0
    assert c.ctl.u > u0 and (c.ctl.integral > 0 or mode == "adaptive_coef")
    cols = c.observe(30, 0.8)  # above 1.5 × 0.5: no entropy-raising push, no integrated push
    assert cols["control/guard"] == 1.0 and cols["control/guard_bound"] == pytest.approx(0.75)
    assert c.ctl.u <= u0 and c.ctl.integral <= 0
    k = c.knobs(31)
    assert k.coef <= 0.01 and k.clip_high <= 0.2 and k.detach <= 0
