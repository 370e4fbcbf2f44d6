"""Domain errors. Every error a user can cause is a ``SegmintError`` with a one-paragraph message.

The CLI, API and dashboard translate these at the edge; anything else is a bug.
"""

from __future__ import annotations


class SegmintError(Exception):
    """Base class for errors caused by input, configuration or artifacts."""


class InputError(SegmintError):
    """Bad input data: names the file, column, row and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        column: str | None = None,
        row: int | None = None,
        value: object = None,
        expected: str | None = None,
    ) -> None:
        self.path, self.column, self.row, self.value, self.expected = (
            path,
            column,
            row,
            value,
            expected,
        )
        parts = []
        if path:
            parts.append(f"{path}:")
        parts.append(message)
        if column is not None:
            parts.append(f"Column: {column!r}.")
        if row is not None:
            parts.append(f"Row: {row} (data row number, header excluded).")
        if value is not None:
            parts.append(f"Value: {value!r}.")
        if expected:
            parts.append(f"Expected: {expected}.")
        super().__init__(" ".join(parts))


class ConfigError(SegmintError):
    """Invalid settings; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        joined = "; ".join(self.problems)
        super().__init__(f"Invalid configuration ({len(self.problems)} problem(s)): {joined}")


class ArtifactError(SegmintError):
    """A saved run or model cannot be used (missing, corrupt, or from another version)."""


class RunNotFoundError(SegmintError):
    """No registered run matches a reference (an id, id prefix, tag, name or ``latest``)."""

    code = "run.not_found"

    def __init__(self, message: str, *, ref: str) -> None:
        self.ref = ref
        super().__init__(message)


class AmbiguousRunError(SegmintError):
    """An id prefix matches more than one run; ``candidates`` lists their ids, newest first."""

    code = "run.ambiguous"

    def __init__(self, message: str, *, ref: str, candidates: list[str]) -> None:
        self.ref = ref
        self.candidates = list(candidates)
        super().__init__(message)


class RunStateError(SegmintError):
    """A run cannot change as asked in its current state (finishing a finished run, deleting a
    run whose process is still alive)."""

    code = "run.state"


class RegistryError(SegmintError):
    """The run registry's database cannot be reached or used; the message masks any password."""

    code = "registry.unavailable"
