"""Resume from any checkpoint, graceful stop on SIGTERM/SIGINT, a Recorder closed at exit, and a
checkpoint that fails without failing the run (issue 13, the trainer's half).

Every trainer run here uses the ``tiny-arith-test`` preset with ``--val-size 100`` (the session's
``warm_start_val100``) and a handful of steps. Signals go to subprocesses; "every step exactly once" is
checked in the part files themselves, not only after the reader's coalescing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import COLLAPSING, ChildProgress  # COLLAPSING: TEST with --lr 3e-3 --watch-every 5 (vanishing_signal turns critical)
from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.trainer.checkpoint import list_checkpoints, load_trainer_state

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "entrodiag")
TEST = ["--preset", "tiny-arith-test", "--val-size", "100"]


def _env(cache: Path) -> dict:
    return {**os.environ, "ENTRODIAG_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def _raw(out: Path, table: str, columns: list[str]) -> pl.DataFrame:
    return pl.concat([pl.from_arrow(pq.read_table(p, columns=columns)) for p in sorted((out / table).glob("part-*"))])


def assert_each_step_once(out: Path, steps: int, evals: list[int]) -> None:
    """Step rows 0..steps-1 once each in the files, sampled responses of every step, and the
    greedy evaluation at exactly ``evals``."""
    raw = _raw(out, "steps", ["step", "rank"])
    assert sorted(raw["step"].to_list()) == list(range(steps)), "a step is missing or recorded twice"
    samples = _raw(out, "samples", ["step", "sample_id"])
    assert samples.group_by("step", "sample_id").len()["len"].max() == 1
    assert sorted(samples["step"].unique().to_list()) == list(range(steps))
    greedy = _raw(out, "evals", ["step", "name"]).filter(pl.col("name") == "val/accuracy_greedy")
    assert sorted(greedy["step"].to_list()) == evals


def sigterm_and_time(proc: subprocess.Popen, timeout: float) -> float:
    """Send ``proc`` SIGTERM and return the seconds until it exits (``TimeoutExpired`` after ``timeout``)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=timeout)
    return time.monotonic() - t0


def test_resume_after_sigkill_at_a_step_between_evaluations(sigkilled_run):
    """The session's killed run (conftest ``sigkilled_run``: 10 steps, evaluations every 5, killed
    with SIGKILL once step 4 was done, after the checkpoint of step 3): the resume starts at step 4,
    which is not an evaluation step, shows the progress bar, and finishes."""
    out, ckpt_step, err = sigkilled_run
    assert ckpt_step == 3
    assert "acc —" in err  # step 4: no evaluation yet in the resuming process (it formatted a None accuracy)
    run = load_run(out)
    assert run.status == "finished" and len(run.meta["resumed"]) == 1
    assert_each_step_once(out, 10, [0, 5, 9])


def test_stop_on_between_evaluations_then_resume_finishes(stopped_collapse, tmp_path):
    """``--stop-on`` stops at a watch step (every 5th: 4, 9, ...), never an evaluation step here
    (every 10th); a resume takes note of the flags raised before, so it never stops on them again,
    and the run finishes. (The session's stopped run, ``COLLAPSING --steps 25 --stop-on critical``,
    resumed in a copy.) The run is chaotic: rounding decides whether the resumed part raises a new
    critical flag (an explosion after the collapse) and stops on it; then one more resume finishes."""
    out = tmp_path / "run"
    shutil.copytree(stopped_collapse[0], out)
    run = load_run(out)
    assert run.status == "stopped"
    last = int(run.steps["step"].max())
    assert (last + 1) % 5 == 0 and last % 10 != 0 and last < 24
    flags_before = run.events.filter(pl.col("kind") == "flag").height
    assert list_checkpoints(out)[-1][0] == last
    for _ in range(3):  # each resume either finishes or stops on a flag it had not stopped on
        assert main(["train", "--resume", str(out)]) == 0
        run = load_run(out)
        stops = run.events.filter(pl.col("kind") == "stop")
        assert stops["name"].n_unique() == stops.height, stops  # never stopped twice on one flag
        if run.status == "finished":
            break
        assert run.status == "stopped" and int(run.steps["step"].max()) > last
        last = int(run.steps["step"].max())
    assert run.status == "finished"
    assert_each_step_once(out, 25, [0, 10, 20, 24])
    flags = run.events.filter(pl.col("kind") == "flag")
    assert flags.height >= flags_before
    assert flags.group_by("name", "severity").len()["len"].max() == 1  # no flag reported twice


