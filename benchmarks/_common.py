"""Shared by the benchmark scripts (run as files, so this directory is on ``sys.path``)."""

from __future__ import annotations

import resource


def peak_mb() -> float:
    """Peak RSS of this process (VmHWM). ``ru_maxrss`` would be wrong: Linux carries the
    parent's peak across exec, so every child would report at least the parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
