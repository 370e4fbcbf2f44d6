"""Which process wrote a registry row, and whether it is still alive.

A run is registered ``running`` with its writer's pid, host and process start token. When the
row is read back, a running row whose process on this host is gone is reported stale. The pid
alone is not enough: pids are recycled, so on Linux the token also holds the boot id and the
process's start time since boot, and a later process given the same pid does not keep a dead
run looking alive.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

__all__ = ["is_stale", "process_start_token"]


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from ``/proc/<pid>/stat``, or None.

    The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so
    the fields are counted from the last ``)``: state is field 3, start time field 22.
    """
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), fields[19].decode()


def process_start_token(pid: int) -> str | None:
    """What tells this process apart from a later one given the same pid.

    On Linux: the boot id and the process's start time since boot. None where ``/proc`` is
    absent (then only the pid is compared, and a recycled pid can hide a stale row).
    """
    stat = _proc_stat(pid)
    return None if stat is None else f"{_boot_id()}:{stat[1]}"


def _process_alive(pid: int, token: str | None) -> bool:
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        if state in ("Z", "X"):  # killed but not yet reaped: the run is over all the same
            return False
        return token is None or token == f"{_boot_id()}:{start}"
    if Path("/proc/self/stat").exists():  # Linux, and the pid has no entry: gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def is_stale(status: str, pid: int | None, host: str | None, token: str | None) -> bool:
    """A running row whose process, on this host, is gone. Rows from other hosts are never
    called stale: their processes cannot be seen from here."""
    if status != "running" or pid is None or host != socket.gethostname():
        return False
    return not _process_alive(pid, token)
