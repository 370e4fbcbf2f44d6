"""``segmint track``: fit a run on all the order lines, then follow its segments over monthly
or quarterly snapshots (``tracking.snapshots``). One engine for both; writes nothing."""

from __future__ import annotations

from typing import Any

from segmint.config import Settings
from segmint.data import readers
from segmint.data.clean_lines import CleanTransactions
from segmint.data.ingest import ingest
from segmint.exceptions import InputError
from segmint.pipeline.segmentation import observation_end_of, segment_ingested
from segmint.pipeline.stages import stage
from segmint.results import RunResult, Tracking
from segmint.tracking.snapshots import snapshot_dates, track


def track_segments(
    settings: Settings,
    every: str,
    *,
    refit: bool = False,
    progress: Any = None,
) -> tuple[Tracking, RunResult]:
    """Fit the run's model on all of ``settings.inputs`` (order lines), then follow the
    segments over monthly or quarterly snapshots (see ``segmint.tracking.snapshots``)."""
    with readers.engine(memory_limit=settings.memory_limit) as con:
        timings: dict[str, float] = {}
        with stage("ingest", timings, progress):
            end = observation_end_of(settings)
            ing = ingest(settings.inputs, settings, con, reference=end)
        if ing.transactions is None:
            raise InputError(
                "tracking segments over time needs order lines (with dates); got a customer table.",
                path=", ".join(i["path"] for i in ing.inputs),
            )
        result = segment_ingested(ing, settings, progress=progress, timings=timings)
        return _track(ing.transactions, result, settings, every, refit), result


def _track(
    tx: CleanTransactions, result: RunResult, settings: Settings, every: str, refit: bool
) -> Tracking:
    first = tx.span()[0]
    end = result.features.observation_end
    dates = snapshot_dates(first, end, every)
    return track(
        tx,
        result.model,
        dates,
        refit=refit,
        lapsed_days=settings.churn.horizon_days,
        seed=settings.seed,
    )
