"""Starting segmentation runs in worker processes, and cancelling them (``POST /v1/runs``,
``POST /v1/runs/{RUN}/cancel``).

Why a process per run, started this way:

- **Not the server's process.** A run holds the CPU for seconds to minutes; the event loop
  and its threads must keep answering. Each run is ``python -m segmint.pipeline.worker``
  (``pipeline.worker``) in a session of its own, its stdout and stderr in
  ``<workspace>/uploads/<id>/worker.log``.
- **The row belongs to the worker from the start.** ``Launcher.start`` mints the run id,
  starts the worker, registers the row ``running`` under the *worker's* pid and start token
  (``Registry.begin(owner_pid=...)``), and only then writes the run's spec to the worker's
  stdin. The worker imports the pipeline (~2 s) meanwhile, so the request returns as soon as
  the row exists; the worker then adopts the row (``jobs.job(adopt=...)``) and records how
  the run ends itself, exactly as ``segmint run`` does. A worker killed outright leaves a row
  the registry reports ``stale``, as any killed process does.
- **Reaped, and never silent.** A daemon thread per worker waits for it (no zombies). A
  worker that exits before adopting its row (it crashed on start, or was cancelled while
  importing) gets the row marked ``failed`` with the reason and the tail of its log.
- **Cancelling signals only the run's own process.** ``cancel`` sends SIGTERM only to a
  running row's process on this host whose pid *and* start token still match (through a
  pidfd, so a recycled pid is never signalled); the worker turns SIGTERM into ``Cancelled``
  and its row ends ``failed`` with ``cancelled``. A worker this launcher started that has
  not exited ``cancel_grace`` seconds later is killed and its row marked ``failed``
  (``cancelled``) by the launcher.
- **A bounded number of workers, across server processes.** At most ``max_jobs`` workers run
  at once per workspace: each holds an ``flock`` on one of ``max_jobs`` slot files in
  ``<workspace>/uploads/.slots``, taken by the server before the request body is read and
  handed to the worker, so the slot is freed however the worker ends (even SIGKILL) and every
  uvicorn worker process of one server shares the bound. When every slot is taken the
  request is refused (the API answers 429 with ``Retry-After``) rather than queued: a queue
  would have to survive server restarts to be honest about what it promised, and a caller
  (a scheduler) can retry.
- **Uploads live beside, not inside, the run folder** (whose files are fixed): in
  ``<workspace>/uploads/<id>/``, named by ``uploads.safe_file_name``; the row's inputs point there.
  They stay as long as the run does, so what a run read stays inspectable and re-runnable, and
  ``Workspace.delete_run`` (``DELETE /v1/runs/{RUN}``, ``segmint runs delete``) removes them
  with the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from segmint.config import Settings
from segmint.exceptions import RunStateError
from segmint.pipeline.processes import exit_text, log_tail, signal_owner, slot_fd
from segmint.store.registry import RunRecord
from segmint.store.runids import new_run_id
from segmint.store.validation import check_name, check_tag
from segmint.store.workspace import Workspace

__all__ = [
    "LOG_FILE",
    "Launcher",
    "Reservation",
    "WorkerSpec",
    "kind_for",
]

log = logging.getLogger(__name__)

LOG_FILE = "worker.log"
EXIT_CANCELLED = 143  # pipeline.worker's status after SIGTERM
SLOTS_DIR = ".slots"
_NOT_FOR_WORKERS = ("SEGMINT_API_KEY",)  # a worker serves no requests
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerSpec(BaseModel):
    """What the launcher tells a worker on its stdin, once the run's row exists."""

    model_config = ConfigDict(extra="forbid")

    workspace: str
    database_url: str
    run_id: str
    kind: Literal["run", "compare"]
    settings: dict[str, Any]


def kind_for(settings: Settings) -> Literal["run", "compare"]:
    """The registry kind of a segmentation with these settings, as ``segmint run`` picks it."""
    return "compare" if settings.clustering.algorithm == "all" else "run"


@dataclass
class Reservation:
    """A run being prepared: its id, its upload folder, and a held worker slot. Released
    (folder removed, slot freed) unless ``Launcher.start`` hands it to a worker."""

    run_id: str
    folder: Path
    slot: int | None
    started: bool = field(default=False, init=False)

    def release(self) -> None:
        """Give up the run before it started: remove its folder, free its slot."""
        if self.started:
            return
        if self.slot is not None:
            os.close(self.slot)
            self.slot = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@dataclass
