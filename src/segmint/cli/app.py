"""The ``segmint`` Typer app and what every command shares: options, consoles, the progress
bar, and ``guard``, which turns a domain error into one red paragraph, ``error [<code>]:
<message>``, and the exit status ``segmint.exceptions.exit_code`` gives it (2), anything
unexpected into exit 1, and SIGINT / SIGTERM into exits 130 / 143.

Library messages name settings (``calibration_end``, ``columns.customer_id``), never flags;
an error lists them in ``settings`` and ``guard`` adds the command-line option for each that
the running command has, from one table, ``SETTING_FLAGS``."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from segmint.exceptions import ConfigError, SegmintError, exit_code

# Options several commands share, declared once.
ConfigOption = Annotated[Path | None, typer.Option(help="TOML or YAML settings file.")]
FeaturesOption = Annotated[str | None, typer.Option(help="Comma-separated features to use.")]
KindOption = Annotated[str | None, typer.Option(help="auto | transactions | customers")]
MapOption = Annotated[list[str] | None, typer.Option("--map", help="canonical=column, repeatable.")]
ObservationEndOption = Annotated[str | None, typer.Option(help="ISO date ending the window.")]
SeedOption = Annotated[int | None, typer.Option(help="Random seed.")]
DateFormatOption = Annotated[
    str | None,
    typer.Option(
        help="strptime format of the dates, e.g. '%m/%d/%Y' (default: detected; asked for "
        "when day-first and month-first both fit)."
    ),
]
DecimalOption = Annotated[
    str | None,
    typer.Option(help="Decimal separator of the numbers, '.' or ',' (default: per column)."),
]

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        help="Workspace folder holding run folders and the registry "
        "(default: $SEGMINT_WORKSPACE, else ./segmint-workspace).",
    ),
]
NameOption = Annotated[str | None, typer.Option("--name", help="A name for the run.")]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", help="Tag the run (repeatable); a tag names one run at a time."),
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Customer segmentation: order lines or customer tables in, actionable segments out.",
)
err = Console(stderr=True)
out = Console()
_state = {"verbose": False}


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Debug logs, tracebacks.")
    ] = False,
) -> None:
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def parse_map(items: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(
                [f"--map expects canonical=column (e.g. customer_id=Client), got {item!r}"]
            )
        k, v = item.split("=", 1)
        result[k.strip()] = v.strip()
    return result


def split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


class ProgressBar:
    """Rich progress: one bar over the pipeline's stages, the current stage as text."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.stages = stages
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        self.task = self.progress.add_task("starting", total=len(stages))

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, detail: str) -> None:
        if detail == "done":
            self.progress.advance(self.task)
        else:
            label = stage if detail == "start" else f"{stage}: {detail}"
            self.progress.update(self.task, description=label)
        if not err.is_terminal and detail == "start":
            err.print(f"[dim]… {stage}[/dim]")


# A setting a library error names (``SegmintError.settings``) → the option that sets it on the
# command line. ``columns.<name>`` is ``--map <name>=COLUMN``; a setting missing here (or an
# option the running command does not have) gets no hint.
SETTING_FLAGS: dict[str, str] = {
    "out": "--out",
    "config": "--config",
    "workspace": "--workspace",
    "host": "--host",
    "port": "--port",
    "data_dir": "--data-dir",
    "name": "--name",
    "tag": "--tag",
    "kind": "--kind",
    "columns": "--map",
    "features": "--features",
    "observation_end": "--observation-end",
    "seed": "--seed",
    "delimiter": "--delimiter",
    "date_format": "--date-format",
    "decimal": "--decimal",
    "memory_limit": "--memory-limit",
    "report_charts": "--charts",
    "derive": "--derive",
    "clustering.k": "--k",
    "clustering.k_min": "--k-min",
    "clustering.k_max": "--k-max",
    "clustering.algorithm": "--algorithm",
    "clv.time_unit": "--time-unit",
    "calibration_end": "--calibration-end",
    "holdout_end": "--holdout-end",
    "every": "--every",
    "by": "--by",
    "on": "--on",
    "order": "--order",
    "bins": "--bins",
    "customers": "--customers",
}


