"""Domain errors and how they reach people.

Services raise :class:`StudyError` subclasses and never touch Flask. This module
maps them, and Werkzeug's HTTP errors, to one JSON envelope for the API::

    {"error": {"status": 409, "code": "conflict", "message": "...", "field": null}}

and to a friendly HTML page for participants and researchers.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError


class StudyError(Exception):
    """Base of the errors services raise; ``status`` is the HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class Malformed(StudyError):
    """The request cannot be read (not JSON, wrong types, missing fields)."""

    status = 400
    code = "malformed"


class Unauthorized(StudyError):
    """No valid session token."""

    status = 401
    code = "unauthorized"


class Forbidden(StudyError):
    status = 403
    code = "forbidden"


class NotFound(StudyError):
    status = 404
    code = "not_found"


class Conflict(StudyError):
    """The request contradicts what is stored (e.g. a different answer)."""

    status = 409
    code = "conflict"


class Gone(StudyError):
    """The session or study can no longer take part (closed, expired)."""

    status = 410
    code = "gone"


class OutOfRange(StudyError):
    """Well-formed but outside what is allowed."""

    status = 422
    code = "out_of_range"


class Unavailable(StudyError):
    """The study is not taking participants now (paused, full)."""

    status = 503
    code = "unavailable"


def wants_json() -> bool:
    """API paths answer in JSON; pages answer in HTML."""
    return request.path.startswith("/api/")


def envelope(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "field": field,
    }
    body.update(extra)
    response = jsonify(error=body)
    response.status_code = status
    return response


def _page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template(
        "error.html", status=status, title=title, message=message
    ), status


def handle_study_error(exc: StudyError) -> Any:
    if wants_json():
        return envelope(exc.status, exc.code, exc.message, exc.field, **exc.extra)
    return _page(exc.status, exc.code.replace("_", " ").capitalize(), exc.message)


def handle_http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name
    if status == 413:
        code = "too_large"
        limit = request.max_content_length
        message = f"The request body is larger than the limit of {limit} bytes."
    if wants_json():
        return envelope(status, code, message)
    return _page(status, exc.name, message)


def _database_unavailable(exc: BaseException | None) -> bool:
    """A lost connection or a busy SQLite file: the request may simply be retried."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def handle_database_error(exc: Exception) -> Any:
    """A lost connection or a busy database answers 503 (retry); others propagate."""
    if not _database_unavailable(exc):
        raise exc
    from flask import current_app

    # Nothing was stored (the transaction did not commit); the browser's
    # queue and the API's idempotent answers make a retry safe.
    current_app.logger.warning("database unavailable on %s: %s", request.path, exc)
    message = "The database is briefly unavailable; please retry."
    if wants_json():
        answer = envelope(503, "database_unavailable", message)
    else:
        answer = make_response(_page(503, "Please retry", message))
    answer.headers["Retry-After"] = "1"
    return answer


def handle_unexpected(exc: Exception) -> Any:
    # Werkzeug passes unhandled exceptions wrapped as InternalServerError.
    original = getattr(exc, "original_exception", exc)
    from flask import current_app

    current_app.logger.exception(
        "Unhandled error on %s", request.path, exc_info=original
    )
    message = "Something went wrong on our side. Your answers so far are stored."
    if wants_json():
        return envelope(500, "internal_error", message)
    return _page(500, "Server error", message)


def init_app(app: Flask) -> None:
    from sqlalchemy.exc import DBAPIError

    app.register_error_handler(StudyError, handle_study_error)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(HTTPException, handle_http_error)