def test_resume_after_a_switch_keeps_the_new_loss(warm_start_val100, tmp_path):
    """The checkpoint of the step that switched the loss (``--on-collapse``) holds the new mode,
    so a run resumed from it goes on with it, and the detectors do not switch a second time."""
    out = tmp_path / "run"
    assert main(["train", *COLLAPSING, "--steps", "12", "--on-collapse", "kl_cov", "--on-collapse-severity", "warning",
                 "--checkpoint-every", "5", "--keep-checkpoints", "5", "--no-progress", "--out", str(out)]) == 0
    switch = load_run(out).events.filter(pl.col("kind") == "switch")
    assert switch.height == 1
    at = int(switch["step"][0])
    assert at < 10 and (at + 1) % 5 == 0
    found = dict(list_checkpoints(out))
    assert load_trainer_state(found[at])["intervention"] == "kl_cov"
    for step, folder in found.items():  # a crash right after the switch: only its checkpoint is left
        if step > at:
            shutil.rmtree(folder)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    run = load_run(out)
    assert run.status == "finished" and run.meta["intervention"] == "kl_cov"
    assert_each_step_once(out, 12, [0, 10, 11])
    assert run.events.filter(pl.col("kind") == "switch").height == 1
    selected = run.steps.sort("step")["selected_frac"]  # logged by kl_cov only
    assert selected[: at + 1].is_null().all() and selected[at + 1:].is_not_null().all()


def test_sigterm_checkpoints_the_current_step_stops_and_resumes(warm_start_val100, tmp_path):
    out = tmp_path / "run"
    total = 12
    proc = subprocess.Popen([EXE, "train", *TEST, "--steps", str(total), "--eval-every", "5", "--out", str(out)],
                            cwd=tmp_path, env=_env(warm_start_val100), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = ChildProgress(proc)
    try:
        progress.wait(total, 3, proc)  # steps 0, 1, 2 done (the preset checkpoints every 25)
        elapsed = sigterm_and_time(proc, timeout=60)
    finally:
        proc.kill()
    err = progress.join()
    print(f"SIGTERM to exit: {elapsed:.2f} s")
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert elapsed < 30
    assert "Traceback" not in err and "stopped on SIGTERM" in err
    run = load_run(out)
    assert run.status == "stopped"
    last = int(run.steps["step"].max())
    assert 2 <= last < total - 1
    assert list_checkpoints(out)[-1][0] == last  # the step it was on, not a periodic checkpoint
    stop = run.events.filter(pl.col("kind") == "stop")
    assert stop.height == 1 and stop["name"][0] == "SIGTERM" and stop["step"][0] == last
    assert json.loads(stop["detail"][0])["checkpoint_step"] == last
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0  # in this process: the stop was the point
    assert load_run(out).status == "finished"
    assert_each_step_once(out, total, [0, 5, 10, 11])


SECOND_SIGNAL = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, sys.argv[1])
    import importlib.util
    spec = importlib.util.spec_from_file_location("signals", sys.argv[1] + "/entrodiag/hooks/signals.py")
    signals = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(signals)
    with signals.GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print("first", stop.signum, flush=True)
        time.sleep(60)  # a slow graceful stop
    print("not reached", flush=True)
""")


def test_a_second_signal_ends_the_process_at_once(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SECOND_SIGNAL, str(ROOT)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split() == ["first", str(int(signal.SIGTERM))]  # the first only asked
        elapsed = sigterm_and_time(proc, timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM and elapsed < 5
    assert "not reached" not in proc.stdout.read()


def test_graceful_stop_restores_handlers_and_needs_the_main_thread():
    from entrodiag.hooks.signals import GracefulStop, TrainingStopped

    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        assert stop.installed and signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before
    seen = []
    t = threading.Thread(target=lambda: seen.append(GracefulStop().__enter__().installed))
    t.start()
    t.join()
    assert seen == [False]
    e = TrainingStopped(signal.SIGINT, "runs/x")
    assert isinstance(e, SystemExit) and e.code == 130 and "SIGINT" in str(e) and "runs/x" in str(e)


AT_EXIT = textwrap.dedent("""
    import sys, torch
    from entrodiag import Recorder
    rec = Recorder(sys.argv[1], source="custom")
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    rec.record_batch(0, token_ids=ids, response_mask=ids > 0, entropy=torch.rand(2, 3),
                     advantages=torch.tensor([1.0, -1.0]))
    if sys.argv[2] == "raise":
        raise RuntimeError("the user's loop failed")
    # no rec.close(): a forgotten close, or a worker returning normally
