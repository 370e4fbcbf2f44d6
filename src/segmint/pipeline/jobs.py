"""Every ``run``, ``compare``, ``track`` and ``clv`` is a row in the workspace's registry.

``job`` reserves the output folder (refusing a bad one before anything is registered or
computed), registers the work as ``running``, and hands the caller a ``Job``. The caller
does the work, writes the folder (atomically, through ``store``) and calls
``Job.succeeded`` — so a row says ``succeeded`` only once its folder is complete and in
place. Anything that stops the work (an error, Ctrl-C, SIGTERM) marks the row ``failed``
with the reason (a domain error as ``[code] message``); a process killed outright leaves it
``running``, and the registry shows it stale because its process is gone.

A worker process started by ``pipeline.launch`` does not begin a row: its launcher registered
one for the worker's pid, and ``job(..., adopt=run_id)`` takes it over.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segmint.config import Settings
from segmint.exceptions import ArtifactError, RunNotFoundError, RunStateError, SegmintError
from segmint.results import RunManifest
from segmint.store.artifacts import output_folder
from segmint.store.registry import Registry, RunRecord
from segmint.store.runids import new_run_id
from segmint.store.workspace import Workspace

log = logging.getLogger(__name__)

# registry kind → the folder kind ``store`` writes for it
FOLDER_KINDS = {"run": "run", "compare": "run", "track": "track", "clv": "clv", "effect": "effect"}


@dataclass
class Job:
    """A registered piece of work: its id, its folder, and how to report success."""

    record: RunRecord
    folder: Path
    registry: Registry
    finished: bool = field(default=False, init=False)

    @property
    def id(self) -> str:
        return self.record.id

    def succeeded(
        self,
        *,
        k: int | None = None,
        customers: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        inputs: Iterable[Mapping[str, Any]] | None = None,
    ) -> RunRecord:
        """Mark the row succeeded; call it after the folder is written and in place."""
        self.record = self.registry.succeed(
            self.record.id,
            k=k,
            customers=customers,
            metrics=metrics,
            inputs=None if inputs is None else _inputs(inputs),
        )
        self.finished = True
        return self.record

    def succeeded_with(self, manifest: RunManifest) -> RunRecord:
        """Mark a segmentation run succeeded with its manifest's numbers."""
        return self.succeeded(
            k=manifest.k,
            customers=manifest.customers,
            metrics=manifest.metrics.model_dump(mode="json", exclude_none=True),
            inputs=[i.model_dump(mode="json") for i in manifest.inputs],
        )


@contextmanager
def job(
    workspace: Workspace,
    kind: str,
    settings: Settings,
    *,
    out: str | Path | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
    adopt: str | None = None,
) -> Iterator[Job]:
    """Reserve the folder (``out``, else ``<workspace>/runs/<id>``), register the work as
    running, and record how it ends. The folder is checked before anything is registered.

    ``adopt`` is the id of a row a launcher has already registered ``running`` for this
    process (``Registry.begin(owner_pid=...)``, see ``pipeline.launch``): that row is taken
    over instead of a new one being begun, its folder is the row's, and ``out``, ``name``
    and ``tags`` (given when it was registered) are not used. A folder that cannot be
    reserved then fails the row, since it is already registered."""
    registry = workspace.registry
    if adopt is not None:
        record = _adoptable(registry, adopt, kind)
        with ExitStack() as stack:
            try:
                stack.enter_context(output_folder(Path(record.folder), FOLDER_KINDS[kind]))
            except BaseException as exc:
                _fail(registry, record.id, _reason(exc))
                raise
            yield from _recorded(Job(record, Path(record.folder), registry))
        return
    run_id = new_run_id()
    folder = Path(out) if out is not None else workspace.folder_for(run_id)
    with output_folder(folder, FOLDER_KINDS[kind]):
        record = registry.begin(
            run_id=run_id,
            kind=kind,
            folder=folder,
            inputs=[{"path": p} for p in settings.inputs],
            config=settings.model_dump(mode="json"),
            config_hash=settings.hash(),
            name=name,
            tags=tags,
        )
        yield from _recorded(Job(record, folder, registry))


