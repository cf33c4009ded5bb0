"""The OpenAPI 3.1 description of the participant API (docs/participant-api.md).

The description is built here as a plain dict and served at
``/api/v1/openapi.json``. Limits and allowed values come from the services'
own constants, so a change there changes the description too;
tests/test_openapi.py checks that every API route is described with its
methods, that the examples are valid, and that real answers match the
response schemas. The fuzz tests (tests/test_fuzz_api.py) generate requests
from it.
"""

from __future__ import annotations

from typing import Any

from .models import RESPONSES, SESSION_STATUSES
from .services import grading, platforms, timing, trials
from .services.sessions import CLIENT_EVENTS, MAX_ANSWER_LENGTH, MAX_ANSWERS

API_BASE = "/api/v1"
OPENAPI_VERSION = "3.1.0"

# JSON Schema 2020-12 is OpenAPI 3.1's schema dialect; "nullable" is gone.
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A closed object: unknown fields are refused (400) by the server."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def ms(high: float, *, exclusive: bool = False) -> Schema:
    """A finite, non-negative number of milliseconds."""
    bound = "exclusiveMaximum" if exclusive else "maximum"
    return {"type": "number", "minimum": 0, bound: high}


INTEGER_ID = {"type": "integer", "minimum": 0}
SIZE = obj(
    {
        "width": {"type": "integer", "minimum": 0, "maximum": 100_000},
        "height": {"type": "integer", "minimum": 0, "maximum": 100_000},
    },
    ("width", "height"),
)
FRAMES = {"type": "integer", "minimum": 0, "maximum": grading.MAX_FRAMES}
TIME = {
    "type": "string",
    "format": "date-time",
    "maxLength": 40,
    "description": "ISO-8601 time with an offset, e.g. 2026-12-03T12:00:00.000Z.",
}


def _response_fields() -> dict[str, Schema]:
    return {
        "response": {"type": "string", "enum": list(RESPONSES)},
        "rt_ms": ms(grading.MAX_RT_MS, exclusive=True),
        "exposure_ms": nullable(ms(grading.MAX_RT_MS)),
        "intended_frames": FRAMES,
        "achieved_frames": FRAMES,
        "frame_interval_ms": nullable(ms(1000.0)),
        "onset_ms": nullable(ms(grading.MAX_CLOCK_MS)),
        "offset_ms": nullable(ms(grading.MAX_CLOCK_MS)),
        "visibility_lost": nullable({"type": "boolean"}),
        "focus_lost": nullable({"type": "boolean"}),
        "key": nullable({"type": "string", "maxLength": 32}),
        "client_sent_at": nullable(TIME),
    }


RESPONSE_REQUIRED = ("response", "rt_ms", "intended_frames", "achieved_frames")

RESPONSE_EXAMPLE = {
    "response": "real",
    "rt_ms": 812.4,
    "exposure_ms": 500.4,
    "intended_frames": 30,
    "achieved_frames": 30,
    "frame_interval_ms": 16.68,
    "onset_ms": 123456.7,
    "offset_ms": 123957.1,
    "visibility_lost": False,
    "focus_lost": False,
    "key": "f",
    "client_sent_at": "2026-12-03T12:00:00.000Z",
}


def _platform_params() -> Schema:
    names = sorted({name for group in platforms.PARAMS.values() for name in group})
    return {
        "type": "object",
        "description": (
            "The recruitment platform's query parameters: "
            + "; ".join(
                f"{platform}: {', '.join(names)}"
                for platform, names in platforms.PARAMS.items()
            )
            + ". Ids are 1 to 128 letters, digits, '_' or '-'."
        ),
        "properties": {name: {"type": "string", "maxLength": 512} for name in names},
        "additionalProperties": True,
    }


