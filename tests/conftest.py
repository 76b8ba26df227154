import math
import os
import re
from pathlib import Path

import pytest
import torch
from objstore import s3_env, s3_server  # noqa: F401  (S3 test server fixtures)

# One torch thread in this process and in every child it starts. The suite's models
# are tiny: OpenMP's per-op overhead outweighs a second thread even on an idle machine, and on a
# busy one its threads wait for each other (a tiny-model warm start took over 300 s with 2 threads
# at load 10, 140-180 s with one). It also makes the tiny runs' numbers the same in this process
# and in the trainer subprocesses (which run with OMP_NUM_THREADS=1): the warm start, and with it
# the collapse tests' step numbers, no longer depend on which process built it. Set, not defaulted:
# a value from the environment would otherwise reach every child process the tests start.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


class CharTokenizer:
    """A tokenizer stand-in: id i decodes to the i-th character of ``alphabet``."""

    def __init__(self, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> None:
        self.alphabet = alphabet

    def decode(self, ids):
        return "".join(self.alphabet[i % len(self.alphabet)] for i in ids)


def known_entropy_batch(step: int, B: int = 6, T: int = 5, V: int = 16, seed: int = 0):
    """A batch whose token (b, t) is uniform over its first k tokens: entropy log k, log-prob -log k.

    Returns a dict of record_batch keyword arguments plus ``k`` (the support sizes).
    """
    g = torch.Generator().manual_seed(seed * 1000 + step)
    k = torch.randint(1, V + 1, (B, T), generator=g)
    logits = torch.where(torch.arange(V) < k[..., None], 0.3 * step, -math.inf)
    ids = (torch.rand(B, T, generator=g) * k).long()
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]
    rewards = torch.randint(0, 2, (B,), generator=g).float()
    groups = torch.arange(B) // 3
    adv = torch.randn(B, generator=g)
    return dict(token_ids=ids, response_mask=mask, logits=logits, advantages=adv, rewards=rewards,
                group_ids=groups, k=k)


@pytest.fixture
def tokenizer():
    return CharTokenizer()


def batch_kwargs(step: int = 0, **kw):
    """``known_entropy_batch`` as ``record_batch`` keyword arguments (without ``k``)."""
    batch = known_entropy_batch(step, **kw)
    del batch["k"]
    return batch


@pytest.fixture(scope="session")
def warm_start_cache(tmp_path_factory):
    """One warm-start cache (``ENTRODIAG_CACHE``) for the whole session; the first trainer test
    builds the tiny model's warm start, the others read it."""
    import os

    path = tmp_path_factory.mktemp("entrodiag-cache")
    old = os.environ.get("ENTRODIAG_CACHE")
    os.environ["ENTRODIAG_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ENTRODIAG_CACHE", None)
    else:
        os.environ["ENTRODIAG_CACHE"] = old


@pytest.fixture(scope="session")
def warm_start_val100(warm_start_cache):
    """The session's warm-start cache holding the tiny model's warm start for ``--val-size 100``
    (the runs of test_resume_signals, test_trainer_watch, test_entropy_control, test_trainer), built
    here, in this process, before any test trains on it.

    Its weights depend on the thread count of the process that trains it, and the collapse tests'
    step numbers depend on those weights: built by whichever test came first, a test once passed
    alone and failed after a test whose subprocess had built it. (This process and the trainer
    subprocesses now both run one torch thread; see the top of this file.)"""
    from entrodiag.trainer import load_config
    from entrodiag.trainer.tasks import make_task
    from entrodiag.trainer.warmstart import tiny_policy

    cfg = load_config("tiny-arith-test", val_size=100)
    tiny_policy(cfg, make_task(cfg.task, cfg.val_size, cfg.seed), log=lambda *a, **k: None)
    return warm_start_cache


# The collapsing tiny-arith-test settings: an aggressive learning rate drives the tiny policy to
# all-wrong answers within ~15 steps and ``vanishing_signal`` turns critical (test_trainer_watch).
COLLAPSING = ["--preset", "tiny-arith-test", "--val-size", "100", "--lr", "3e-3", "--watch-every", "5"]


@pytest.fixture(scope="session")
def stopped_collapse(warm_start_val100, tmp_path_factory):
    """``(run dir, stdout)``: one 25-step collapsing run stopped by ``--stop-on critical`` at a watch
    step, trained once per session (test_trainer_watch reads it, test_resume_signals resumes a copy)."""
    import contextlib
    import io

    from entrodiag.cli import main

    out, printed = tmp_path_factory.mktemp("stopped-collapse") / "run", io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", *COLLAPSING, "--steps", "25", "--stop-on", "critical", "--no-progress", "--out", str(out)])
    assert code == 0, printed.getvalue()[-3000:]
    return out, printed.getvalue()


class ChildProgress:
    """Reads a child trainer's stderr as it comes; ``steps(total)`` is its progress bar's count of
    done steps."""

    def __init__(self, proc) -> None:
        import threading

        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):
            self.text += chunk.decode(errors="replace")

    def steps(self, total: int) -> int:
        found = re.findall(rf"(\d+)/{total} \[", self.text)
        return int(found[-1]) if found else 0

    def wait(self, total: int, at_least: int, proc, timeout: float = 600) -> None:
        import time

        deadline = time.time() + timeout
        while self.steps(total) < at_least:
            assert proc.poll() is None, f"the run ended early:\n{self.text[-3000:]}"
            assert time.time() < deadline, "the run did not progress"
            time.sleep(0.05)

    def join(self) -> str:
        self._thread.join(timeout=30)
        return self.text