""")


@pytest.mark.parametrize("ending, status", [("return", "finished"), ("raise", "failed")])
def test_recorder_is_closed_at_interpreter_exit(tmp_path, ending, status):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-c", AT_EXIT, str(out), ending], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == (0 if ending == "return" else 1), res.stderr[-2000:]
    run = load_run(out)
    assert run.meta["status"] == status and run.status == status  # not "running", not interrupted
    assert run.meta["closed_at_exit"] is True
    assert run.steps["step"].to_list() == [0]  # the unflushed tail was written


def test_recorder_at_exit_hook_does_not_keep_it_alive_and_close_twice_is_safe(tmp_path, tokenizer):
    import gc
    import weakref

    from conftest import batch_kwargs

    from entrodiag import Recorder

    rec = Recorder(tmp_path / "a")
    ref, writer = weakref.ref(rec), rec.writer
    del rec
    gc.collect()
    assert ref() is None
    writer.close("finished")
    rec = Recorder(tmp_path / "b", tokenizer=tokenizer)
    rec.record_batch(0, **batch_kwargs(0))
    rec.close("stopped")
    rec.close()  # again: nothing changes
    rec._atexit()  # what atexit would run: the explicit status stays
    assert load_run(tmp_path / "b").meta["status"] == "stopped" and "closed_at_exit" not in load_run(tmp_path / "b").meta


def test_a_failed_checkpoint_is_an_event_and_the_run_finishes(warm_start_val100, tmp_path, monkeypatch, capsys):
    """The first save (step 2) fails as ``save_pretrained`` does on a model it refuses; training
    goes on, the next checkpoint (step 5) is saved, and the run is ``finished`` with the failure
    on record."""
    from entrodiag.trainer import checkpoint

    real, calls = checkpoint.save_policy, []

    def save_policy(model, tok, folder):
        calls.append(folder)
        if len(calls) == 1:
            raise ValueError("Cannot save a model loaded from a GGUF file\nwith save_pretrained")
        return real(model, tok, folder)

    monkeypatch.setattr(checkpoint, "save_policy", save_policy)
    out = tmp_path / "run"
    assert main(["train", *TEST, "--steps", "6", "--checkpoint-every", "3", "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "checkpoint" in line]
    assert len(lines) == 1 and "step 2" in lines[0] and "GGUF" in lines[0] and "Traceback" not in err
    run = load_run(out)
    assert run.status == "finished" and run.steps["step"].to_list() == list(range(6))
    failed = run.events.filter(pl.col("kind") == "checkpoint_failed")
    assert failed.height == 1 and failed["step"][0] == 2 and failed["name"][0] == "step-0000002"
    assert "GGUF" in failed["message"][0] and "\n" not in failed["message"][0]
    assert run.meta["failed_checkpoints"] == [{"step": 2, "error": failed["message"][0]}]
    assert [s for s, _ in list_checkpoints(out)] == [5]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp-")]  # no partial folder


def test_two_trainers_on_one_out_the_loser_gets_one_line(warm_start_val100, tmp_path, capsys, monkeypatch):
    """Two ``train`` on one --out, both past the start-up check: while this one loads its model,
    the other opens the run. This one stops with one line and exit 2, and leaves the other's run
    alone (before: a FileExistsError traceback out of the Recorder)."""
    from entrodiag.store import RunWriter
    from entrodiag.trainer import loop

    out, other = tmp_path / "run", []
    real = loop.tiny_policy

    def the_other_trainer_starts_meanwhile(*args, **kwargs):
        if not other:
            other.append(RunWriter(out, meta={"source": "builtin", "model": "the-other-trainer"}, heartbeat_s=60))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "tiny_policy", the_other_trainer_starts_meanwhile)
    try:
        code = main(["train", *TEST, "--steps", "1", "--no-progress", "--out", str(out)])
        err = capsys.readouterr().err
    finally:
        for w in other:
            w.close()
    assert other and code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "already holds a run" in err and "another trainer" in err and "--out" in err
    run = load_run(out)
    assert run.meta["model"] == "the-other-trainer" and run.steps.is_empty()  # untouched by the loser


# --- the stop deadline (issue 24): a step slower than the grace period --------------------------

SLOW_UPDATE = textwrap.dedent("""
    import sys, time, torch
    from entrodiag.cli import main
    from entrodiag.trainer import loop
    per_step, pause = int(sys.argv[1]), float(sys.argv[2])
    real, calls = loop.response_logp, [0]
    def slow(*args, **kwargs):  # the update's forward passes sleep from step 1 on (step 0 runs at full speed)
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] > per_step:
                print(f"slow forward {calls[0] - per_step}", file=sys.stderr, flush=True)
                time.sleep(pause)
        return real(*args, **kwargs)
    loop.response_logp = slow
    sys.argv = ["entrodiag", "train", *sys.argv[3:]]
    sys.exit(main())  # as the console command (which leaves at once once stopped)
