"""``segmint runs``: list, show, tag and delete the runs a workspace's registry holds.

A thin edge over ``segmint.store.workspace``: each command opens the workspace (``--workspace``,
else ``SEGMINT_WORKSPACE``, else ``./segmint-workspace``), asks the registry, and prints either
a table for people or, with ``--json``, the records exactly as ``RunRecord.model_dump(mode=
"json")`` gives them, for scripts. Errors are reported as by every other command (``guarded``
from ``segmint.cli.app``): a ``SegmintError`` (unknown run, ambiguous prefix, registry
unreachable) is one red paragraph on stderr, ``error [<code>]: <message>``, and exit code 2.

Mounted by the main CLI as ``app.add_typer(runs_app, name="runs")``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from segmint.cli.app import guarded
from segmint.store.registry import RunRecord
from segmint.store.schema import Kind, Status
from segmint.store.workspace import Workspace

__all__ = ["runs_app"]

runs_app = typer.Typer(
    help="List, show, tag and delete the runs registered in a workspace.",
    no_args_is_help=True,
)


def _out() -> Console:
    """A console made per call, so the terminal width (``COLUMNS``) is read when printing."""
    return Console(highlight=False)


WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        help="Workspace folder (default: $SEGMINT_WORKSPACE, else ./segmint-workspace).",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunArgument = Annotated[
    str,
    typer.Argument(help="A run id, a unique id prefix (4+ characters), a tag, a name or latest."),
]

_STATE_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan", "stale": "yellow"}


@contextmanager
def _workspace(path: Path | None) -> Iterator[Workspace]:
    """Open the workspace for a command's body; errors are reported as ``guard`` reports them
    (a ``SegmintError``: one red paragraph on stderr and its exit code)."""
    with guarded():
        workspace = Workspace.open(path)
        try:
            yield workspace
        finally:
            workspace.close()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _state(record: RunRecord) -> str:
    return f"[{_STATE_STYLE[record.state]}]{record.state}[/]"


def _label(record: RunRecord) -> str:
    parts = [escape(record.name)] if record.name else []
    if record.tags:
        parts.append(escape("[" + ", ".join(record.tags) + "]"))
    return " ".join(parts)


def _folder(ws: Workspace, folder: str) -> str:
    """Relative to the workspace when inside it (``runs/<id>``), else the full path."""
    path = Path(folder)
    return str(path.relative_to(ws.root)) if path.is_relative_to(ws.root) else folder


def _number(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


@runs_app.command("list")
def list_runs(
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    kind: Annotated[Kind | None, typer.Option(help="Only runs of this kind.")] = None,
    status: Annotated[Status | None, typer.Option(help="Only runs with this status.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only the run with this tag.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many runs.")] = 50,
) -> None:
    """List runs, newest first (a running row whose process is gone shows as stale)."""
    with _workspace(workspace) as ws:
        filters: dict[str, Any] = {"kind": kind, "status": status, "tag": tag}
        records = ws.registry.list(**filters, limit=limit)
        if as_json:
            _print_json([record.model_dump(mode="json") for record in records])
            return
        if not records:
            _out().print(f"No runs in {escape(str(ws.root))} match.", soft_wrap=True)
            return
        table = Table(
            title=f"Runs in {escape(str(ws.root))}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            collapse_padding=True,
        )
        table.add_column("id", no_wrap=True, min_width=14)
        table.add_column("kind", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("created", no_wrap=True)
        table.add_column("name / tags", min_width=6)
        table.add_column("customers", justify="right", no_wrap=True)
        table.add_column("k", justify="right", no_wrap=True)
        table.add_column("folder", overflow="fold", min_width=10)
        for record in records:
            table.add_row(
                record.id,
                record.kind,
                _state(record),
                _when(record.created),
                _label(record),
                _number(record.customers),
                _number(record.k),
                escape(_folder(ws, record.folder)),
            )
        _out().print(table)
        total = ws.registry.count(**filters)
        if total > len(records):
            _out().print(f"{len(records)} of {total} runs shown; raise the limit to see more.")


@runs_app.command("show")
def show_run(
    run: RunArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Show one run: its state, inputs, configuration and metrics."""
    with _workspace(workspace) as ws:
        record = ws.registry.resolve(run)
        if as_json:
            _print_json(record.model_dump(mode="json"))
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("id", record.id)
        grid.add_row("kind", record.kind)
        grid.add_row("state", _state(record))
        if record.error:
            grid.add_row("error", f"[red]{escape(record.error)}[/]")
        grid.add_row("created", _when(record.created))
        if record.finished:
            seconds = (record.finished - record.created).total_seconds()
            grid.add_row("finished", f"{_when(record.finished)} ({seconds:,.1f} s)")
        if record.name:
            grid.add_row("name", escape(record.name))
        if record.tags:
            grid.add_row("tags", escape(", ".join(record.tags)))
        grid.add_row("folder", escape(record.folder))
        for item in record.inputs:
            sha = str(item.get("sha256", ""))
            grid.add_row("input", f"{escape(str(item.get('path')))} (sha256 {sha[:12]})")
        if record.customers is not None:
            grid.add_row("customers", _number(record.customers))
        if record.k is not None:
            grid.add_row("k", str(record.k))
        if record.metrics:
            grid.add_row("metrics", escape(json.dumps(record.metrics, sort_keys=True)))
        if record.config_hash:
            grid.add_row("config hash", record.config_hash)
        if record.config:
            grid.add_row("config", escape(json.dumps(record.config, sort_keys=True)))
        if record.pid is not None:
            grid.add_row("process", f"pid {record.pid} on {escape(record.host or '?')}")
        _out().print(grid)


@runs_app.command("delete")
def delete_run(
    run: RunArgument,
    workspace: WorkspaceOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even a run whose process still runs.")
    ] = False,
) -> None:
    """Delete a run's registry row and its folder (only a folder inside the workspace)."""
    with _workspace(workspace) as ws:
        record = ws.registry.resolve(run)
        if not yes:
            typer.confirm(
                f"Delete {record.kind} {record.id} ({record.state}) and its folder "
                f"{record.folder}?",
                abort=True,
            )
        deleted = ws.delete_run(record.id, force=force)
        done = "and its folder" if deleted.folder_removed else "(folder kept)"
        _out().print(f"Deleted run {deleted.record.id} {done}.", soft_wrap=True)
        if deleted.note:
            _out().print(f"[yellow]{escape(deleted.note)}[/]", soft_wrap=True)


@runs_app.command("tag")
def tag_run(
    run: RunArgument,
    name: Annotated[str, typer.Argument(help="The tag (moves here if another run holds it).")],
    workspace: WorkspaceOption = None,
) -> None:
    """Tag a run; the tag then names it anywhere a run is asked for."""
    with _workspace(workspace) as ws:
        previous = ws.registry.list(tag=name, limit=1)
        record = ws.registry.tag(run, name)
        moved = ""
        if previous and previous[0].id != record.id:
            moved = f" (moved from {previous[0].id})"
        _out().print(f"Tagged {record.id} as {escape(name)}{moved}.", soft_wrap=True)
