"""Request size limits, enforced while the body arrives.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which would buffer bodies):
a declared ``Content-Length`` over the limit is refused at once with 413; a body without one
(chunked) is counted as it is read and refused as soon as it passes the limit, so neither a
large JSON body nor an upload is ever held whole. Uploads (multipart ``POST /v1/runs``) get
the upload limit; every other body the (much smaller) body limit.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmint.api.errors import Refusal

__all__ = ["BodyLimit", "too_large"]

UPLOAD_PATHS = ("/v1/runs",)


def too_large(limit: int, what: str) -> Refusal:
    return Refusal(
        413,
        "request.too_large",
        f"The {what} is larger than this server accepts ({limit:,} bytes); send less per "
        "request or ask the operator to raise the limit.",
        details={"limit_bytes": limit},
    )


class BodyLimit:
    """Refuse bodies over ``body_limit`` (uploads: ``upload_limit``) bytes with 413."""

    def __init__(self, app: ASGIApp, *, body_limit: int, upload_limit: int) -> None:
        self.app = app
        self.body_limit = body_limit
        self.upload_limit = upload_limit

    def _limit(self, scope: Scope) -> tuple[int, str]:
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").lower()
        if scope["path"] in UPLOAD_PATHS and ctype.startswith(b"multipart/"):
            return self.upload_limit, "upload"
        return self.body_limit, "request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self._limit(scope)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > limit:
                await _refuse(too_large(limit, what), scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # an HTTPException: FastAPI lets it through its body parsing untouched
                    raise too_large(limit, what)
            return message

        await self.app(scope, counted, send)


async def _refuse(exc: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    from fastapi.responses import JSONResponse

    body: dict[str, Any] = {
        "error": {"code": exc.code, "message": exc.detail, "details": exc.details}
    }
    await JSONResponse(body, status_code=exc.status_code, headers={"Connection": "close"})(
        scope, receive, send
    )
