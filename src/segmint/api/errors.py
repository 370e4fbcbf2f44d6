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
from starlette.routing import Match

from segmint.exceptions import AmbiguousRunError, InputError, SegmintError, http_status

try:  # FastAPI >= 0.16x keeps an included router whole; this sees into it
    from fastapi.routing import iter_route_contexts
except ImportError:  # earlier FastAPI copies the routes of an included router: a flat list

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


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


def allowed_methods(request: Request) -> str | None:
    """The ``Allow`` of a 405: every method a route serves at the request's path, found as
    the OpenAPI document finds routes (``iter_route_contexts``, which sees into included
    routers). Starlette names only the methods of the first route whose path matches, and
    FastAPI makes one route per method, so ``/v1/runs`` said ``Allow: GET`` without POST.
    None when no route matches (then Starlette's own header stands)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods)) or None


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
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "request.bad")
        details = getattr(exc, "details", None) or {}
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = exc.headers
        allow = allowed_methods(request) if exc.status_code == 405 else None
        if allow:
            headers = {**(headers or {}), "Allow": allow}
        return _body(exc.status_code, code, message, details, headers)

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
