"""A trial's response: its validation, its digest, and its grading.

The server grades every response against the truth it stored when the trial
list was made; the browser never learns the truth before it has answered.
A response's digest is the SHA-256 of a canonical JSON of the stored fields,
so a retried request with the same answer is recognised as a replay and a
different answer as a conflict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..errors import Malformed
from ..models import RESPONSES
from . import validate

# Response times beyond 10 minutes are not responses to a briefly shown image.
MAX_RT_MS = 600_000.0
MAX_FRAMES = 10_000
# performance.now() values: up to about 115 days of an open page.
MAX_CLOCK_MS = 1e10

#: Fields of a response body. ``key`` and ``client_sent_at`` describe the
#: request, not the answer: they are checked but neither stored nor digested.
RESPONSE_FIELDS = (
    "response",
    "rt_ms",
    "exposure_ms",
    "intended_frames",
    "achieved_frames",
    "frame_interval_ms",
    "onset_ms",
    "offset_ms",
    "visibility_lost",
    "focus_lost",
    "key",
    "client_sent_at",
    "position",
)


@dataclass(frozen=True)
class ResponsePayload:
    """A validated response, with the fields stored on the trial."""

    response: str
    rt_ms: float
    intended_frames: int
    achieved_frames: int
    exposure_ms: float | None = None
    frame_interval_ms: float | None = None
    onset_ms: float | None = None
    offset_ms: float | None = None
    visibility_lost: bool | None = None
    focus_lost: bool | None = None

    def stored_fields(self) -> dict[str, Any]:
        """The trial columns this response fills, by column name."""
        return asdict(self)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the stored fields."""
        canonical = json.dumps(
            self.stored_fields(), sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_response(
    body: Any, *, position: int | None = None
) -> tuple[ResponsePayload, datetime | None]:
    """Validate a response body; return the payload and the client's send time.

    ``position``, when given, is the trial position from the URL; a body that
    also names a position must name the same one.

    Raises
    ------
    Malformed
        Not an object, an unknown or missing field, a wrong type.
    OutOfRange
        A value outside its range: a response other than real/generated, a
        negative or non-finite number, a response time over 10 minutes,
        frames outside 0..10000, a time without an offset.
    """
    body = validate.require_object(body)
    validate.reject_unknown(body, RESPONSE_FIELDS, "response")
    named = validate.integer(body, "position", low=0, high=10**9, required=False)
    if position is not None and named is not None and named != position:
        raise Malformed(
            f"position: the body says {named} but the URL says {position}",
            field="position",
        )
    validate.text(body, "key", max_length=32, required=False)
    sent_at = validate.timestamp(body, "client_sent_at", required=False)

    def ms(field: str, high: float = MAX_RT_MS, required: bool = False) -> Any:
        return validate.number(body, field, low=0, high=high, required=required)

    def frames(field: str) -> Any:
        return validate.integer(body, field, low=0, high=MAX_FRAMES)

    response: Any = validate.choice(body, "response", RESPONSES)
    rt_ms: Any = validate.number(body, "rt_ms", low=0, high=MAX_RT_MS, high_open=True)
    payload = ResponsePayload(
        response=response,
        rt_ms=rt_ms,
        intended_frames=frames("intended_frames"),
        achieved_frames=frames("achieved_frames"),
        exposure_ms=ms("exposure_ms"),
        frame_interval_ms=ms("frame_interval_ms", high=1000.0),
        onset_ms=ms("onset_ms", high=MAX_CLOCK_MS),
        offset_ms=ms("offset_ms", high=MAX_CLOCK_MS),
        visibility_lost=validate.boolean(body, "visibility_lost", required=False),
        focus_lost=validate.boolean(body, "focus_lost", required=False),
    )
    return payload, sent_at


def grade(is_real: bool, response: str) -> bool:
    """Return whether ``response`` matches the truth of the image."""
    return (response == "real") == is_real


def timing_invalid(intended_frames: int, achieved_frames: int) -> bool:
    """A timed exposure that did not last exactly the intended frames.

    With unlimited viewing (0 intended frames) the image stays up until the
    response, so any number of achieved frames is as intended.
    """
    return intended_frames > 0 and achieved_frames != intended_frames
