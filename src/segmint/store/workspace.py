"""The workspace: one folder holding run folders and the run registry.

A workspace is where runs live by default: ``<root>/runs/<id>`` for each run's folder and, unless
``SEGMINT_DATABASE_URL`` points at PostgreSQL (or another SQLite file), ``<root>/registry.db``
for the registry. Everything that needs "the runs" (the ``runs`` commands, ``predict --run``,
the server) opens one with ``Workspace.open`` so that all of them agree on where that is:

1. the path given,
2. else ``SEGMINT_WORKSPACE``,
3. else ``./segmint-workspace``.

The registry is built lazily: opening a workspace creates its folders and checks the database
URL's shape, but connects only when the registry is first used. Deleting a run removes its row
and its folder, but only a folder inside the workspace: a run written elsewhere (``--out``) is
the user's folder, so it is left in place and the result says so.

Runs started by the server keep what it received in ``<root>/uploads/<id>/`` (uploaded input
files and the worker's log) outside the run folder, whose contents are fixed; deleting the run
removes that folder too.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from segmint.exceptions import ConfigError, RunStateError
from segmint.store.registry import Registry, RunRecord
from segmint.store.urls import mask_url, parse_database_url

__all__ = [
    "DEFAULT_WORKSPACE",
    "ENV_DATABASE_URL",
    "ENV_WORKSPACE",
    "DeletedRun",
    "Workspace",
]

ENV_WORKSPACE = "SEGMINT_WORKSPACE"
ENV_DATABASE_URL = "SEGMINT_DATABASE_URL"
DEFAULT_WORKSPACE = "segmint-workspace"
REGISTRY_FILE = "registry.db"
RUNS_DIR = "runs"
UPLOADS_DIR = "uploads"


@dataclass(frozen=True)
class DeletedRun:
    """What ``Workspace.delete_run`` did: the row as it was, and what became of its folder."""

    record: RunRecord
    folder: Path
    folder_removed: bool
    note: str | None = None  # why the folder was not removed, when it was not


class Workspace:
    """A workspace folder and its (lazily connected) run registry. Use ``Workspace.open``."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.runs_dir = root / RUNS_DIR
        self._database_url = database_url
        self._registry: Registry | None = None

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, database_url: str | None = None
    ) -> Workspace:
        """Open (creating if needed) the workspace at ``path``, else ``$SEGMINT_WORKSPACE``, else
        ``./segmint-workspace``. The registry's URL is ``database_url``, else
        ``$SEGMINT_DATABASE_URL``, else ``sqlite:///<root>/registry.db``.

        Raises ``ConfigError`` when the folder cannot be made or the URL is malformed.
        """
        chosen = path if path is not None else os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE
        root = Path(chosen).expanduser().absolute()
        for folder in (root, root / RUNS_DIR):
            if folder.exists() and not folder.is_dir():
                raise ConfigError(
                    [f"workspace {folder} is a file, not a folder"], settings=("workspace",)
                )
        try:
            (root / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                [f"workspace {root} cannot be created: {exc.strerror}"], settings=("workspace",)
            ) from None

        if database_url is None and os.environ.get(ENV_DATABASE_URL, "").strip():
            url, source = os.environ[ENV_DATABASE_URL].strip(), ENV_DATABASE_URL
        elif database_url is not None:
            url, source = database_url, "the database URL"
        else:
            url, source = f"sqlite:///{root / REGISTRY_FILE}", "the default database URL"
        try:
            parse_database_url(url)
        except ConfigError as exc:
            raise ConfigError(
                [f"{source}: {problem}" for problem in exc.problems], settings=exc.settings
            ) from None
        return cls(root, url)

    @property
    def database_url(self) -> str:
        """The registry's URL with any password masked."""
        return mask_url(self._database_url)

    @property
    def registry(self) -> Registry:
        """The run registry; connects (and migrates) on its first query."""
        if self._registry is None:
            self._registry = Registry(self._database_url)
        return self._registry

    def folder_for(self, run_id: str) -> Path:
        """Where a run made in this workspace keeps its folder: ``<root>/runs/<id>``."""
        if not run_id or not run_id.isalnum() or not run_id.isascii():
            raise ValueError(f"not a run id: {run_id!r}")
        return self.runs_dir / run_id

    @property
    def uploads_dir(self) -> Path:
        """Where runs started by the server keep their inputs and logs: ``<root>/uploads``."""
        return self.root / UPLOADS_DIR

    def uploads_for(self, run_id: str) -> Path:
        """A server-started run's uploaded inputs and worker log: ``<root>/uploads/<id>``."""
        return self.uploads_dir / self.folder_for(run_id).name

    def reopen_arguments(self) -> dict[str, str]:
        """What another process needs to open this same workspace (``Workspace.open(**...)``):
        the root and the registry URL *unmasked*. For handing to a worker over a pipe; never
        print it or put it on a command line."""
        return {"path": str(self.root), "database_url": self._database_url}

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` (symlinks resolved) lies inside this workspace and is neither its
        root nor its ``runs/`` folder."""
        resolved = Path(path).resolve()
        root = self.root.resolve()
        return resolved.is_relative_to(root) and resolved not in (root, self.runs_dir.resolve())

    def delete_run(self, ref: str, *, force: bool = False) -> DeletedRun:
        """Delete a run's registry row and, when it lies inside the workspace, its folder;
        the server's uploads for it (``uploads_for``) go too.

        A run whose process is still running is refused unless ``force``; a stale row (its
        process is gone) is deleted like any other. The folder is first renamed aside, so a
        failed row delete puts it back and a half-deleted folder never keeps the run's name.
        """
        record = self.registry.resolve(ref)
        if record.state == "running" and not force:
            where = f"pid {record.pid} on {record.host}" if record.pid else "another process"
            raise RunStateError(
                f"Run {record.id} is still running ({where}); wait for it to finish, or force "
                "the delete if that process is gone."
            )
        deleted = self._delete_row_and_folder(record)
        uploads = self.uploads_for(record.id)
        if uploads.is_dir() and not uploads.is_symlink():
            shutil.rmtree(uploads, ignore_errors=True)
        return deleted

    def _delete_row_and_folder(self, record: RunRecord) -> DeletedRun:
        folder = Path(record.folder)
        if not self.contains(folder):
            self.registry.delete(record.id)
            return DeletedRun(
                record,
                folder,
                folder_removed=False,
                note=f"left {folder} in place: it lies outside the workspace {self.root}",
            )
        if folder.is_symlink():
            self.registry.delete(record.id)
            return DeletedRun(
                record, folder, folder_removed=False, note=f"left {folder}: a symbolic link"
            )
        if not folder.is_dir():
            self.registry.delete(record.id)
            return DeletedRun(record, folder, folder_removed=False, note=f"{folder} was gone")

        aside = folder.with_name(f".deleting-{folder.name}-{secrets.token_hex(4)}")
        os.replace(folder, aside)
        try:
            self.registry.delete(record.id)
        except BaseException:
            os.replace(aside, folder)
            raise
        try:
            shutil.rmtree(aside)
        except OSError as exc:
            return DeletedRun(
                record,
                folder,
                folder_removed=False,
                note=f"the row is deleted but {aside} could not be removed: {exc.strerror}",
            )
        return DeletedRun(record, folder, folder_removed=True)

    def close(self) -> None:
        """Release the registry's connections."""
        if self._registry is not None:
            self._registry.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, database_url={self.database_url!r})"