class _Worker:
    run_id: str
    process: subprocess.Popen[bytes]
    log: Path
    cancelled: bool = False
    killed: bool = False
    adopted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Launcher:
    """Starts runs in worker processes for one workspace and cancels them (module docstring).

    One per server process; safe to share between threads. ``python`` is the interpreter the
    workers run on (this one by default).
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        max_jobs: int = 2,
        cancel_grace: float = 30.0,
        python: str | None = None,
    ) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        self.workspace = workspace
        self.max_jobs = max_jobs
        self.cancel_grace = cancel_grace
        self.python = python or sys.executable
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()

    # -- starting ----------------------------------------------------------------------------

    def reserve(self) -> Reservation | None:
        """A new run id, its upload folder and a worker slot; None when ``max_jobs`` workers
        (of any server process on this workspace) are running. Use it as a context manager:
        it is released unless the run starts."""
        slot = slot_fd(self.workspace.uploads_dir / SLOTS_DIR, self.max_jobs)
        if slot is None:
            return None
        run_id = new_run_id()
        folder = self.workspace.uploads_for(run_id)
        try:
            folder.mkdir(parents=True, mode=0o700)
        except BaseException:
            os.close(slot)
            raise
        return Reservation(run_id, folder, slot)

    def start(
        self,
        reservation: Reservation,
        settings: Settings,
        inputs: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        tags: Iterable[str] = (),
    ) -> RunRecord:
        """Start the reserved run on ``inputs`` (the files it reads, already on this server)
        with ``settings`` (whose ``inputs`` and ``out`` are the server's to set: replaced and
        refused). Returns the row, ``running`` and owned by the worker."""
        if reservation.started or reservation.slot is None:
            raise ValueError(f"reservation {reservation.run_id} was already used or released")
        if settings.out is not None:
            raise ValueError("the server decides where a run is written: settings.out is set")
        name = check_name(name)  # refused now, not after a worker is started
        tags = [check_tag(t) for t in tags]
        settings = settings.model_copy(update={"inputs": [os.fspath(p) for p in inputs]})
        settings = Settings.build(settings.model_dump())  # checked as a whole again
        kind = kind_for(settings)
        run_id = reservation.run_id
        log_path = reservation.folder / LOG_FILE
        status_r, status_w = os.pipe()
        try:
            with open(log_path, "ab") as log_file:
                process = subprocess.Popen(
                    [
                        self.python,
                        "-m",
                        "segmint.pipeline.worker",
                        "--status-fd",
                        str(status_w),
                        "--slot-fd",
                        str(reservation.slot),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(status_w, reservation.slot),
                    start_new_session=True,
                    cwd=self.workspace.root,
                    env=self._worker_env(),
                )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        # The worker holds the slot now (the same open file, so the same flock).
        reservation.started = True
        os.close(reservation.slot)
        reservation.slot = None
        worker = _Worker(run_id, process, log_path)
        try:
            record = self.workspace.registry.begin(
                run_id=run_id,
                kind=kind,
                folder=self.workspace.folder_for(run_id),
                inputs=[{"path": p} for p in settings.inputs],
                config=settings.model_dump(mode="json"),
                config_hash=settings.hash(),
                name=name,
                tags=tags,
                owner_pid=process.pid,
            )
        except BaseException:
            self._abandon(worker, status_r)
            shutil.rmtree(reservation.folder, ignore_errors=True)
            raise
        with self._lock:
            self._workers[run_id] = worker
        where = self.workspace.reopen_arguments()
        spec = WorkerSpec(
            workspace=where["path"],
            database_url=where["database_url"],
            run_id=run_id,
            kind=kind,
            settings=settings.model_dump(mode="json"),
        )
        assert process.stdin is not None
        try:
            process.stdin.write(spec.model_dump_json().encode())
            process.stdin.close()
        except OSError:  # the worker is gone already: its reaper records why
            pass
        threading.Thread(
            target=self._reap, args=(worker, status_r), name=f"reap-{run_id}", daemon=True
        ).start()
        log.info("run %s started in worker pid %s", run_id, process.pid)
        return record

    def _worker_env(self) -> dict[str, str]:
        """The server's environment without its API keys, and, unless the operator set them,
        OpenMP/BLAS pools sized to a share of the CPUs, so ``max_jobs`` workers together do
        not oversubscribe the machine (each would otherwise take every core)."""
        env = {k: v for k, v in os.environ.items() if k not in _NOT_FOR_WORKERS}
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        share = str(max(1, (cpus or 1) // self.max_jobs))
        for var in _THREAD_VARS:
            env.setdefault(var, share)
        return env

    def _abandon(self, worker: _Worker, status_r: int) -> None:
        """The row could not be registered: the worker reads no spec and exits; wait for it."""
        os.close(status_r)
        assert worker.process.stdin is not None
        with contextlib.suppress(OSError):
            worker.process.stdin.close()
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()

    # -- reaping -----------------------------------------------------------------------------

    def _reap(self, worker: _Worker, status_r: int) -> None:
        """Wait for the worker (a daemon thread each); fail its row when the worker could not
        record the run's end itself. The worker counts as running until this is done."""
        try:
            code = worker.process.wait()
            # Read after the exit, without blocking: anything the worker started that
            # inherited the pipe against its will must not keep the reaper waiting.
            os.set_blocking(status_r, False)
            with os.fdopen(status_r, "rb") as status:
                try:
                    worker.adopted = (status.read() or b"").startswith(b"adopted")
                except BlockingIOError:
                    worker.adopted = False
            why = self._unrecorded_end(worker, code)
            if why is not None:
                self._fail(worker.run_id, why)
        finally:
            with self._lock:
                self._workers.pop(worker.run_id, None)

    def _fail(self, run_id: str, why: str) -> None:
        try:
            if self.workspace.registry.get(run_id).status == "running":
                self.workspace.registry.fail(run_id, why)
        except RunStateError:
            pass  # the worker recorded its end after all
        except Exception as exc:
            log.warning("could not mark run %s failed: %s", run_id, exc)

    def _unrecorded_end(self, worker: _Worker, code: int) -> str | None:
        """Why the run ended, when its worker did not record it; None when it did (or when
        it was killed outright, which leaves the row ``stale`` as for any killed process)."""
        if worker.killed:
            return (
                f"cancelled (the worker did not stop within {self.cancel_grace:g} s of SIGTERM "
                "and was killed)"
            )
        if not worker.adopted:
            if worker.cancelled or code in (EXIT_CANCELLED, -signal.SIGTERM):
                return "cancelled" if worker.cancelled else "cancelled (SIGTERM) before it started"
            return (
                f"the worker process {exit_text(code)} before it started the run"
                f"{log_tail(worker.log)}"
            )
        if code < 0:
            return None  # killed by a signal after adopting: the row reads stale
        return f"the worker process {exit_text(code)} without recording the run's end"

    # -- cancelling --------------------------------------------------------------------------

    def cancel(self, ref: str) -> RunRecord:
        """Ask a running run's process to stop (SIGTERM); returns the row (still ``running``
        until the worker records ``failed``: ``cancelled``).

        Refused with ``RunStateError`` for a run that is not running (finished, or stale), or
        whose process is on another host or is not a process this host can signal. The
        process is signalled only while its pid and start token match the row's."""
        registry = self.workspace.registry
        record = registry.resolve(ref)
        self._check_cancellable(record)
        with self._lock:
            worker = self._workers.get(record.id)
        if worker is not None:
            with worker.lock:
                worker.cancelled = True
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGTERM)  # ours and unreaped: not recycled
            timer = threading.Timer(self.cancel_grace, self._kill_late, args=(worker,))
            timer.daemon = True
            timer.start()
        else:
            signal_owner(registry, record)
        return registry.get(record.id)

    def _check_cancellable(self, record: RunRecord) -> None:
        if record.state != "running":
            why = f": {record.error}" if record.error else ""
            if record.state == "stale":
                why = " (its process is gone without recording how it ended)"
            raise RunStateError(
                f"run {record.id} is {record.state}{why}; only a running run can be cancelled."
            )
        if record.host != socket.gethostname() or record.pid is None:
            raise RunStateError(
                f"run {record.id} runs on {record.host or 'an unknown host'}, not on this "
                "server's host; cancel it where it runs."
            )

    def _kill_late(self, worker: _Worker) -> None:
        with worker.lock:
            if worker.process.poll() is None:  # unreaped: its pid and group are still its own
                worker.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGKILL)  # with anything it started
                log.warning("run %s: worker ignored SIGTERM; killed", worker.run_id)

    # -- the server's view ---------------------------------------------------------------------

    def running(self) -> list[str]:
        """Ids of the runs whose workers this launcher started and has not yet reaped."""
        with self._lock:
            return sorted(self._workers)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every worker this launcher started has been reaped (tests, shutdown);
        True when none is left."""

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._workers:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