def _flag(setting: str) -> tuple[str, str] | None:
    """(option, how to write it) for a setting, e.g. ``("--map", "--map ts=COLUMN")``; a
    setting inside a mapped one (``features.0``) takes that one's option."""
    if setting == "columns":
        return "--map", "--map CANONICAL=COLUMN"
    if setting.startswith("columns.") and setting.count(".") == 1:
        return "--map", f"--map {setting.removeprefix('columns.')}=COLUMN"
    parts = setting.split(".")
    while parts:
        flag = SETTING_FLAGS.get(".".join(parts))
        if flag:
            return flag, flag
        parts.pop()
    return None


def _command_options() -> set[str] | None:
    """The options of the command being run; ``None`` outside a command (or when typer does
    not say), and then every hint is shown."""
    try:  # typer vendors click from 0.2x on; before, it is click's own context
        from typer.main import get_current_context
    except ImportError:
        try:
            from click import get_current_context
        except ImportError:
            return None
    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    return {opt for param in ctx.command.params for opt in (*param.opts, *param.secondary_opts)}


def flag_hint(exc: SegmintError) -> str:
    """`` (command-line option --calibration-end)`` for the settings an error names that the
    running command has an option for; empty when none."""
    have = _command_options()
    shown: list[str] = []
    for setting in exc.settings:
        found = _flag(setting)
        if found and (have is None or found[0] in have) and found[1] not in shown:
            shown.append(found[1])
    if not shown:
        return ""
    return f" (command-line option{'s' if len(shown) > 1 else ''} {', '.join(shown)})"


def report_error(exc: SegmintError) -> None:
    """One red paragraph on stderr: ``error [<code>]: <message> (command-line option …)``."""
    if _state["verbose"]:
        err.print_exception()
    text = escape(f"error [{exc.code}]:")
    err.print(
        f"[bold red]{text}[/] {escape(str(exc) + flag_hint(exc))}",
        highlight=False,
        soft_wrap=True,
    )


@contextmanager
def guarded() -> Iterator[None]:
    """``guard`` as a ``with`` block, for commands that hold a resource open around their
    work (``segmint runs``)."""
    try:
        yield
    except SegmintError as exc:
        report_error(exc)
        raise typer.Exit(exit_code(exc)) from None
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except Terminated:
        err.print("[red]terminated[/]")
        raise typer.Exit(143) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if _signalled:  # a query engine turns the signal into its own "interrupted" error
            interrupted = _signalled[-1] == signal.SIGINT
            err.print("[red]interrupted[/]" if interrupted else "[red]terminated[/]")
            raise typer.Exit(130 if interrupted else 143) from None
        if _state["verbose"]:
            err.print_exception()
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}. "
            "This is a bug in segmint; run again with -v for the traceback and report it.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def guard(fn: Callable[[], object]) -> None:
    """Run a command's body; errors become a message and an exit status (module docstring)."""
    with guarded():
        fn()


class Terminated(BaseException):
    """SIGTERM as an exception: ``finally`` blocks run, so the partial output folder, the lock
    and the query engine's temporary store are removed as on Ctrl-C."""

    reason = "terminated (SIGTERM)"  # what the registry records for the run


_signalled: list[int] = []


def on_signal(signum: int, frame: Any) -> None:
    """SIGINT → KeyboardInterrupt, SIGTERM → ``Terminated``; remembered, because DuckDB
    turns an exception raised during a query into its own 'Query interrupted' error."""
    _signalled.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated


def provenance(meta: dict[str, Any]) -> str:
    """Which data the model came from: path, short hash, size, and when it was trained."""
    inputs = meta.get("inputs")
    if not inputs:
        return "model: trained on data not recorded (a run from an older segmint)"
    parts = [
        f"{escape(str(i.get('path')))} (sha256 {str(i.get('sha256'))[:12]}, "
        f"{(i.get('bytes') or 0) / 1e6:,.1f} MB)"
        for i in inputs
    ]
    when = f" {meta['created']}" if meta.get("created") else ""
    return f"model: trained{when} on {' + '.join(parts)}"


def open_workspace(path: Path | None) -> Any:
    """The workspace at ``path`` (or the environment's / the default one)."""
    from segmint.store.workspace import Workspace

    return Workspace.open(path)
