"""What every orchestration shares: the progress callback's type and the ``stage`` timer
that reports a stage's start and end and records its seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
Progress = Callable[[str, str], None]  # (stage, detail)


@contextmanager
def stage(name: str, timings: dict[str, float], progress: Progress | None) -> Iterator[None]:
    if progress:
        progress(name, "start")
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)
    log.info("stage %s took %.3f s", name, timings[name])
    if progress:
        progress(name, "done")
