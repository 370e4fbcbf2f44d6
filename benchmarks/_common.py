"""Shared by the benchmark scripts (run as files, so this directory is on ``sys.path``)."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """The machine column of a results row."""
    return f"{os.cpu_count()} cores, Python {platform.python_version()}"


def record(script: str, row: str) -> None:
    """Insert a table row above ``script``'s marker in RESULTS.md (append without one)."""
    text = RESULTS.read_text(encoding="utf-8")
    marker = f"<!-- {script} --record inserts rows above this line -->"
    row = row.rstrip("\n") + "\n"
    text = text.replace(marker, row + marker) if marker in text else text + row
    RESULTS.write_text(text, encoding="utf-8")


def peak_mb() -> float:
    """Peak RSS of this process (VmHWM). ``ru_maxrss`` would be wrong: Linux carries the
    parent's peak across exec, so every child would report at least the parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
