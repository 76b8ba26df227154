"""What the verl and OpenRLHF attachments share: one ``Recorder`` per worker process, opened on
the first recorded step, and the driver-side close of a run that several processes write.

Under Ray every actor worker is a process of its own (often on another node). Each one records
its own rank's part files into one run directory on shared storage (a shared folder or an
object-store URL, ``s3://...``); rank 0 owns ``run.json`` and
its heartbeat. Ray ends workers without running ``atexit``, so the driver closes the run when
training ends: ``finish_run(run_dir)`` leaves a close request in the run directory, every worker
that records there notices it within a second (a small watcher thread), flushes, closes its
Recorder (rank 0 marks the run ``finished``) and acknowledges; ranks that are gone by then are
waited for until ``timeout``, and the driver writes the status itself if rank 0 could not.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from ...store.location import locate, run_path

log = logging.getLogger("entrodiag")

CLOSE_REQUEST = ".close-request.json"
#: The attachment of each framework in this process (one recording per worker, not two).
_ACTIVE: dict[str, "Attachment"] = {}
_ACK = ".closed-r{rank:05d}"


class StepRecorder:
    """One process's recording for a framework attachment.

    The ``Recorder`` is opened on the first ``record`` (its rank and world size then come from
    ``torch.distributed``, which the frameworks have initialised by then), with ``resume=True``
    so that every rank and a restarted worker append to the same run. Steps are numbered from
    ``first_step``; by default 1 more than the last step this rank already recorded in the run
    directory, else 1 (verl and OpenRLHF both log their first training step as step 1).

    Nothing here raises into the training loop: a failure is logged and counted in ``errors``
    and the step is not recorded.
    """

    def __init__(self, run_dir: str | os.PathLike | None, source: str, *, first_step: int | None = None,
                 poll_s: float = 1.0, **recorder_kwargs: Any) -> None:
        run_dir = run_dir or os.environ.get("ENTRODIAG_RUN_DIR")
        if not run_dir:
            raise ValueError(
                f"entrodiag {source} attachment: no run directory; pass one or set ENTRODIAG_RUN_DIR "
                "(a folder on storage that every worker can reach)"
            )
        self.run_dir = run_path(run_dir)  # a shared folder, or an object-store URL (s3://, gs://)
        self.source = source
        self.first_step = first_step
        self.poll_s = float(poll_s)
        self.recorder_kwargs = recorder_kwargs
        self.rec = None
        self.next_step: int | None = None
        self.errors = 0
        self.closed = False
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._opened_at = 0.0

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` as a warning the first time ``key`` is seen."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning("entrodiag %s attachment: %s", self.source, message)

    def failed(self, what: str) -> None:
        """Count and log (the first few times) an exception raised by the attachment's own code."""
        self.errors += 1
        if self.errors <= 5:
            log.exception("entrodiag %s attachment: %s failed; training goes on, this step is not recorded",
                          self.source, what)

    def record(self, step: int | None = None, **batch: Any) -> int | None:
        """``Recorder.record_batch`` for the next step (or ``step``); returns the step recorded,
        or None when nothing was (closed run, or a failure, logged)."""
        with self._lock:
            if self.closed:
                self.warn_once("closed", f"the run {self.run_dir} was closed by the driver; later steps are not recorded")
                return None
            try:
                if self.rec is None:
                    self._open(batch.pop("entropy_temperature", 1.0))
                else:
                    batch.pop("entropy_temperature", None)
                step = self.next_step if step is None else int(step)
                self.rec.record_batch(step, **batch)
                self.next_step = step + 1
                return step
            except Exception:
                self.failed("record_batch")
                return None

    def close(self, status: str = "finished") -> None:
        """Flush and close this process's Recorder (rank 0 also writes ``status`` to run.json)."""
        with self._lock:
            if self.closed:
                return
            try:
                if self.rec is not None:
                    self.rec.close(status)
            finally:
                self.closed = True

    # ------------------------------------------------------------------------------ internals
    def _open(self, temperature: float) -> None:
        from ..recorder import Recorder

        kwargs = {"entropy_temperature": float(temperature), **self.recorder_kwargs}
        self.rec = Recorder(self.run_dir, source=self.source, resume=True, **kwargs)
        self._opened_at = time.time()
        self.next_step = self.first_step if self.first_step is not None else _last_step(self.run_dir, self.rec.rank) + 1
        threading.Thread(target=self._watch, name=f"entrodiag-close-watch-r{self.rec.rank}", daemon=True).start()

    def _watch(self) -> None:
        """Close when the driver asks (``finish_run``), then acknowledge."""
        request = locate(self.run_dir).child(CLOSE_REQUEST)
        while not self.closed:
            time.sleep(self.poll_s)
            try:
                req = json.loads(request.read_text())
            except (OSError, ValueError):
                continue
            if float(req.get("time", 0.0)) < self._opened_at:
                continue  # a request from before this Recorder opened (an earlier, resumed run)
            try:
                self.close(str(req.get("status", "finished")))
                locate(self.run_dir).child(_ACK.format(rank=self.rec.rank)).write_bytes(str(time.time()).encode())
            except Exception:
                self.failed("closing on the driver's request")
            return


