"""Checks for the fields of JSON request bodies.

Each check names the field, shows what came and says what is allowed. A value
of the wrong JSON type is :class:`~study_server.errors.Malformed` (400); a value
of the right type outside its range is :class:`~study_server.errors.OutOfRange`
(422). ``true`` is never a number, although Python's ``bool`` is an ``int``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..errors import Malformed, OutOfRange

_MISSING = object()
# ISO-8601 with a time and an explicit offset (Z or +hh:mm).
_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$"
)


def shown(value: Any, limit: int = 40) -> str:
    """Return a short ``repr`` of ``value`` for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_type(value: Any) -> str:
    """Return the JSON name of the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def require_object(value: Any, name: str = "body") -> dict[str, Any]:
    """Return ``value`` if it is a JSON object; raise Malformed if not."""
    if not isinstance(value, dict):
        raise Malformed(
            f"{name}: got {json_type(value)}; allowed: a JSON object", field=name
        )
    return value


def reject_unknown(body: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise Malformed naming the first key of ``body`` that is not allowed."""
    allowed = tuple(allowed)
    for key in body:
        if key not in allowed:
            raise Malformed(
                f"{where}: unknown field {shown(key)}; allowed: {', '.join(allowed)}",
                field=str(key)[:64],
            )


def _get(body: dict[str, Any], field: str, required: bool) -> Any:
    value = body.get(field, _MISSING)
    if value is _MISSING or value is None:
        if required:
            state = "missing" if value is _MISSING else "null"
            raise Malformed(f"{field}: required field is {state}", field=field)
        return None
    return value


def number(
    body: dict[str, Any],
    field: str,
    *,
    low: float,
    high: float,
    required: bool = True,
    high_open: bool = False,
) -> float | None:
    """Return the finite number ``body[field]`` within ``[low, high]``."""
    value = _get(body, field, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(
            f"{field}: got {json_type(value)} {shown(value)}; allowed: a number",
            field=field,
        )
    try:
        converted = float(value)
        given = repr(converted)
    except OverflowError:
        # An integer beyond a float's range (above about 1.8e308) is out of
        # every range, like the float literal 1e400 that parses to infinity.
        converted = math.inf if value > 0 else -math.inf
        given = f"an integer of {len(str(abs(value)))} digits"
    too_high = converted >= high if high_open else converted > high
    if not math.isfinite(converted) or converted < low or too_high:
        upper = f"below {high:g}" if high_open else f"at most {high:g}"
        raise OutOfRange(
            f"{field}: got {given}; allowed: a finite number from {low:g}, {upper}",
            field=field,
        )
    return converted


def integer(
    body: dict[str, Any], field: str, *, low: int, high: int, required: bool = True
) -> int | None:
    """Return the integer ``body[field]`` within ``[low, high]``.

    A number with no fractional part (``30.0``, ``1e3``) counts as an integer.
    """
    value = _get(body, field, required)
    if value is None:
        return None
    integral = isinstance(value, int) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )
    if isinstance(value, bool) or not integral:
        raise Malformed(
            f"{field}: got {json_type(value)} {shown(value)}; allowed: an integer",
            field=field,
        )
    value = int(value)
    if not low <= value <= high:
        raise OutOfRange(
            f"{field}: got {shown(value)}; allowed: an integer from {low} to {high}",
            field=field,
        )
    return value


def boolean(body: dict[str, Any], field: str, *, required: bool = True) -> bool | None:
    """Return the boolean ``body[field]``."""
    value = _get(body, field, required)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise Malformed(
            f"{field}: got {json_type(value)} {shown(value)}; allowed: true or false",
            field=field,
        )
    return value


def choice(
    body: dict[str, Any], field: str, allowed: Iterable[str], *, required: bool = True
) -> str | None:
    """Return ``body[field]`` if it is one of the ``allowed`` strings."""
    allowed = tuple(allowed)
    value = _get(body, field, required)
    if value is None:
        return None
    listed = ", ".join(repr(a) for a in allowed)
    if not isinstance(value, str):
        raise Malformed(
            f"{field}: got {json_type(value)} {shown(value)}; allowed: {listed}",
            field=field,
        )
    if value not in allowed:
        raise OutOfRange(f"{field}: got {shown(value)}; allowed: {listed}", field=field)
    return value


def check_string(value: str, field: str) -> None:
    """Refuse text that PostgreSQL cannot store in text or JSON columns.

    JSON and form fields can carry lone surrogates ("\ud800") and NUL.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed(f"{field}: not valid Unicode text", field=field) from None
    if "\x00" in value:
        raise OutOfRange(f"{field}: contains a NUL character", field=field)


def text(
    body: dict[str, Any], field: str, *, max_length: int, required: bool = True
) -> str | None:
    """Return the string ``body[field]`` of at most ``max_length`` characters."""
    value = _get(body, field, required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(
            f"{field}: got {json_type(value)} {shown(value)}; allowed: a string",
            field=field,
        )
    if len(value) > max_length:
        raise OutOfRange(
            f"{field}: got {len(value)} characters; allowed: at most {max_length}",
            field=field,
        )
    check_string(value, field)
    return value


def storable(value: Any, field: str, max_depth: int = 4) -> Any:
    """Return free-form JSON ``value`` if every database can store it.

    Numbers must be finite, strings valid Unicode without NUL, and nesting at
    most ``max_depth`` deep.
    """
    if max_depth < 0:
        raise OutOfRange(f"{field}: nested too deeply", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise OutOfRange(f"{field}: numbers must be finite", field=field)
    if isinstance(value, str):
        check_string(value, field)
    if isinstance(value, list):
        for item in value:
            storable(item, field, max_depth - 1)
    if isinstance(value, dict):
        for key, item in value.items():
            check_string(key, field)
            storable(item, field, max_depth - 1)
    return value


def timestamp(
    body: dict[str, Any], field: str, *, required: bool = True
) -> datetime | None:
    """Return ``body[field]``, an ISO-8601 time with an offset, as aware UTC."""
    value = text(body, field, max_length=40, required=required)
    if value is None:
        return None
    parsed = None
    if _ISO_TIME.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None:
        raise OutOfRange(
            f"{field}: got {shown(value)}; allowed: an ISO-8601 time with an offset, "
            "e.g. 2026-12-03T12:00:00.000Z",
            field=field,
        )
    return parsed.astimezone(UTC)


def sub_object(
    body: dict[str, Any], field: str, *, required: bool = True
) -> dict[str, Any] | None:
    """Return the JSON object ``body[field]``."""
    value = _get(body, field, required)
    if value is None:
        return None
    return require_object(value, field)
