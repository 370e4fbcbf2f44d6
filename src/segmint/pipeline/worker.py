"""The worker process behind ``POST /v1/runs``: ``python -m segmint.pipeline.worker``.

Why a process of its own: a segmentation holds the CPU for seconds to minutes and DuckDB,
BLAS and the boosting library hold the GIL-free threads of whatever process runs them; the
server's event loop and its other requests must not wait on that, and a run must be
cancellable with a signal without touching the server. ``pipeline.launch`` starts this module
and registers the run ``running`` under this process's pid *before* telling it what to do, so
the row is owned by the process doing the work from the first moment (and reads stale if this
process is killed outright).

The protocol, in order:

1. SIGTERM is turned into ``Cancelled`` at once, before anything slow, so a cancel that
   arrives while the heavy modules import still stops the process cleanly.
2. The pipeline's modules are imported (~2 s) while the launcher registers the row, so the
   request that started the run does not wait for them.
3. The spec (``launch.WorkerSpec`` as JSON) is read from stdin; the launcher writes it only
   after the row is registered. End of input without a spec means the launcher gave up:
   exit 3 without touching the registry.
4. ``jobs.job(..., adopt=run_id)`` takes the row over (it must be ``running`` and registered
   for this pid) and reserves the run folder; ``adopted`` is written to the status pipe, so the
   launcher knows from then on this process records how the run ends.
5. Exactly what ``segmint run`` does: ``segmentation.run``, ``artifacts.save_run`` into the
   row's folder, ``succeeded_with(manifest)``. An error fails the row with its message and
   code; SIGTERM fails it with ``cancelled``.

Exit statuses: 0 succeeded, 2 a domain error, 143 cancelled, 3 no spec, 1 anything else.
Logs go to stderr, which the launcher points at the run's ``worker.log``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

log = logging.getLogger("segmint.worker")

EXIT_OK, EXIT_BUG, EXIT_ERROR, EXIT_NO_SPEC, EXIT_CANCELLED = 0, 1, 2, 3, 143
ADOPTED = b"adopted\n"


class Cancelled(BaseException):
    """SIGTERM as an exception (a ``BaseException``, so no ``except Exception`` swallows it):
    ``finally`` blocks run, the partial run folder, its lock and the engine's temporary store
    are removed, and ``pipeline.jobs`` records ``reason`` as the run's error."""

    reason = "cancelled"


_signalled: list[int] = []


def on_sigterm(signum: int, frame: Any) -> None:
    """Raise ``Cancelled``; remembered, because DuckDB turns an exception raised during a
    query into its own "interrupted" error, which is then re-raised as ``Cancelled``."""
    _signalled.append(signum)
    raise Cancelled


def cancel_requested() -> bool:
    """Whether SIGTERM has arrived."""
    return bool(_signalled)


def main(argv: list[str] | None = None) -> int:
    """Run one registered segmentation (module docstring); returns the exit status."""
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)  # started in its own session: only a deliberate kill
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("segmint").setLevel(logging.INFO)  # the stages' timings, the outcome
    for fd in (args.status_fd, args.slot_fd):
        if fd is not None:  # kept open for this process only, not for anything it starts
            os.set_inheritable(fd, False)
    try:
        return _work(args.status_fd)
    except Cancelled:
        log.info("cancelled")
        return EXIT_CANCELLED
    except Exception as exc:
        from segmint.exceptions import SegmintError

        if cancel_requested():
            log.info("cancelled (%s)", exc)
            return EXIT_CANCELLED
        if isinstance(exc, SegmintError):
            log.error("error [%s]: %s", exc.code, exc)
            return EXIT_ERROR
        log.exception("internal error")
        return EXIT_BUG


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m segmint.pipeline.worker")
    parser.add_argument("--status-fd", type=int, default=None, help="pipe to report adoption")
    parser.add_argument("--slot-fd", type=int, default=None, help="the held job slot (flock)")
    return parser.parse_args(argv)


def _work(status_fd: int | None) -> int:
    # Heavy imports first: they overlap with the launcher registering the row.
    from segmint.config import Settings
    from segmint.pipeline.jobs import job
    from segmint.pipeline.launch import WorkerSpec
    from segmint.pipeline.segmentation import run as run_pipeline
    from segmint.store.artifacts import save_run
    from segmint.store.workspace import Workspace

    text = sys.stdin.read()
    if not text.strip():
        log.info("no run to do: the launcher sent no spec")
        return EXIT_NO_SPEC
    spec = WorkerSpec.model_validate_json(text)
    settings = Settings.build(spec.settings)
    with (
        Workspace.open(spec.workspace, database_url=spec.database_url) as ws,
        job(ws, spec.kind, settings, adopt=spec.run_id) as work,
    ):
        _report_adopted(status_fd)
        log.info("run %s adopted: %s on %s", spec.run_id, spec.kind, ", ".join(settings.inputs))
        try:
            result = run_pipeline(settings)
            save_run(result, work.folder)
        except Exception as exc:
            if cancel_requested():  # DuckDB's "interrupted" for our SIGTERM
                raise Cancelled from exc
            raise
        work.succeeded_with(result.manifest)
    log.info(
        "run %s succeeded: %s customers, k = %s",
        spec.run_id,
        result.manifest.customers,
        result.manifest.k,
    )
    return EXIT_OK


def _report_adopted(status_fd: int | None) -> None:
    """Tell the launcher the row is ours now (it then leaves the row's ending to us)."""
    if status_fd is None:
        return
    try:
        os.write(status_fd, ADOPTED)
        os.close(status_fd)
    except OSError as exc:  # the launcher is gone: the run goes on and records its own end
        log.warning("could not report adoption to the launcher: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
