"""The ``segmint`` command: a thin edge over the pipeline and the workspace.

Commands live in ``segment`` (run, compare, predict, trust, generate), ``analyses`` (clv,
track, analyze effect), ``runs`` (the run registry) and ``serve`` (the REST API); ``app`` holds
what they share.
"""

from __future__ import annotations

import signal
import sys

from segmint.cli import analyses, segment, serve  # noqa: F401  (they register their commands)
from segmint.cli.app import Terminated, app, on_signal
from segmint.cli.runs import runs_app

app.add_typer(runs_app, name="runs")

__all__ = ["app", "main"]


def main() -> None:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app()
    except Terminated:  # outside a command (argument parsing): exit as SIGTERM asked
        sys.exit(143)