def request_schemas() -> dict[str, Schema]:
    """Schemas of the request bodies, by component name."""
    low, high = timing.FRAME_INTERVAL_RANGE
    batch_item = obj(
        {
            **_response_fields(),
            "position": {
                "type": "integer",
                "minimum": 0,
                "maximum": trials.MAX_POSITION,
            },
        },
        ("position", *RESPONSE_REQUIRED),
    )
    answers = {
        "type": "object",
        "maxProperties": MAX_ANSWERS,
        "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,31}$"},
        "additionalProperties": {"type": "string", "maxLength": MAX_ANSWER_LENGTH},
    }
    return {
        "StartRequest": obj(
            {
                "platform": nullable(
                    {"type": "string", "enum": list(platforms.PARAMS)}
                ),
                "params": _platform_params(),
                "consent": {"type": "boolean", "description": "Must be true."},
                "window": nullable(SIZE),
                "screen": nullable(SIZE),
                "device_pixel_ratio": nullable(
                    {"type": "number", "minimum": 0.1, "maximum": 16}
                ),
            },
            ("params", "consent"),
        ),
        "DeviceRequest": obj(
            {
                "frame_interval_ms": {
                    "type": "number",
                    "minimum": low,
                    "maximum": high,
                },
                "n_frames": {
                    "type": "integer",
                    "minimum": timing.MIN_DEVICE_FRAMES,
                    "maximum": 1_000_000,
                },
                "refresh_hz": nullable(
                    {"type": "number", "minimum": 1000 / high, "maximum": 1000 / low}
                ),
                "frame_interval_sd_ms": nullable(ms(1000)),
            },
            ("frame_interval_ms", "n_frames"),
        ),
        "ResponseRequest": obj(
            {
                **_response_fields(),
                "position": nullable(
                    {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 10**9,
                        "description": "If given, the same as in the URL.",
                    }
                ),
            },
            RESPONSE_REQUIRED,
        ),
        "BatchItem": batch_item,
        "BatchRequest": obj(
            {
                "responses": {
                    "type": "array",
                    "maxItems": trials.MAX_BATCH,
                    # Items are checked one by one, as if PUT: a bad item is
                    # answered in its result (400, 404, 409, 422...), and the
                    # request as a whole is still 200.
                    "items": {
                        "description": (
                            "A BatchItem: a response as for PUT plus its "
                            "position. Each is checked on its own; an invalid "
                            "one gets its error status in its result."
                        )
                    },
                }
            },
            ("responses",),
        ),
        "EventRequest": obj(
            {
                "kind": {"type": "string", "enum": list(CLIENT_EVENTS)},
                "data": nullable({"type": "object"}),
                "at": nullable(TIME),
            },
            ("kind",),
        ),
        "CompleteRequest": obj({"answers": nullable(answers)}),
    }


def response_schemas() -> dict[str, Schema]:
    """Schemas of the answers, by component name."""
    count = {"type": "integer", "minimum": 0}
    completion = obj(
        {
            "status": {"type": "string", "enum": ["completed", "screened_out"]},
            "code": nullable({"type": "string"}),
            "url": nullable({"type": "string"}),
            "mturk": nullable(
                {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "The form the completion page posts to MTurk.",
                }
            ),
        },
        ("status", "code", "url", "mturk"),
    )
    staircase = obj(
        {
            name: {"type": "integer"}
            for name in (
                "frames",
                "streak",
                "min_frames",
                "max_frames",
                "step_frames",
                "down_after",
            )
        },
        ("frames", "streak", "min_frames", "max_frames", "step_frames", "down_after"),
    )
    block_summary = obj(
        {
            "block": count,
            "kind": {"type": "string", "enum": ["practice", "main"]},
            "first": count,
            "size": {"type": "integer", "minimum": 1},
        },
        ("block", "kind", "first", "size"),
    )
    state = obj(
        {
            "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
            "status": {"type": "string", "enum": list(SESSION_STATUSES)},
            "key_mapping": obj(
                {"real": {"type": "string"}, "generated": {"type": "string"}},
                ("real", "generated"),
            ),
            "n_trials": count,
            "n_answered": count,
            "next_position": count,
            "n_blocks": count,
            "blocks": {"type": "array", "items": block_summary},
            "exposure_frames": nullable(count),
            "exposure_ms": {"type": "number", "minimum": 0},
            "frame_interval_ms": nullable({"type": "number", "exclusiveMinimum": 0}),
            "staircase": nullable(ref("Staircase")),
            "completion": nullable(ref("Completion")),
            "started_at": {"type": "string", "format": "date-time"},
            "last_seen_at": {"type": "string", "format": "date-time"},
        },
        (
            "token",
            "status",
            "key_mapping",
            "n_trials",
            "n_answered",
            "next_position",
            "n_blocks",
            "blocks",
            "exposure_frames",
            "exposure_ms",
            "frame_interval_ms",
            "staircase",
            "completion",
            "started_at",
            "last_seen_at",
        ),
    )
    served_trial = obj(
        {
            "position": count,
            "kind": {"type": "string", "enum": ["practice", "main"]},
            "image_url": {
                "type": "string",
                "pattern": f"^{API_BASE}/stimuli/[A-Za-z0-9_.-]+$",
            },
            "fixation_ms": {"type": "number", "minimum": 0},
            "exposure_frames": count,
            "mask_ms": {"type": "number", "minimum": 0},
        },
        ("position", "kind", "image_url", "fixation_ms", "exposure_frames", "mask_ms"),
    )
    ack = obj(
        {
            "position": count,
            "stored": {"const": True},
            "replay": {"type": "boolean"},
            "n_answered": count,
            "feedback": nullable(obj({"correct": {"type": "boolean"}}, ("correct",))),
            "screened_out": {"type": "boolean"},
            "completion": nullable(ref("Completion")),
            "next_exposure_frames": nullable(count),
        },
        (
            "position",
            "stored",
            "replay",
            "n_answered",
            "feedback",
            "screened_out",
            "completion",
            "next_exposure_frames",
        ),
    )
    batch_result = obj(
        {
            "position": nullable(count),
            "status": {
                "type": "integer",
                "enum": [200, 400, 401, 403, 404, 409, 410, 422],
            },
            "replay": {"type": "boolean"},
            "error": {"type": "string"},
        },
        ("position", "status", "replay"),
    )
    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "code": {"type": "string", "minLength": 1},
                    "message": {"type": "string", "minLength": 1},
                    "field": nullable({"type": "string"}),
                    "missing": {
                        "type": "array",
                        "items": count,
                        "description": "409 on /complete: unanswered positions.",
                    },
                },
                "required": ["status", "code", "message", "field"],
            }
        },
        "required": ["error"],
        "additionalProperties": False,
    }
    return {
        "Completion": completion,
        "Staircase": staircase,
        "SessionState": state,
        "DeviceAnswer": obj(
            {
                "exposure_frames": count,
                "exposure_ms": {"type": "number", "minimum": 0},
                "frame_interval_ms": {"type": "number", "exclusiveMinimum": 0},
                "staircase": nullable(ref("Staircase")),
            },
            ("exposure_frames", "exposure_ms", "frame_interval_ms", "staircase"),
        ),
        "Block": obj(
            {
                "block": count,
                "kind": {"type": "string", "enum": ["practice", "main"]},
                "trials": {"type": "array", "minItems": 1, "items": served_trial},
            },
            ("block", "kind", "trials"),
        ),
        "Acknowledgement": ack,
        "BatchAnswer": obj(
            {"results": {"type": "array", "items": batch_result}}, ("results",)
        ),
        "EventAnswer": obj({"stored": {"const": True}}, ("stored",)),
        "Error": error,
    }