""")


def test_sigterm_in_a_step_slower_than_the_grace_checkpoints_the_last_finished_step(
    warm_start_val100, tmp_path, capsys
):
    """Step 1's update would take about 10 s (32 forward passes of 0.3 s: 2 epochs of 16 micro-batches);
    SIGTERM comes in its second epoch, after its first optimizer step, with ``--stop-grace 2``: the
    step is abandoned, the model and optimizer put back to step 0's, step 0 is checkpointed and the
    run closed as ``stopped`` before the grace is over; the resume continues at step 1."""
    out, grace, total = tmp_path / "run", 2.0, 3
    args = [*TEST, "--steps", str(total), "--epochs", "2", "--micro-batch-size", "32", "--checkpoint-every", "25",
            "--stop-grace", str(grace), "--no-progress", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_UPDATE, "32", "0.3", *args], cwd=tmp_path,
                            env={**_env(warm_start_val100), "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = ChildProgress(proc)
    try:
        deadline = time.time() + 300
        while "slow forward 18\n" not in progress.text:  # the second epoch: an optimizer step was applied
            assert proc.poll() is None, progress.text[-3000:]
            assert time.time() < deadline, "the slow step never came"
            time.sleep(0.02)
        elapsed = sigterm_and_time(proc, timeout=30)
    finally:
        proc.kill()
    err = progress.join()
    stdout = proc.stdout.read().decode()
    print(f"SIGTERM to exit with a 10 s step and --stop-grace {grace:g}: {elapsed:.2f} s\n{stdout}")
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert elapsed < grace, f"the run took {elapsed:.2f} s to stop"
    assert "Traceback" not in err
    run = load_run(out)
    assert run.status == "stopped" and run.steps["step"].to_list() == [0]
    assert [s for s, _ in list_checkpoints(out)] == [0]
    state = load_trainer_state(list_checkpoints(out)[0][1])
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {2}  # step 0's two epochs, not a third
    assert state["scheduler"]["last_epoch"] == 1
    stop = run.events.filter(pl.col("kind") == "stop")
    detail = json.loads(stop["detail"][0])
    assert detail["abandoned_step"] == 1 and detail["checkpoint_step"] == 0 and detail["last_step"] == 0
    assert 0 < detail["checkpoint_s"] < detail["after_signal_s"] < grace and detail["stop_grace_s"] == grace
    assert run.meta["checkpoint_time"]["last_step"] == 0
    assert "checkpoint of step 0 written in" in stdout
    # the resume (no slow forward now) starts at step 1 and finishes
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0  # in this process
    assert f"resuming {out} at step 1" in capsys.readouterr().out
    assert load_run(out).status == "finished"
    assert_each_step_once(out, total, [0, 2])


def test_a_checkpoint_that_cannot_fit_the_grace_is_said_at_start_up(warm_start_val100, tmp_path, monkeypatch, capsys):
    """The start-up estimate is the checkpoint's bytes over the measured write speed: at 1 MB/s the
    tiny model's 1.6 MB do not fit a 1 s grace (a warning, before any step), and do fit 25 s."""
    from entrodiag.trainer import loop

    monkeypatch.setattr(loop, "write_speed", lambda run_dir: 1e6)
    for grace, warned in ((1.0, True), (25.0, False)):
        out = tmp_path / f"run-{grace:g}"
        assert main(["train", *TEST, "--steps", "1", "--stop-grace", str(grace), "--no-progress", "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert ("warning: a checkpoint of this model" in err) == warned, err
        if warned:
            assert f"--stop-grace {grace:g} s" in err and "Traceback" not in err
        timing = load_run(out).meta["checkpoint_time"]
        written = sum(p.stat().st_size for p in list_checkpoints(out)[-1][1].iterdir())
        assert abs(timing["bytes"] - written) < 0.05 * written  # the estimate's size is the checkpoint's
        assert timing["estimate_s"] == pytest.approx(timing["bytes"] / 1e6, rel=1e-3)
        assert timing["last_step"] == 0 and timing["last_s"] > 0


def test_snapshot_restores_model_and_optimizer_exactly():
    """``Snapshot`` taken before an optimizer step and restored after two: the parameters and the
    AdamW state are bit for bit those before, and a fresh optimizer (no state yet) gets none back."""
    import torch

    from entrodiag.trainer.deadline import Snapshot

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)

    def opt_step():
        opt.zero_grad()
        model(torch.randn(16, 4)).pow(2).mean().backward()
        opt.step()

    snap = Snapshot()
    snap.take(model, opt)  # before any step: no optimizer state
    opt_step()
    snap.restore(model, opt)
    assert not opt.state
    opt_step()
    params = [p.detach().clone() for p in model.parameters()]
    moments = {k: v.clone() for k, v in opt.state[next(model.parameters())].items()}
    snap.take(model, opt)
    opt_step()
    opt_step()
    snap.restore(model, opt)
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    assert all(torch.equal(v, opt.state[next(model.parameters())][k]) for k, v in moments.items())