def _recorded(current: Job) -> Iterator[Job]:
    """Hand out the job; record a failure for whatever stops the caller's work."""
    try:
        yield current
    except BaseException as exc:
        _fail(current.registry, current.id, _reason(exc))
        raise
    if not current.finished:
        _fail(current.registry, current.id, "the command ended without writing its result")


def _adoptable(registry: Registry, run_id: str, kind: str) -> RunRecord:
    """The row ``run_id`` if it is running, of ``kind``, and registered for this process."""
    record = registry.get(run_id)
    owner = f"pid {record.pid} on {record.host}"
    if record.status != "running" or record.kind != kind:
        raise RunStateError(
            f"run {record.id} is a {record.status} {record.kind} run; only a running "
            f"{kind} run registered for this process can be taken over."
        )
    if record.pid != os.getpid() or record.host != socket.gethostname():
        raise RunStateError(
            f"run {record.id} is registered for {owner}, not for this process "
            f"(pid {os.getpid()} on {socket.gethostname()}); it cannot be taken over here."
        )
    return record


def _fail(registry: Registry, run_id: str, reason: str) -> None:
    """Record the failure; a registry that cannot be reached must not hide the real error."""
    try:
        registry.fail(run_id, reason)
    except Exception as exc:
        log.warning("could not mark run %s failed in the registry: %s", run_id, exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, SegmintError):  # the stable code first, for programs reading the row
        return f"[{exc.code}] {exc}"
    if not isinstance(exc, Exception):  # SIGTERM's exception (it says why), SystemExit
        return getattr(exc, "reason", None) or f"stopped ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _inputs(inputs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the registry keeps of each input: where it was and what it held."""
    keep = ("path", "format", "kind", "sha256", "bytes")
    return [{k: i[k] for k in keep if i.get(k) is not None} for i in inputs]


SEGMENTATIONS = ("run", "compare")


def find_run(workspace: Workspace, ref: str, kinds: Iterable[str] = SEGMENTATIONS) -> RunRecord:
    """The finished run ``ref`` names (an id, a unique id prefix, a tag, a name or
    ``latest``: the newest succeeded run of one of ``kinds``)."""
    kinds = tuple(kinds)
    registry = workspace.registry
    if ref == "latest":
        found = []
        for kind in kinds:
            try:
                found.append(registry.resolve(ref, kind=kind))
            except RunNotFoundError:
                continue
        if not found:
            raise RunNotFoundError(
                f"the workspace {workspace.root} has no finished {' or '.join(kinds)} run yet.",
                ref=ref,
            )
        return max(found, key=lambda r: r.created)
    record = registry.resolve(ref)
    if record.kind not in kinds:
        raise RunStateError(
            f"run {record.id} is a {record.kind} run; a {' or '.join(kinds)} run is needed here."
        )
    if record.state != "succeeded":
        why = f": {record.error}" if record.error else ""
        raise RunStateError(f"run {record.id} is {record.state}{why}; it has no result to use.")
    return record


def find_run_folder(
    ref: str | Path, workspace: str | Path | None = None, kinds: Iterable[str] = SEGMENTATIONS
) -> Path:
    """A run folder given as a path, or the folder of the registered run ``ref`` names."""
    path = Path(ref)
    if path.is_dir():
        return path
    with Workspace.open(workspace) as ws:
        record = find_run(ws, str(ref), kinds)
    return existing_folder(record)


def existing_folder(record: RunRecord) -> Path:
    """The run's folder, refused (``artifact.missing``) when it is no longer there."""
    folder = Path(record.folder)
    if not folder.is_dir():
        raise ArtifactError(
            f"run {record.id} was written to a folder that no longer exists (moved or "
            "deleted outside segmint).",
            code="artifact.missing",
        )
    return folder
