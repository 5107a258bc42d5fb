"""The API's one error shape, `{"error": {"code", "message", "field"?}}`, for every 4xx and 5xx.

Validation errors name the field; an unexpected error answers 500 with one line (the details go
to the log), never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if field:
        err["field"] = field
    return {"error": err}


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large",
                 415: "unsupported_media_type", 422: "invalid_request"}


def _validation(exc: RequestValidationError) -> tuple[int, str, str, str | None]:
    errors = exc.errors()
    if not errors:
        return 422, "invalid_request", "The request is not valid.", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]  # where the value was, not its name (which may be "query" or "path")
    field = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return 400, "bad_json", "The request body is not valid JSON.", None
    if kind == "missing":
        return 422, "missing_field", f"{field or 'A value'} is required.", field
    msg = str(first.get("msg", "is not valid"))
    msg = msg.removeprefix("Value error, ")
    return 422, "invalid_value", f"{field}: {msg}" if field else msg, field


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message, field = _validation(exc)
        return error_response(status, code, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "No such route. See /docs for the routes."
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        from app.service import errors as known

        one_line = known.one_line
        if isinstance(exc, known.BUSY):
            return error_response(409, "busy", one_line(exc))
        if isinstance(exc, known.USAGE):
            return error_response(400, "bad_request", one_line(exc))
        if isinstance(exc, known.FOR_PEOPLE):
            return error_response(409, "failed", one_line(exc))
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        if known.is_disk_full(exc):
            return error_response(507, "disk_full", known.disk_full_message("the index"))
        return error_response(500, "internal", f"{one_line(exc)} (details in the app's log)")
