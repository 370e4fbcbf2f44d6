"""Where a run started over HTTP reads its data: files uploaded with the request, or files in
the server's data directory. The trust boundary between a caller and the server's disk.

- **Uploads** (``receive_uploads``) are parsed as they arrive (python-multipart's streaming
  parser, not Starlette's form parser, which spools every file to a temporary file first):
  each ``files`` part is written straight into the run's upload folder under a name of
  ``pipeline.uploads.safe_file_name``'s making (never the caller's path), and the bytes are
  counted against the upload limit as they come: over it, 413 at once, and the partial files
  go with the reservation. Other fields are small text held in memory, each bounded.
- **Paths** (``resolve_data_paths``) are read only inside ``ServerSettings.data_dir``, after
  resolving ``..`` and every symbolic link; a path that resolves outside is refused with 403
  without saying where it led, a missing file with 400 naming the path as given. With no data
  directory configured, path mode is off (403).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from segmint.api.errors import Refusal
from segmint.api.limits import too_large
from segmint.exceptions import InputError
from segmint.pipeline.uploads import safe_file_name

__all__ = ["FIELDS", "MAX_FILES", "Uploaded", "receive_uploads", "resolve_data_paths"]

FILES = "files"
FIELDS = ("settings", "name", "tags")  # the text fields next to the files
MAX_FILES = 20
MAX_FIELDS = 100
MAX_FIELD_BYTES = 1024 * 1024  # a settings document is a few kilobytes


@dataclass
class Uploaded:
    """What a multipart request carried: the files written (in order) and the text fields."""

    files: list[Path] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        """The field's value; None when absent; 422 when given twice."""
        values = self.fields.get(name, [])
        if len(values) > 1:
            raise _bad_field(name, f"the form field '{name}' may be given once")
        return values[0] if values else None


def _bad_field(name: str, message: str) -> Refusal:
    return Refusal(422, "request.invalid", message, details={"field": name})


def _bad_form(message: str) -> Refusal:
    return Refusal(400, "request.bad", f"The multipart body cannot be read: {message}.")


class _Receiver:
    """python-multipart callbacks writing ``files`` parts into ``folder``."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.result = Uploaded()
        self.received = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._text = bytearray()
        self._file: BinaryIO | None = None
        self._fields = 0
        self.pending: list[Callable[[], object]] = []  # file work for a worker thread

    def on_part_begin(self) -> None:
        self._disposition, self._field, self._file = b"", None, None
        self._text = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _bad_form("a part has no Content-Disposition name")
        name = options[b"name"].decode("utf-8", "replace")
        if name == FILES:
            if b"filename" not in options:
                raise _bad_field(FILES, "each 'files' part must be a file (with a filename)")
            if len(self.result.files) >= MAX_FILES:
                raise _bad_field(FILES, f"at most {MAX_FILES} files per run")
            filename = options[b"filename"].decode("utf-8", "replace")
            path = self.folder / safe_file_name(filename, len(self.result.files) + 1)
            self.result.files.append(path)
            self._file = open(path, "xb")  # noqa: SIM115 - closed in on_part_end / close()
            self._field = FILES
            return
        if name not in FIELDS:
            raise _bad_field(
                name,
                f"unknown form field '{name}': send the data as 'files' and optionally "
                f"{', '.join(repr(f) for f in FIELDS)}",
            )
        self._fields += 1
        if self._fields > MAX_FIELDS:
            raise _bad_field(name, f"at most {MAX_FIELDS} form fields")
        self._field = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None:
            self.received += len(chunk)
            if self.received > self.limit:
                raise too_large(self.limit, "upload")
            file = self._file
            self.pending.append(lambda: file.write(chunk))
            return
        if len(self._text) + len(chunk) > MAX_FIELD_BYTES:
            raise _bad_field(
                self._field or "?", f"the field '{self._field}' is over {MAX_FIELD_BYTES} bytes"
            )
        self._text.extend(chunk)

    def on_part_end(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            self.pending.append(file.close)
        elif self._field is not None:
            try:
                text = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad_field(self._field, f"the field '{self._field}' is not UTF-8") from None
            self.result.fields.setdefault(self._field, []).append(text)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def flush(self) -> None:
        work, self.pending = self.pending, []
        for step in work:
            step()


async def receive_uploads(request: Request, folder: Path, *, limit: int) -> Uploaded:
    """Stream a ``multipart/form-data`` body's files into ``folder`` (module docstring);
    returns them with the text fields. At least one file is required."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise _bad_form("the Content-Type has no boundary")
    receiver = _Receiver(folder, limit)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except (Refusal, InputError):
                raise
            except Exception as exc:  # python-multipart's own parse errors
                raise _bad_form(str(exc) or type(exc).__name__) from None
            if receiver.pending:
                await run_in_threadpool(receiver.flush)
        parser.finalize()
    finally:
        receiver.flush()
        receiver.close()
    if not receiver.result.files:
        raise _bad_field(FILES, "no file: send the data as one or more 'files' parts")
    return receiver.result


def resolve_data_paths(data_dir: Path | None, paths: list[str]) -> list[Path]:
    """The files ``paths`` name inside ``data_dir`` (relative to it, or absolute), resolved
    (``..`` and symbolic links followed). 403 when path mode is off or a path leads outside;
    400 ``input.unreadable`` when a file is not there."""
    if data_dir is None:
        raise Refusal(
            403,
            "paths.disabled",
            "This server reads no paths: upload the files as multipart/form-data, or ask the "
            "operator to set SEGMINT_DATA_DIR to the folder runs may read.",
        )
    root = Path(data_dir).resolve()
    found: list[Path] = []
    for given in paths:
        try:
            if not given or "\x00" in given:
                raise ValueError
            resolved = (root / given).resolve()  # an absolute ``given`` replaces ``root``
        except (ValueError, OSError, RuntimeError):  # NUL, a symlink loop
            raise InputError("not a usable path.", path=given, code="input.unreadable") from None
        if not resolved.is_relative_to(root):
            raise Refusal(
                403,
                "path.forbidden",
                f"The path {given!r} leads outside the data directory this server reads "
                "from; give a path inside it (relative to it, or absolute).",
                details={"path": given},
            )
        if not resolved.is_file():
            raise InputError(
                "no such file in the data directory.",
                path=given,
                expected="a file inside the server's data directory",
                code="input.unreadable",
            )
        if not os.access(resolved, os.R_OK):
            raise InputError(
                "the server cannot read this file.", path=given, code="input.unreadable"
            )
        found.append(resolved)
    return found