# The run that ``sigkilled_run`` kills: 10 steps, checkpoints after steps 3 and 7, evaluations at 0, 5, 9.
SIGKILLED = ["--preset", "tiny-arith-test", "--val-size", "100", "--steps", "10", "--checkpoint-every", "4",
             "--eval-every", "5"]


@pytest.fixture(scope="session")
def sigkilled_run(warm_start_val100, tmp_path_factory):
    """``(run dir, checkpoint step at the kill, resume's stderr)``: ``SIGKILLED`` trained by the
    console command in a subprocess and killed with SIGKILL once step 4 is done (after the
    checkpoint of step 3; step 4, not an evaluation step, recorded but not checkpointed), then
    resumed in this process with the progress bar. Trained once per session: test_trainer and
    test_resume_signals check it."""
    import contextlib
    import io
    import os
    import signal
    import subprocess
    import sys

    from entrodiag.cli import main
    from entrodiag.trainer.checkpoint import list_checkpoints

    out = tmp_path_factory.mktemp("sigkilled") / "run"
    env = {**os.environ, "ENTRODIAG_CACHE": str(warm_start_val100), "OMP_NUM_THREADS": "1"}
    exe = str(Path(sys.executable).parent / "entrodiag")
    proc = subprocess.Popen([exe, "train", *SIGKILLED, "--out", str(out)], cwd=out.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = ChildProgress(proc)
    try:
        progress.wait(10, 5, proc)  # steps 0-4 done
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    progress.join()
    assert proc.returncode == -signal.SIGKILL, progress.text[-3000:]
    ckpt_step = list_checkpoints(out)[-1][0]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--resume", str(out)])  # in this process: the kill was the point
    assert code == 0, err.getvalue()[-3000:]
    return out, ckpt_step, err.getvalue()


# A short tiny-arith-test run on the warm start the other short runs share (``--val-size 100``),
# run by two ranks under torchrun: 8 prompts x 4 answers a step, split over the ranks, evaluated
# at steps 0, 2 and 3, checkpointed after steps 1 and 3.
DDP_TRAIN = ["--preset", "tiny-arith-test", "--val-size", "100", "--steps", "4", "--prompts-per-step", "8",
             "--group-size", "4", "--epochs", "1", "--eval-every", "2", "--checkpoint-every", "2", "--no-progress"]


def torchrun_train(out: str, cwd: Path, cache: Path):
    """``entrodiag train *DDP_TRAIN --out OUT`` by two processes under torchrun (gloo, one thread
    each), the completed process."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "--no-python", str(Path(sys.executable).parent / "entrodiag"), "train", *DDP_TRAIN, "--out", out]
    env = {**os.environ, "ENTRODIAG_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def ddp_run(warm_start_val100, tmp_path_factory):
    """A local run of ``DDP_TRAIN`` by two ranks under torchrun, trained once per session
    (test_trainer checks it, test_objstore_write compares its S3 twin with it)."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    res = torchrun_train(str(out), out.parent, warm_start_val100)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def tiny_run(warm_start_cache, tmp_path_factory):
    """A finished ``tiny-arith-test`` run of the built-in trainer (trained once per session) and
    the seconds it took, warm start included."""
    import time

    from entrodiag.trainer import load_config, train

    t0 = time.time()
    out = train(load_config("tiny-arith-test"), tmp_path_factory.mktemp("tiny") / "run", progress=False)
    return out, time.time() - t0


HOOKS_README = Path(__file__).resolve().parents[1] / "training_hooks" / "README.md"


def readme_snippet(name: str) -> str:
    """The python block after ``<!-- snippet: NAME -->`` in training_hooks/README.md."""
    text = HOOKS_README.read_text(encoding="utf-8")
    return re.search(rf"<!-- snippet: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S).group(1)


def snippet_code_lines(name: str) -> list[str]:
    """The snippet's code lines, stripped, without blanks and ``...`` placeholders."""
    return [s for s in (line.strip() for line in readme_snippet(name).splitlines()) if s and not s.startswith("...")]


def lines_missing_from(code: list[str], recipe: Path) -> list[str]:
    """The lines of ``code`` that are not, verbatim (stripped), lines of ``recipe``."""
    recipe_lines = {line.strip() for line in recipe.read_text(encoding="utf-8").splitlines()}
    return [line for line in code if line not in recipe_lines]


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: only what will run
def pytest_collection_modifyitems(config, items):
    """When the verl/OpenRLHF tests are collected, start building their cached environments in
    the background (tests/frameworks/envs.py), so that a cold build overlaps the rest of the suite."""
    import os

    if os.environ.get("ENTRODIAG_SKIP_FRAMEWORK_TESTS") == "1" or config.option.collectonly:
        return
    names = {item.nodeid for item in items}
    wanted = [fw for fw in ("verl-0.9.1", "verl-0.7.1", "openrlhf-0.11.2")
              if any(f"test_frameworks_{fw.split('-')[0]}.py" in n and (fw.startswith("openrlhf") or fw in n) for n in names)]
    if wanted:
        from frameworks.envs import prebuild

        prebuild(wanted)
