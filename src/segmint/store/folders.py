"""Atomic, locked output folders: at every instant a folder is entirely the old result or
entirely the new one.

Why: a run interrupted while writing (Ctrl-C, SIGTERM, SIGKILL, a full disk) used to leave a
folder mixing the new ``customers.parquet`` with the old manifest and model, and ``predict``
accepted it. Now a folder is written in full into a hidden sibling
``.<name>.partial-<pid>-<random>`` (same parent, so same filesystem) and put in place by one
``renameat2(RENAME_EXCHANGE)`` on Linux, or by rename-aside + rename elsewhere (an interruption
between the two is repaired by the next writer). The old copy is removed afterwards.

An advisory ``flock`` on ``.<name>.lock`` beside the folder refuses a second writer at once, and
every check (the folder is segmint's, its parent is writable) runs before the long work: the
caller reserves the folder first, then computes, then writes. Leftovers of a killed process
(partial folders, private temporary folders) are removed by the next process that needs them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from segmint.exceptions import OutputError
from segmint.locks import FolderLock

# Files an operating system drops into folders; a folder holding them is still segmint's.
_OS_JUNK = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_LEFTOVER = re.compile(r"(partial|old)-(\d+)-[0-9a-f]+")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Kind:
    """A kind of output folder: ``marker`` is the file that proves segmint wrote it; ``files``
    are every top-level name segmint writes there (anything else is the user's, and a folder
    holding it is never replaced)."""

    label: str
    marker: str
    files: frozenset[str]


class Slot:
    """A reserved output folder: locked, checked, with a partial folder to write into."""

    def __init__(self, target: Path, kind: Kind, lock: FolderLock) -> None:
        self.target, self.kind, self.lock = target, kind, lock
        self.thread = threading.get_ident()
        self.partial: Path | None = None
        self.committed = False

    def fresh(self) -> Path:
        """The empty partial folder (created on first use; creating it proves the parent is
        writable, which ``os.access`` cannot tell for root)."""
        if self.partial is None:
            name = f".{self.target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
            path = self.target.parent / name
            try:
                os.mkdir(path)
            except OSError as exc:
                raise _unwritable(self.target, exc) from None
            self.partial = path
        return self.partial

    def discard(self) -> None:
        """Remove the partial folder (after a failure or an interruption)."""
        if self.partial is not None:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.partial = None

    def commit(self) -> None:
        """Swap the partial folder into place; the old folder is removed afterwards."""
        assert self.partial is not None, "nothing to commit"
        check_folder(self.target, self.kind)  # nothing foreign appeared meanwhile
        with _signals_deferred():
            old = _swap(self.partial, self.target)
            self.partial, self.committed = None, True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


_held: dict[Path, Slot] = {}
_held_lock = threading.Lock()


def target_of(out: str | Path) -> Path:
    """The absolute folder a path names; a symlink is followed, so the link stays a link."""
    p = Path(os.path.abspath(out))
    return p.resolve() if p.is_symlink() else p


@contextlib.contextmanager
def reserve(out: str | Path, kind: Kind) -> Iterator[Slot]:
    """Check, lock and probe ``out`` before the long work; release (and remove any partial
    folder) on exit. Re-entrant in one thread: a save inside a reservation reuses it."""
    target = target_of(out)
    with _held_lock:
        slot = _held.get(target)
    if slot is not None and slot.thread == threading.get_ident():
        yield slot
        return
    check_folder(target, kind)
    created = _make_parent(target)
    slot = None
    try:
        try:
            lock = FolderLock.acquire(target)
        except OSError as exc:
            raise _unwritable(target, exc) from None
        try:
            check_folder(target, kind)
            _sweep(target)
            slot = Slot(target, kind, lock)
            slot.fresh()
            with _held_lock:
                _held[target] = slot
            try:
                yield slot
            finally:
                with _held_lock:
                    _held.pop(target, None)
                slot.discard()
        finally:
            lock.release()
    finally:
        if slot is None or not slot.committed:
            for d in reversed(created):  # a failed run leaves no empty parent folders behind
                with contextlib.suppress(OSError):
                    os.rmdir(d)


@contextlib.contextmanager
def writing(out: str | Path, kind: Kind) -> Iterator[Path]:
    """Write a whole folder: yields an empty partial folder that replaces ``out`` when the
    block ends normally. A failure or an interruption leaves ``out`` as it was."""
    with reserve(out, kind) as slot:
        existed = slot.target.is_dir() and any(slot.target.iterdir())
        part = slot.fresh()
        try:
            yield part
            slot.commit()
        except OSError as exc:
            slot.discard()
            raise write_error(exc, slot.target, part, kind, existed) from exc
        except BaseException:
            slot.discard()
            raise


def check_folder(target: Path, kind: Kind) -> None:
    """Refuse a path that is not ours to replace: a file, or a folder segmint did not write."""
    what = f"segmint writes a whole {kind.label} at once and replaces the old one"
    if os.path.lexists(target) and not target.is_dir():
        raise OutputError(
            f"{target}: the output path is a file, not a folder; {what}. "
            "Choose a folder path for the output.",
            settings=("out",),
        )
    if not target.is_dir():
        return
    try:
        names = set(os.listdir(target))
    except OSError as exc:
        raise _unwritable(target, exc) from None
    if names - _OS_JUNK and kind.marker not in names:
        raise OutputError(
            f"{target}: the folder exists and is not a segmint {kind.label} (it has no "
            f"{kind.marker}, and holds {_listing(names)}); {what}, so it will not write there. "
            "Choose a new or empty folder for the output.",
            settings=("out",),
        )
    foreign = {n for n in names - kind.files - _OS_JUNK if not _own_temp(n, kind)}
    if foreign:
        raise OutputError(
            f"{target}: the {kind.label} also holds files segmint did not write "
            f"({_listing(foreign)}); {what}, so they would be lost. Move them elsewhere or "
            "choose another folder for the output.",
            settings=("out",),
        )


def _own_temp(name: str, kind: Kind) -> bool:
    """``.<file>.<pid>.tmp``: a temporary file segmint writes beside one of its files (the
    model's signature) and renames; left behind only by a killed process."""
    m = re.fullmatch(r"\.(.+)\.\d+\.tmp", name)
    return m is not None and m[1] in kind.files


def write_error(exc: OSError, target: Path, part: Path, kind: Kind, existed: bool) -> OutputError:
    """One paragraph for a failed write: which file, why, and that the old folder is intact."""
    name = exc.filename
    if name:
        with contextlib.suppress(ValueError):
            name = str(Path(name).relative_to(part))
    nospace = exc.errno in _NO_SPACE or "no space left" in str(exc).lower()
    why = "no space left on device" if nospace else (exc.strerror or str(exc))
    before = (
        f"the previous {kind.label} in {target} is unchanged"
        if existed
        else f"nothing was written to {target}"
    )
    todo = "Free some disk space" if nospace else "Fix the cause"
    return OutputError(
        f"{target}: writing {name or 'the ' + kind.label} failed: {why}. The partial folder "
        f"was removed and {before}. {todo} (or choose another output folder) and run again.",
        code="output.unwritable",
        settings=("out",),
    )


def _listing(names: set[str], most: int = 5) -> str:
    shown = sorted(names)[:most]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more


def _unwritable(target: Path, exc: OSError) -> OutputError:
    where = Path(exc.filename) if exc.filename else target.parent
    if where.parent == target.parent and where.name.startswith(f".{target.name}."):
        where = target.parent  # our lock or partial folder: the parent is what is not writable
    return OutputError(
        f"{target}: cannot write the output folder here: {where}: "
        f"{exc.strerror or exc} (errno {exc.errno}). Nothing was run. Choose an output folder "
        "on a writable disk, in a folder you may write to.",
        code="output.unwritable",
        settings=("out",),
    )


def _make_parent(target: Path) -> list[Path]:
    """Create the missing parent folders (returned, outermost first), refusing a path that
    runs through a file."""
    missing = []
    for up in target.parents:
        if os.path.lexists(up):
            if not up.is_dir():
                raise OutputError(
                    f"{target}: {up} is a file, so no folder can be created under it. "
                    "Nothing was run. Choose another output folder.",
                    settings=("out",),
                )
            break
        missing.append(up)
    try:
        for d in reversed(missing):
            os.mkdir(d)
    except OSError as exc:
        for d in missing:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise _unwritable(target, exc) from None
    return missing[::-1]


def _sweep(target: Path) -> None:
    """Under the lock, every ``.<name>.partial-*`` / ``.<name>.old-*`` is a leftover of a
    process that died (SIGKILL, power loss): remove it, or put back an old folder that a
    rename-aside swap had moved when it was interrupted."""
    prefix = f".{target.name}."
    with contextlib.suppress(OSError), os.scandir(target.parent) as it:
        entries = [e for e in it if e.name.startswith(prefix)]
    for e in entries:
        m = _LEFTOVER.fullmatch(e.name[len(prefix) :])
        if m is None:
            continue
        if m[1] == "old" and not os.path.lexists(target):
            os.rename(e.path, target)
        else:
            shutil.rmtree(e.path, ignore_errors=True)


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_renameat2: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    _renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if _renameat2 is not None:
        _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        _renameat2.argtypes += [ctypes.c_uint]
        _renameat2.restype = ctypes.c_int


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2``; False when this system or filesystem lacks it (the caller falls back)."""
    if _renameat2 is None:
        return False
    at_fdcwd = -100
    if _renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def _swap(new: Path, target: Path) -> Path | None:
    """Put ``new`` at ``target``; returns where the old folder now is (to remove), if any."""
    if not os.path.lexists(target):
        if not _rename2(new, target, _RENAME_NOREPLACE):
            os.rename(new, target)
        return None
    if _rename2(new, target, _RENAME_EXCHANGE):
        return new  # the partial path now holds the old folder
    old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    return old


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the swap is done and recorded (main thread only: Python runs
    signal handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, lambda n, _f: caught.append(n))
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])