# What each error status means; an operation lists the ones it can answer.
ERROR_MEANINGS = {
    400: (
        "Malformed: not JSON (or an integer of more than 4300 digits), a wrong "
        "type, a missing or unknown field."
    ),
    401: "Unknown session token.",
    403: "The session may not do this (screened out, returned, excluded).",
    404: "Unknown study, block, trial position or image.",
    409: "Conflict with what is stored.",
    410: "The study is closed or the session has expired.",
    413: "The request body is larger than the limit (MAX_CONTENT_LENGTH).",
    422: "Well-formed but out of range.",
    503: (
        "The study is paused or full, or the database is briefly unavailable "
        "(then Retry-After says when to send the same request again)."
    ),
}


def _json(schema: Schema, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _operation(
    operation_id: str,
    summary: str,
    ok: dict[int, tuple[str, Schema | None]],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    body_required: bool = True,
    example: Any = None,
    text_plain: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, schema) in ok.items():
        answer: dict[str, Any] = {"description": description}
        if schema is not None:
            answer["content"] = _json(schema)
        responses[str(status)] = answer
    # Any operation may meet a lost database connection: 503, retry.
    for status in sorted({*errors, 503}):
        responses[str(status)] = {
            "description": ERROR_MEANINGS[status],
            "content": _json(ref("Error")),
        }
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": responses,
    }
    if body is not None:
        content = _json(ref(body), example)
        if text_plain:
            # navigator.sendBeacon sends text/plain; the text is JSON.
            content["text/plain"] = {"schema": ref(body)}
        operation["requestBody"] = {"required": body_required, "content": content}
    return operation


def _parameters(*names: str) -> list[dict[str, Any]]:
    schemas = {
        "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
        "token": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]{43}$",
            "description": "The session token: 43 URL-safe characters.",
        },
        "block": INTEGER_ID,
        "position": INTEGER_ID,
        "opaque": {
            "type": "string",
            "maxLength": 200,
            "description": "Opaque, signed for one session and trial.",
        },
    }
    return [
        {"name": name, "in": "path", "required": True, "schema": schemas[name]}
        for name in names
    ]


