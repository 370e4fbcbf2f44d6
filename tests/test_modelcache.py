"""``store.modelcache.ModelCache``: bounded LRU of verified models, reloaded when a run's
files change, loaded once under concurrent first requests, failures not cached."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from segmint.exceptions import ArtifactError
from segmint.store.loading import MANIFEST
from segmint.store.modelcache import MODEL_FILE, ModelCache


def fake_run(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / MODEL_FILE).write_bytes(b"model of " + name.encode())
    (folder / MANIFEST).write_text("{}")
    return folder


class Loader:
    """Counts loads; returns a new object per load; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail: int = 0) -> None:
        self.calls: list[Path] = []
        self.delay = delay
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, folder: Path) -> object:
        with self.lock:
            self.calls.append(folder)
        time.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise ArtifactError(f"{folder}: cannot load")
        if not (folder / MODEL_FILE).is_file():
            raise ArtifactError(f"{folder}: no model", code="artifact.missing")
        return object()


def test_a_model_is_loaded_once_and_kept(tmp_path):
    loader = Loader()
    cache = ModelCache(4, loader=loader)
    run = fake_run(tmp_path, "a")
    first = cache.get(run)
    assert cache.get(run) is first and cache.get(str(run)) is first
    assert len(loader.calls) == 1
    assert cache.info() == {"size": 1, "maxsize": 4, "hits": 2, "misses": 1}
    assert run in cache


def test_least_recently_used_leaves_first(tmp_path):
    loader = Loader()
    cache = ModelCache(2, loader=loader)
    a, b, c = (fake_run(tmp_path, n) for n in "abc")
    ma = cache.get(a)
    cache.get(b)
    assert cache.get(a) is ma  # a is now the most recent
    cache.get(c)  # evicts b
    assert len(cache) == 2 and a in cache and c in cache and b not in cache
    cache.get(b)
    assert len(loader.calls) == 4 and a not in cache


def test_a_replaced_run_is_loaded_again(tmp_path):
    loader = Loader()
    cache = ModelCache(4, loader=loader)
    run = fake_run(tmp_path, "a")
    old = cache.get(run)
    # a run deleted and made again in the same folder: new files (new inode, other time)
    os.remove(run / MODEL_FILE)
    (run / MODEL_FILE).write_bytes(b"another model, longer than before")
    new = cache.get(run)
    assert new is not old and len(loader.calls) == 2
    assert cache.get(run) is new
    # a manifest rewritten in place (same size) with another modification time
    st = os.stat(run / MANIFEST)
    os.utime(run / MANIFEST, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.get(run) is not new and len(loader.calls) == 3
    assert len(cache) == 1


def test_a_deleted_run_is_not_served(tmp_path):
    loader = Loader()
    cache = ModelCache(4, loader=loader)
    run = fake_run(tmp_path, "a")
    cache.get(run)
    os.remove(run / MODEL_FILE)
    with pytest.raises(ArtifactError) as err:
        cache.get(run)
    assert err.value.code == "artifact.missing" and run not in cache


def test_concurrent_first_requests_load_once(tmp_path):
    loader = Loader(delay=0.3)
    cache = ModelCache(4, loader=loader)
    run = fake_run(tmp_path, "a")
    got: list[object] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        got.append(cache.get(run))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(got) == 8 and all(m is got[0] for m in got)
    assert len(loader.calls) == 1


def test_a_failed_load_is_shared_and_not_cached(tmp_path):
    loader = Loader(delay=0.2, fail=1)
    cache = ModelCache(4, loader=loader)
    run = fake_run(tmp_path, "a")
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            cache.get(run)
        except ArtifactError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(errors) == 3 and len(loader.calls) == 1
    assert run not in cache
    cache.get(run)  # the next request tries again
    assert len(loader.calls) == 2 and run in cache


def test_a_real_run_model_is_verified_and_cached(tmp_path):
    from .api_support import make_served

    served = make_served(tmp_path / "w", customers=120, seed=3)
    cache = ModelCache()
    model = cache.get(served.folder)
    assert model.segment_names and cache.get(served.folder) is model
    cache.discard(served.folder)
    assert served.folder not in cache
    (served.folder / MODEL_FILE).write_bytes(b"tampered")
    with pytest.raises(ArtifactError):
        cache.get(served.folder)
    assert served.folder not in cache


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        ModelCache(0)


def test_freeze_gc_freezes_once_after_the_first_load(tmp_path, monkeypatch):
    import gc

    from segmint.store import modelcache

    calls = []
    monkeypatch.setattr(modelcache, "_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    cache = ModelCache(4, loader=Loader(), freeze_gc=True)
    cache.get(fake_run(tmp_path, "a"))
    cache.get(fake_run(tmp_path, "b"))
    assert calls == ["freeze"]
    ModelCache(4, loader=Loader()).get(fake_run(tmp_path, "c"))  # off by default
    assert calls == ["freeze"]
