"""The operating-system side of worker processes: slots that bound how many run at once,
signalling a run's process without ever hitting a recycled pid, and describing how one ended.

Why apart from ``launch``: these are the parts that speak to the kernel (``flock``, pidfds,
exit statuses), each small and testable without starting a run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from segmint.exceptions import RunStateError
from segmint.store.registry import RunRecord

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no bound across processes
    fcntl = None  # type: ignore[assignment]

__all__ = ["exit_text", "log_tail", "signal_owner", "slot_fd"]


def slot_fd(folder: Path, slots: int) -> int | None:
    """An open, ``flock``-ed slot file (one of ``slots``), or None when every one is held."""
    if fcntl is None:  # pragma: no cover
        return os.open(os.devnull, os.O_RDONLY)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(slots):
        fd = os.open(folder / f"slot-{n}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return fd
    return None


def signal_owner(registry: Any, record: RunRecord) -> None:
    """SIGTERM to a running row's process that this launcher did not start (another server
    process's worker, a ``segmint run``), pinned by a pidfd and checked against the row's
    start token after it is pinned, so a recycled pid is never signalled."""
    assert record.pid is not None
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            raise RunStateError(
                f"run {record.id}'s process has just ended; it cannot be cancelled."
            ) from None
        except OSError:
            pidfd = None
    try:
        again = registry.get(record.id)  # liveness checks the pinned pid's start token
        if again.state != "running":
            raise RunStateError(
                f"run {record.id} is {again.state} now; only a running run can be cancelled."
            )
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            else:  # pragma: no cover - no pidfd: a small window for a recycled pid remains
                os.kill(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            raise RunStateError(
                f"run {record.id}'s process has just ended; it cannot be cancelled."
            ) from None
        except PermissionError:
            raise RunStateError(
                f"run {record.id}'s process (pid {record.pid}) belongs to another user; this "
                "server cannot cancel it."
            ) from None
    finally:
        if pidfd is not None:
            os.close(pidfd)


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def log_tail(path: Path, chars: int = 1500) -> str:
    """``: <the end of the worker's log>`` (where a crash on start says why), or empty."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars))
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f"; its log ends: {text}" if text else ""