def _last_step(run_dir: Path | str, rank: int) -> int:
    """The last step ``rank`` recorded in ``run_dir`` (0 when none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    last = 0
    folder = locate(run_dir).child("steps")
    for info in folder.list():
        if not fnmatch.fnmatch(info.base_name, f"part-r{rank:05d}-*.parquet"):
            continue
        try:
            steps = pq.read_table(pa.BufferReader(folder.child(info.base_name).read_bytes()),
                                  columns=["step"])["step"].to_pylist()
        except Exception:
            continue
        last = max([last, *steps])
    return last


def finish_run(run_dir: str | os.PathLike, status: str = "finished", *, timeout: float = 60.0) -> str:
    """Close a run that worker processes record into (call it in the driver when training ends).

    Leaves a close request in ``run_dir``; each worker's attachment flushes, closes its Recorder
    and acknowledges within about a second. Waits until every rank of the run (``world_size``
    in run.json) has acknowledged, rank 0's writer is known dead, or ``timeout`` seconds passed;
    if run.json still says ``running`` then, writes ``status`` into it itself. Returns the status
    that run.json holds afterwards.

    Raises:
        FileNotFoundError: ``run_dir`` holds no run.json (nothing was recorded there).
    """
    from ...store.meta import writer_alive
    from ...store.schema import RUN_JSON
    from ...store.writer import now_iso, put_json

    run = locate(run_dir)  # a shared folder, or an object-store URL
    meta_path = run.child(RUN_JSON)
    if not meta_path.exists():
        raise FileNotFoundError(
            f"{run_dir} holds no run.json: no worker recorded there (is ENTRODIAG_RUN_DIR the same "
            "path on the workers, on storage they share with the driver?)"
        )
    put_json(run.child(CLOSE_REQUEST), {"status": status, "time": time.time()})
    world = int(json.loads(meta_path.read_text()).get("world_size") or 1)

    def acknowledged() -> list[int]:
        return sorted(int(i.base_name[len(".closed-r"):]) for i in run.list() if i.base_name.startswith(".closed-r"))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acks = acknowledged()
        meta = json.loads(meta_path.read_text())
        if len(acks) >= world or (meta.get("status") == "running" and not writer_alive(meta)):
            break
        time.sleep(0.2)
    meta = json.loads(meta_path.read_text())
    if meta.get("status") == "running":
        meta.update(status=status, finished=now_iso(), closed_by="driver", ranks_acknowledged=acknowledged())
        put_json(meta_path, meta)
    return str(meta["status"])


def group_ids(uids: Any) -> torch.Tensor | None:
    """Integer group ids from strings naming each response's group (verl's ``uid``, OpenRLHF's prompt): a stable 56-bit hash,
    so that a group split over ranks keeps one id. None when ``uids`` is None or empty."""
    import hashlib

    if uids is None:
        return None
    uids = list(uids)
    if not uids:
        return None
    return torch.tensor(
        [int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=7).digest(), "big") for u in uids],
        dtype=torch.int64,
    )


class Attachment:
    """The methods one framework's ``attach`` patched; ``detach()`` puts the framework's own back.

    ``kind`` names the attachment path where a framework has several (verl: ``dp_actor`` or
    ``engine``). Creating one makes it the process's active attachment for ``framework``.
    """

    def __init__(self, framework: str, recorder: StepRecorder, version: str,
                 originals: list[tuple[type, str, Any]], kind: str = "") -> None:
        self.framework, self.recorder, self.version, self.kind = framework, recorder, version, kind
        self._originals = originals
        _ACTIVE[framework] = self

    def detach(self) -> None:
        """Put the framework's methods back (a later step is not recorded)."""
        for cls, name, fn in self._originals:
            setattr(cls, name, fn)
        self._originals = []
        if _ACTIVE.get(self.framework) is self:
            del _ACTIVE[self.framework]


def active_attachment(framework: str) -> Attachment | None:
    """This process's attachment for ``framework``, if ``attach`` was called and not detached."""
    return _ACTIVE.get(framework)
