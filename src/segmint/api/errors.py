"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Domain errors (``segmint.exceptions``) keep their stable code and take their status from
``exceptions.http_status``; request problems FastAPI finds (a wrong type, a missing field)
are 422 ``request.invalid`` with each problem's location; HTTP-level refusals (no key, too
large, no such route) carry a code of their own. An unexpected exception is logged with its
traceback and answered 500 ``server.error`` without internals: never for bad input, which
always has a domain error.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from segmint.exceptions import AmbiguousRunError, InputError, SegmintError, http_status

__all__ = ["ErrorBody", "ErrorResponse", "Refusal", "error_responses", "install_handlers"]

log = logging.getLogger("segmint.api")

# codes of errors that are the request's, not the domain's
_HTTP_CODES = {
    400: "request.bad",
    401: "auth.required",
    403: "auth.forbidden",
    404: "route.not_found",
    405: "method.not_allowed",
    406: "request.not_acceptable",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    422: "request.invalid",
    429: "server.busy",
}


class ErrorBody(BaseModel):
    code: str = Field(description="Stable error code, e.g. run.not_found, input.invalid.")
    message: str = Field(description="What went wrong and what to do, for people.")
    details: dict[str, Any] = Field(default_factory=dict, description="Machine-readable context.")


class ErrorResponse(BaseModel):
    """Every error the API returns."""

    error: ErrorBody


class Refusal(StarletteHTTPException):
    """An HTTP-level refusal with its own code (no key, too large): not a domain error, so
    it lives here and not in ``segmint.exceptions``. Raise it from routes and dependencies."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.details = details or {}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given statuses, all with the error shape."""
    return {s: {"model": ErrorResponse, "description": _describe(s)} for s in statuses}


def _describe(status: int) -> str:
    return {
        400: "Bad input",
        401: "Missing or wrong API key",
        403: "Forbidden",
        404: "Not found",
        409: "Conflicts with the run's state",
        413: "Request too large",
        422: "Invalid request or settings",
        429: "Too many runs executing",
        503: "Registry unavailable",
    }.get(status, "Error")


def _body(
    status: int, code: str, message: str, details: dict[str, Any], headers: dict | None = None
) -> JSONResponse:
    content = {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}
    return JSONResponse(content, status_code=status, headers=headers)


def domain_details(exc: SegmintError) -> dict[str, Any]:
    """What a caller's program may use from a domain error."""
    details: dict[str, Any] = {}
    if exc.settings:
        details["settings"] = list(exc.settings)
    if isinstance(exc, InputError):
        for name in ("path", "column", "row", "expected"):
            value = getattr(exc, name, None)
            if value is not None:
                details[name] = value
        if exc.value is not None:
            details["value"] = str(exc.value)
    problems = getattr(exc, "problems", None)
    if problems:
        details["problems"] = list(problems)
    ref = getattr(exc, "ref", None)
    if ref is not None:
        details["ref"] = ref
    if isinstance(exc, AmbiguousRunError):
        details["candidates"] = exc.candidates
    return details


def install_handlers(app: FastAPI) -> None:
    """Answer every error in the one shape."""

    @app.exception_handler(SegmintError)
    async def domain(_: Request, exc: SegmintError) -> JSONResponse:
        status = http_status(exc)
        if status >= 500:
            log.error("%s: %s", exc.code, exc)
        return _body(status, exc.code, str(exc), domain_details(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e["type"]}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) or "request"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return _body(
            422, "request.invalid", f"{where}: {first['msg']}{more}", {"problems": problems}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "request.bad")
        details = getattr(exc, "details", None) or {}
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _body(exc.status_code, code, message, details, exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _body(
            500,
            "server.error",
            "The server failed on this request; the error is in its log. This is a bug in "
            "segmint: please report it.",
            {},
        )
