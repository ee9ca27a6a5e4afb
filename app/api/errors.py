"""Error answers: every error body is ``{"detail": ..., "code": ...}``.

``detail`` is for people (a sentence, or FastAPI's list of field errors for 422);
``code`` is for programs and stable across releases: branch on it, never on ``detail``.

=======================  ======  ==========================================================
code                     status  meaning
=======================  ======  ==========================================================
``bad_request``          400     malformed request (unreadable file, missing field)
``unauthorized``         401     no key, or a wrong, revoked or expired key / session
``forbidden``            403     refused (e.g. a bad Twilio signature)
``scope_missing``        403     the key is read-only and the request changes something
``csrf_invalid``         403     an operator-page request without the session's CSRF token
``not_found``            404     no such resource (or route)
``call_not_live``        404     the call is not in progress on any instance
``method_not_allowed``   405     the route has no such method
``conflict``             409     not allowed in the resource's current state
``not_analysable``       409     a call whose flow has no analysis section, or where nothing
                                 was said
``body_too_large``       413     request body over the limit
``validation_error``     422     invalid parameters or body (``detail`` lists the fields)
``invalid_cursor``       422     a ``cursor`` that no page of this listing gave out
``flows_invalid``        422     a flow reload refused (``problems`` says why; nothing changed)
``rate_limited``         429     too many failed authentication attempts (``Retry-After``)
``internal_error``       500     a bug (logged); never expected
``unavailable``          503     storage, the dialer or flow parsing unavailable right now
``timeout``              504     the instance holding a call did not answer in time
=======================  ======  ==========================================================

Raise ``ApiError(status, detail, code=...)`` for a specific code; a plain
``HTTPException`` gets the default code of its status. ``install(app)`` registers the
handlers that shape every error (HTTP errors, validation errors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The default ``code`` of an error status.
DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}

_CODE_DOC = "Stable machine-readable error code (see the API docs): e.g. not_found, conflict"


def code_for(status: int) -> str:
    """The default code of ``status`` (``error`` for a status without one)."""
    return DEFAULT_CODES.get(status, "error")


class ApiError(HTTPException):
    """An HTTP error with a specific ``code`` (see the module docstring)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers=headers)
        self.code = code or code_for(status_code)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="What went wrong, for people")
    code: str = Field(description=_CODE_DOC, examples=["not_found"])


class ValidationErrorBody(BaseModel):
    """422: ``detail`` is a message, or FastAPI's list of field errors
    (``[{"type", "loc", "msg", "input", ...}]``); ``code`` is ``validation_error`` or
    a more specific one (``invalid_cursor``)."""

    detail: str | list[dict[str, Any]]
    code: str = Field(description=_CODE_DOC, examples=["validation_error"])


def error_json(status: int, detail: Any, code: str | None = None) -> dict[str, Any]:
    """The error body as a dict."""
    return {"detail": detail, "code": code or code_for(status)}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = getattr(exc, "code", None) or code_for(exc.status_code)
    headers = getattr(exc, "headers", None)
    if exc.status_code in (204, 304):  # no body allowed
        return JSONResponse(None, status_code=exc.status_code, headers=headers)
    return JSONResponse(error_json(exc.status_code, exc.detail, code), exc.status_code, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        jsonable_encoder(error_json(422, exc.errors(), "validation_error")), status_code=422
    )


def install(app: FastAPI) -> None:
    """Register the handlers that give every error answer its ``code``."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
