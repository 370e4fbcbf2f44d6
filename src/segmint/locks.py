"""Advisory locks (``flock``) that die with their process.

Why: a second segmint writing the same output folder must be refused at once, with the other
process named; and the private temporary folders of a process killed by SIGKILL (which runs no
cleanup) must be recognisable as abandoned by the next process. A kernel ``flock`` is released
when its holder dies, however it dies, so "nobody holds the lock" means "the owner is gone".
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from segmint.exceptions import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """``flock`` on ``.<name>.lock``, holding the owner's pid and command for the message a
    second writer gets. The file is removed on release; an acquirer checks it locked the file
    still at that path (a releasing owner may have unlinked it in between)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, target: Path) -> FolderLock:
        """The lock of ``target``; an ``OSError`` when its parent cannot be written, a
        ``OutputError`` (``output.busy``) naming the holder when another process has it."""
        path = target.parent / f".{target.name}.lock"
        if fcntl is None:
            return cls(path, None)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 400, 0).decode(errors="replace").strip()
                os.close(fd)
                raise OutputError(
                    f"{target}: another segmint process is writing this folder "
                    f"({holder or 'process unknown'}). Wait for it to finish or choose another "
                    f"output folder; the lock ({path}) is released when it ends.",
                    code="output.busy",
                    settings=("out",),
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200] if sys.argv else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, '{command}', since {since}".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


def private_temp_dir(prefix: str) -> tuple[str, Callable[[], None]]:
    """A temporary folder ``<prefix><pid>-<random>`` in ``TMPDIR`` and the function removing
    it. The folder holds a locked ``.lock`` for the process's life, so the folders of processes
    that died without cleaning up (SIGKILL) are found and removed here by the next one."""
    base = tempfile.gettempdir()
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[a-z0-9_]+")
    with contextlib.suppress(OSError), os.scandir(base) as it:
        stale = [e.path for e in it if pattern.fullmatch(e.name) and e.is_dir()]
    for path in stale:
        if _abandoned(path, int(pattern.fullmatch(Path(path).name)[1])):
            shutil.rmtree(path, ignore_errors=True)
    folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def cleanup() -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)

    return folder, cleanup


def _abandoned(folder: str, pid: int) -> bool:
    """The owner is gone: no such process here, and nobody holds the folder's lock."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    if fcntl is None:
        return True
    try:
        fd = os.open(os.path.join(folder, ".lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