def paths() -> dict[str, Any]:
    """The paths of the participant API, relative to the server URL."""
    session_errors = (400, 401, 403, 410, 413, 422)
    return {
        "/studies/{slug}/sessions": {
            "parameters": _parameters("slug"),
            "post": _operation(
                "startSession",
                "Start a session, or resume the participant's session.",
                {
                    200: ("Resumed: the session state.", ref("SessionState")),
                    201: ("Started: the session state.", ref("SessionState")),
                },
                (400, 403, 404, 409, 410, 413, 422, 503),
                body="StartRequest",
                example={
                    "platform": "prolific",
                    "params": {
                        "PROLIFIC_PID": "P1",
                        "STUDY_ID": "S1",
                        "SESSION_ID": "X1",
                    },
                    "consent": True,
                    "window": {"width": 1280, "height": 800},
                    "screen": {"width": 1920, "height": 1080},
                    "device_pixel_ratio": 1,
                },
            ),
        },
        "/sessions/{token}": {
            "parameters": _parameters("token"),
            "get": _operation(
                "sessionState",
                "The session's state: blocks, progress, key mapping, completion.",
                {200: ("The session state.", ref("SessionState"))},
                (401,),
            ),
        },
        "/sessions/{token}/device": {
            "parameters": _parameters("token"),
            "post": _operation(
                "deviceCheck",
                "Store the device check; answer the exposure in whole frames.",
                {200: ("The exposure for this display.", ref("DeviceAnswer"))},
                session_errors,
                body="DeviceRequest",
                example={
                    "frame_interval_ms": 16.68,
                    "n_frames": 120,
                    "refresh_hz": 59.95,
                    "frame_interval_sd_ms": 0.2,
                },
            ),
        },
        "/sessions/{token}/blocks/{block}": {
            "parameters": _parameters("token", "block"),
            "get": _operation(
                "block",
                "One block's trials with signed image URLs (marks them served).",
                {200: ("The block.", ref("Block"))},
                (401, 403, 404, 410, 422),
            ),
        },
        "/sessions/{token}/trials/{position}": {
            "parameters": _parameters("token", "position"),
            "put": _operation(
                "response",
                "Grade and store one response; a replay is acknowledged again.",
                {
                    200: (
                        "Stored, or a replay of the stored answer.",
                        ref("Acknowledgement"),
                    )
                },
                (400, 401, 403, 404, 409, 410, 413, 422),
                body="ResponseRequest",
                example=RESPONSE_EXAMPLE,
            ),
        },
        "/sessions/{token}/responses": {
            "parameters": _parameters("token"),
            "post": _operation(
                "responses",
                "Store a batch of responses (sendBeacon on pagehide).",
                {200: ("One result per response.", ref("BatchAnswer"))},
                (400, 401, 413, 422),
                body="BatchRequest",
                example={"responses": [{"position": 0, **RESPONSE_EXAMPLE}]},
                text_plain=True,
            ),
        },
        "/sessions/{token}/events": {
            "parameters": _parameters("token"),
            "post": _operation(
                "event",
                "Store a client event.",
                {201: ("Stored.", ref("EventAnswer"))},
                (400, 401, 413, 422),
                body="EventRequest",
                example={
                    "kind": "blur",
                    "data": {"position": 3},
                    "at": "2026-12-03T12:00:00.000Z",
                },
            ),
        },
        "/sessions/{token}/complete": {
            "parameters": _parameters("token"),
            "post": _operation(
                "complete",
                "Finish the session once every trial is stored.",
                {200: ("The completion (the same on every call).", ref("Completion"))},
                (400, 401, 403, 409, 410, 413, 422),
                body="CompleteRequest",
                body_required=False,
                example={"answers": {"comments": "Some images were hard."}},
            ),
        },
        "/stimuli/{opaque}": {
            "parameters": _parameters("opaque"),
            "get": {
                "operationId": "stimulus",
                "summary": "The image behind a signed URL (the normalised PNG).",
                "responses": {
                    "200": {
                        "description": (
                            "PNG bytes; the same headers in form for every image."
                        ),
                        "content": {
                            "image/png": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    "404": {
                        "description": "Invalid or expired signature.",
                        "content": _json(ref("Error")),
                    },
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This description.",
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 description.",
                        "content": _json({"type": "object"}),
                    }
                },
            }
        },
    }


def build_spec() -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of the participant API."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Realism study participant API",
            "version": "1",
            "description": (
                "The JSON API the browser trial runner uses "
                "(docs/participant-api.md). The session token in the path is "
                "the participant's credential. Every error answers the same "
                'envelope: {"error": {"status", "code", "message", '
                '"field"}}.'
            ),
        },
        "servers": [{"url": API_BASE}],
        "paths": paths(),
        "components": {"schemas": {**request_schemas(), **response_schemas()}},
    }
