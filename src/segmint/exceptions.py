"""Domain errors. Every error a user can cause is a ``SegmintError`` with a one-paragraph message.

The CLI, API and dashboard translate these at the edge; anything else is a bug. Every error
class of segmint lives here and imports nothing from segmint.

Codes
-----
Every error carries a stable, dotted, lowercase ``code`` (``area.what``) that callers match on
instead of the message, which may be reworded at any time. A class's ``code`` is its default;
where one class covers situations a caller must tell apart, the raise site passes a more
specific code, ``InputError("...", code="input.missing_column")``. The specific codes a class
may carry are listed in its ``specific_codes`` (an unlisted code is refused, so a typo cannot
slip through), and each code belongs to exactly one class: ``isinstance`` and ``code`` never
disagree. A subclass is used instead when the error carries its own data (``RunNotFoundError``
has ``ref``, ``AmbiguousRunError`` its ``candidates``) or when callers catch it on its own
(``AmbiguousDatesError``, which a customer-table reader catches to try the next column).

The edges read two tables here, so every edge says the same thing about an error:

- ``EXIT_CODES`` / ``exit_code(exc)``: the CLI's exit status. Every domain error exits 2
  (1 is a bug, 130 / 143 an interruption, decided by the CLI).
- ``HTTP_STATUS`` / ``http_status(exc)``: the API's status: 400 for bad input data or a bad
  output location, 422 for settings that fail validation, data that cannot support the
  analysis asked for (a CLV fit, a churn split) or a stored run that cannot be used (corrupt,
  from another version), 403 for a model segmint does not trust, 404 for a run or artifact
  that is not there, 409 for a request that conflicts with a state (an ambiguous run
  reference, a run already finished, a model that does not match its run, a folder another
  process is writing), 503 when the registry cannot be reached, 507 when the output cannot be
  written (disk full, no permission). 500 is only for the server's own signing key and for
  bugs, never for bad input. A code missing from a table (a subclass defined elsewhere) maps
  as its nearest parent class does.

Settings
--------
A message names what to change as a *setting* (``calibration_end``, ``date_format``,
``clustering.k``, ``columns.customer_id``), never as a command-line flag: the library does not
know which edge called it. An error may list those settings in ``settings``; the CLI adds its
own option for each (``--calibration-end``), the API will point at the request field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "EXIT_CODES",
    "HTTP_STATUS",
    "AmbiguousDatesError",
    "AmbiguousRunError",
    "ArtifactError",
    "ConfigError",
    "CustomerNotFoundError",
    "InputError",
    "LeakageError",
    "ModelError",
    "OutputError",
    "RegistryError",
    "RunNotFoundError",
    "RunStateError",
    "SegmentNotFoundError",
    "SegmintError",
    "all_codes",
    "error_classes",
    "exit_code",
    "http_status",
]


class SegmintError(Exception):
    """Base class for errors caused by input, configuration or artifacts.

    ``code`` is the stable code (the class's, or the more specific one given at the raise
    site); ``settings`` names the settings a user can change to fix it (may be empty).
    """

    code: str = "segmint.error"
    specific_codes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, message: str = "", *, code: str | None = None, settings: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        if code is not None:
            allowed = (type(self).code, *type(self).specific_codes)
            if code not in allowed:
                raise ValueError(
                    f"{type(self).__name__} cannot carry code {code!r}; it may carry "
                    f"{', '.join(allowed)}"
                )
            self.code = code
        self.settings: tuple[str, ...] = (
            (settings,) if isinstance(settings, str) else tuple(settings)
        )

    def __reduce__(self) -> tuple[object, ...]:
        # picklable with its code and attributes (a worker process's error reaches the parent
        # as raised), although subclasses take different arguments
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


class InputError(SegmintError):
    """Bad input data: names the file, column, row and what was expected.

    Specific codes: ``input.unreadable`` (missing, empty, binary, truncated or corrupt file, or
    one that is not the format its name says), ``input.missing_column`` (a column the data
    needs is not there or cannot be matched), ``input.unknown_column`` (a mapping or an
    argument names a column the data lacks), ``input.ambiguous_numbers`` (a number column that
    reads two ways), ``input.too_few_customers`` (too few customers for the analysis),
    ``input.insufficient_history`` (too short a time span for the analysis).
    """

    code = "input.invalid"
    specific_codes = (
        "input.unreadable",
        "input.missing_column",
        "input.unknown_column",
        "input.ambiguous_numbers",
        "input.too_few_customers",
        "input.insufficient_history",
    )

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        column: str | None = None,
        row: int | None = None,
        value: object = None,
        expected: str | None = None,
        code: str | None = None,
        settings: Iterable[str] = (),
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
        super().__init__(" ".join(parts), code=code, settings=settings)


class AmbiguousDatesError(InputError):
    """The dates read equally well day-first and month-first: the user must say which
    (the ``date_format`` setting)."""

    code = "input.ambiguous_dates"
    specific_codes = ()


class ConfigError(SegmintError):
    """Invalid settings; lists every problem at once."""

    code = "config.invalid"

    def __init__(
        self, problems: list[str], *, code: str | None = None, settings: Iterable[str] = ()
    ) -> None:
        self.problems = list(problems)
        joined = "; ".join(self.problems)
        super().__init__(
            f"Invalid configuration ({len(self.problems)} problem(s)): {joined}",
            code=code,
            settings=settings,
        )


class OutputError(SegmintError):
    """The output folder or file cannot be used: a file where a folder should be, a folder
    segmint did not write, or one with foreign files in it.

    Specific codes: ``output.busy`` (another process is writing the folder),
    ``output.unwritable`` (no permission, disk full).
    """

    code = "output.invalid"
    specific_codes = ("output.busy", "output.unwritable")


class ArtifactError(SegmintError):
    """A saved run or model cannot be used (missing, corrupt, or from another version).

    Specific codes: ``artifact.missing`` (the run folder, manifest or model file is not
    there), ``model.untrusted`` (a model refused by its signature or by the allow-list of
    types), ``model.mismatch`` (a model that does not match its run's manifest: a folder mixing
    two runs), ``model.signing_key`` (this installation's signing key cannot be used).
    """

    code = "artifact.invalid"
    specific_codes = ("artifact.missing", "model.untrusted", "model.mismatch", "model.signing_key")


class ModelError(SegmintError):
    """The data cannot identify a statistical model (CLV), or its fit did not converge."""

    code = "model.fit_failed"


class LeakageError(SegmintError):
    """A churn training snapshot's label window reaches past the test snapshot."""

    code = "churn.leakage"


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


class SegmentNotFoundError(SegmintError):
    """A run has no segment with the number or name asked for."""

    code = "segment.not_found"


class CustomerNotFoundError(SegmintError):
    """A run did not score a customer with the id asked for."""

    code = "customer.not_found"


class RunStateError(SegmintError):
    """A run cannot change as asked in its current state (finishing a finished run, deleting a
    run whose process is still alive), or is not the kind or state a command needs."""

    code = "run.state"


class RegistryError(SegmintError):
    """The run registry's database cannot be reached or used; the message masks any password."""

    code = "registry.unavailable"


# Every domain error exits 2 (as before codes existed); 1 means a bug, 130 / 143 a signal.
EXIT_CODES: dict[str, int] = {
    "segmint.error": 2,
    "input.invalid": 2,
    "input.unreadable": 2,
    "input.missing_column": 2,
    "input.unknown_column": 2,
    "input.ambiguous_dates": 2,
    "input.ambiguous_numbers": 2,
    "input.too_few_customers": 2,
    "input.insufficient_history": 2,
    "config.invalid": 2,
    "output.invalid": 2,
    "output.busy": 2,
    "output.unwritable": 2,
    "artifact.invalid": 2,
    "artifact.missing": 2,
    "model.untrusted": 2,
    "model.mismatch": 2,
    "model.signing_key": 2,
    "model.fit_failed": 2,
    "churn.leakage": 2,
    "run.not_found": 2,
    "run.ambiguous": 2,
    "segment.not_found": 2,
    "customer.not_found": 2,
    "run.state": 2,
    "registry.unavailable": 2,
}

HTTP_STATUS: dict[str, int] = {
    "segmint.error": 400,  # a bare SegmintError: caused by the request, never a crash
    "input.invalid": 400,
    "input.unreadable": 400,
    "input.missing_column": 400,
    "input.unknown_column": 400,
    "input.ambiguous_dates": 400,
    "input.ambiguous_numbers": 400,
    "input.too_few_customers": 400,
    "input.insufficient_history": 400,
    "config.invalid": 422,  # well-formed, but the settings fail validation
    "output.invalid": 400,
    "output.busy": 409,
    "output.unwritable": 507,
    "artifact.invalid": 422,  # the stored run exists but cannot be used (corrupt, old)
    "artifact.missing": 404,
    "model.untrusted": 403,
    "model.mismatch": 409,
    "model.signing_key": 500,  # the server's own key is unusable: not the caller's doing
    "model.fit_failed": 422,
    "churn.leakage": 422,
    "run.not_found": 404,
    "run.ambiguous": 409,
    "segment.not_found": 404,
    "customer.not_found": 404,
    "run.state": 409,
    "registry.unavailable": 503,
}

_DEFAULT_EXIT = 2
_DEFAULT_STATUS = 400


def _lookup(exc: SegmintError, table: dict[str, int], default: int) -> int:
    """The table's value for ``exc.code``, else for the codes of its classes (a subclass
    defined outside segmint without an entry), else ``default``."""
    for code in (exc.code, *(getattr(c, "code", None) for c in type(exc).__mro__)):
        if isinstance(code, str) and code in table:
            return table[code]
    return default


def exit_code(exc: SegmintError) -> int:
    """The CLI's exit status for a domain error (always 2 today)."""
    return _lookup(exc, EXIT_CODES, _DEFAULT_EXIT)


def http_status(exc: SegmintError) -> int:
    """The HTTP status the API answers a domain error with."""
    return _lookup(exc, HTTP_STATUS, _DEFAULT_STATUS)


def error_classes() -> list[type[SegmintError]]:
    """``SegmintError`` and every subclass of it (defined here or elsewhere), base first."""
    found: list[type[SegmintError]] = [SegmintError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


def all_codes() -> dict[str, type[SegmintError]]:
    """Every code an error can carry, with the class that declares it (its own ``code`` or
    one of its ``specific_codes``); a code declared twice maps to the first class."""
    owners: dict[str, type[SegmintError]] = {}
    for cls in error_classes():
        own = [cls.__dict__["code"]] if "code" in cls.__dict__ else []
        for code in (*own, *cls.__dict__.get("specific_codes", ())):
            owners.setdefault(code, cls)
    return owners


def _rebuild(cls: type[SegmintError], message: str, state: dict[str, object]) -> SegmintError:
    """Unpickle an error without calling its ``__init__`` (whose arguments differ per class),
    keeping its code, settings and other attributes."""
    exc = cls.__new__(cls)
    exc.args = (message,)
    exc.__dict__.update(state)
    return exc
