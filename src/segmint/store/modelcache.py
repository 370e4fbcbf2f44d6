"""Loaded, verified models of run folders, kept for a server's requests: a bounded LRU.

``load_run_model`` reads the model, checks its signature, its types and its hash against the
run's manifest: tens of milliseconds, far too slow to do per scoring request. ``ModelCache``
does it once per run and keeps the last ``maxsize`` runs' models.

An entry is valid only while the run folder's ``model.skops`` and ``manifest.json`` are the
files it was loaded from (device, inode, size and modification time of both, one ``stat``
each per request): a run deleted and made again in the same folder, or a folder swapped in
place by a new save, is loaded afresh, never served stale. Concurrent first requests for the
same run load it once (the others wait for that load and share its model or its error); a
failed load is not cached.

``freeze_gc=True`` (for servers) collects garbage once, after the first model is loaded, and
moves every object then alive into the interpreter's permanent generation (``gc.freeze``):
in a server process (~270,000 objects from scikit-learn, pandas, Ibis, SQLAlchemy and the
model) each full collection took ~140 ms and landed in some request's latency; afterwards it
scans only what requests allocate. Done once per process, not per load, so an evicted
model is not kept frozen.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from segmint.model import SegmentationModel
from segmint.store.loading import MANIFEST, load_run_model

__all__ = ["MODEL_FILE", "ModelCache"]

MODEL_FILE = "model.skops"
Identity = tuple[tuple[int, int, int, int], ...]
_frozen = False
_freeze_lock = threading.Lock()


def _identity(folder: Path) -> Identity | None:
    """What distinguishes these files from a replacement; None when one is missing."""
    out = []
    for name in (MODEL_FILE, MANIFEST):
        try:
            st = os.stat(folder / name)
        except OSError:
            return None
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _freeze_once() -> None:
    global _frozen
    with _freeze_lock:
        if not _frozen:
            gc.collect()
            gc.freeze()
            _frozen = True


class ModelCache:
    """Thread-safe LRU of run folders' models.

    Parameters
    ----------
    maxsize : int, default=8
        Runs whose models stay loaded; the least recently used one leaves first.
    loader : callable, default=``load_run_model``
        ``loader(folder) -> SegmentationModel`` (verifies the model; tests may count calls).
    freeze_gc : bool, default=False
        After the first model this process loads, ``gc.collect()`` then ``gc.freeze()``
        (see the module docstring); for servers.
    """

    def __init__(
        self,
        maxsize: int = 8,
        *,
        loader: Callable[[Path], SegmentationModel] = load_run_model,
        freeze_gc: bool = False,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._loader = loader
        self.freeze_gc = freeze_gc
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, tuple[Identity, SegmentationModel]] = OrderedDict()
        self._loading: dict[tuple[Path, Identity], Future[SegmentationModel]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, folder: str | os.PathLike[str]) -> SegmentationModel:
        """The verified model of the run in ``folder`` (loaded now if it is not cached, or
        if its files changed since). Raises what ``load_run_model`` raises."""
        path = Path(os.path.abspath(folder))
        ident = _identity(path)
        if ident is None:  # missing files: the loader says exactly what is wrong
            with self._lock:
                self._entries.pop(path, None)
            return self._loader(path)
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == ident:
                self._entries.move_to_end(path)
                self.hits += 1
                return entry[1]
            self.misses += 1
            key = (path, ident)
            pending = self._loading.get(key)
            owner = pending is None
            if owner:
                pending = self._loading[key] = Future()
        assert pending is not None
        if not owner:
            return pending.result()
        try:
            model = self._loader(path)
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            if _identity(path) == ident:  # still the files it was loaded from
                self._entries[path] = (ident, model)
                self._entries.move_to_end(path)
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        pending.set_result(model)
        if self.freeze_gc:
            _freeze_once()
        return model

    def discard(self, folder: str | os.PathLike[str]) -> None:
        """Forget the model of ``folder`` (a deleted run)."""
        with self._lock:
            self._entries.pop(Path(os.path.abspath(folder)), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, folder: object) -> bool:
        if not isinstance(folder, str | os.PathLike):
            return False
        with self._lock:
            return Path(os.path.abspath(folder)) in self._entries

    def info(self) -> dict[str, Any]:
        """Size, bound, hits and misses (for logs and health checks)."""
        with self._lock:
            return {
                "size": len(self._entries),
                "maxsize": self.maxsize,
                "hits": self.hits,
                "misses": self.misses,
            }
