"""The participant JSON API, version 1 (docs/participant-api.md).

Each endpoint reads the request, calls one service and answers JSON; errors
from services become the JSON error envelope (study_server/errors.py).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..errors import Malformed
from ..services import sessions, trials
from ..services.grading import parse_response
from ..services.signing import StimulusSigner

API_BASE = "/api/v1"

bp = Blueprint("api", __name__, url_prefix=API_BASE)

# Python's own limit on converting digits to an int (sys.int_info); longer
# integers would take quadratic time to parse, and no field takes one.
MAX_INTEGER_DIGITS = 4300


def _parse_integer(digits: str) -> int:
    """Convert one JSON integer literal, refusing one longer than the limit."""
    n_digits = len(digits.lstrip("-"))
    if n_digits > MAX_INTEGER_DIGITS:
        raise Malformed(
            f"body: a number has {n_digits} digits; "
            f"allowed: integers of at most {MAX_INTEGER_DIGITS} digits"
        )
    return int(digits)


def json_body(empty: Any = None) -> Any:
    """The request body parsed as JSON, whatever its declared content type.

    ``navigator.sendBeacon`` sends ``text/plain``; JSON's ``NaN`` and
    ``Infinity`` are parsed here and refused by the field checks (422). An
    empty body is ``empty`` when that is given, malformed otherwise, and so
    is an integer of more than ``MAX_INTEGER_DIGITS`` digits.
    """
    data = request.get_data(cache=False)
    if request.content_length is None:
        # A chunked body has no length up front, and Werkzeug stops reading it
        # quietly at MAX_CONTENT_LENGTH; one byte more raises the 413.
        request.stream.read(1)
    if not data and empty is not None:
        return empty
    try:
        return json.loads(data.decode("utf-8"), parse_int=_parse_integer)
    except UnicodeDecodeError:
        raise Malformed("body: not UTF-8 text; send JSON") from None
    except json.JSONDecodeError as exc:
        raise Malformed(
            f"body: not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    except RecursionError:
        raise Malformed("body: JSON nested too deeply") from None


def signer() -> StimulusSigner:
    config = current_app.config
    return StimulusSigner(config["SECRET_KEY"], config["STIMULUS_URL_MAX_AGE_S"])


def stimulus_url(opaque: str) -> str:
    return f"{API_BASE}/stimuli/{opaque}"


@bp.post("/studies/<slug>/sessions")
def start_session(slug: str) -> tuple[Response, int]:
    """Start a session, or resume the participant's session."""
    user_agent = request.headers.get("User-Agent", "")
    state, created = sessions.start_session(slug, json_body(), user_agent)
    return jsonify(state), 201 if created else 200


@bp.get("/sessions/<token>")
def session_state(token: str) -> Response:
    """The session's state: blocks, progress, key mapping, completion."""
    return jsonify(sessions.session_state(token))


@bp.post("/sessions/<token>/device")
def device_check(token: str) -> Response:
    """Store the device check and answer the exposure in whole frames."""
    return jsonify(sessions.record_device(token, json_body()))


@bp.get("/sessions/<token>/blocks/<int:block>")
def block(token: str, block: int) -> Response:
    """One block's trials with signed image URLs."""
    return jsonify(trials.serve_block(token, block, signer(), stimulus_url))


@bp.put("/sessions/<token>/trials/<int:position>")
def response(token: str, position: int) -> Response:
    """Grade and store one response (idempotent)."""
    payload, _ = parse_response(json_body(), position=position)
    return jsonify(trials.record_response(token, position, payload))


@bp.post("/sessions/<token>/responses")
def responses(token: str) -> Response:
    """Store a batch of responses (sendBeacon on pagehide)."""
    return jsonify(trials.record_batch(token, json_body()))


@bp.post("/sessions/<token>/events")
def event(token: str) -> tuple[Response, int]:
    """Store a client event."""
    return jsonify(sessions.record_event(token, json_body())), 201


@bp.post("/sessions/<token>/complete")
def complete(token: str) -> Response:
    """Finish the session once every trial is stored; answer the completion."""
    return jsonify(sessions.complete_session(token, json_body(empty={})))


@bp.get("/stimuli/<opaque>")
def stimulus(opaque: str) -> Response:
    """The image behind a signed URL, with the same headers for every image."""
    store = current_app.config["STIMULUS_STORE"]
    data = trials.stimulus_bytes(opaque, signer(), store)
    answer = Response(data, mimetype="image/png")
    max_age = current_app.config["STIMULUS_URL_MAX_AGE_S"]
    answer.headers["Cache-Control"] = f"private, max-age={max_age}"
    answer.headers["X-Content-Type-Options"] = "nosniff"
    return answer
