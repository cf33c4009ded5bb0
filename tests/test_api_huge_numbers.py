"""Numbers too long for Python: 400 in the envelope, or 422 when merely huge.

Python refuses to turn more than 4300 digits into an int (CVE-2020-10735);
the JSON parser used to let that ValueError through as a 500. An integer that
parses but is beyond a float's range used to overflow in the range checks.
"""

from __future__ import annotations

import json

import pytest
from api_helpers import API, Participant, no_fsync, response_body, snapshot

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark

TOO_LONG = "1" + "0" * 5000  # 5001 digits
ALSO_TOO_LONG = "-1" + "0" * 4400  # 4401 digits
HUGE = "1" + "0" * 400  # parses; beyond a float's range


def _with(body: dict, field: str, literal: str) -> bytes:
    """``body`` as JSON text with ``field``'s value replaced by ``literal``."""
    text = json.dumps({**body, field: "@@"})
    return text.replace('"@@"', literal).encode()


def _start_body(p: Participant, width: str) -> bytes:
    window = '{"width": ' + width + ', "height": 800}'
    body = {"platform": p.platform, "params": p.params, "consent": True}
    return _with(body, "window", window)


def _assert_too_long(answer, digits: int) -> None:
    assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
    assert answer.json == {
        "error": {
            "status": 400,
            "code": "malformed",
            "field": None,
            "message": f"body: a number has {digits} digits; "
            "allowed: integers of at most 4300 digits",
        }
    }


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_too_long_integer_is_400_on_every_json_endpoint(app, started, content_type):
    p = started
    before = snapshot(app)
    token_url = f"{API}/sessions/{p.token}"
    response = _with(response_body(), "rt_ms", ALSO_TOO_LONG)
    requests = [
        ("post", f"{API}/studies/{p.slug}/sessions", _start_body(p, TOO_LONG), 5001),
        ("put", f"{token_url}/trials/0", response, 4401),
        ("post", f"{token_url}/responses", b'{"responses": [%s]}' % response, 4401),
        ("post", f"{token_url}/device", b'{"frame_interval_ms": 16.7, '
         b'"n_frames": %s}' % TOO_LONG.encode(), 5001),
        ("post", f"{token_url}/events", b'{"kind": "blur", "detail": {"n": %s}}'
         % TOO_LONG.encode(), 5001),
        ("post", f"{token_url}/complete", b'{"answers": {"a": %s}}'
         % TOO_LONG.encode(), 5001),
    ]  # fmt: skip
    for method, url, data, digits in requests:
        answer = getattr(p.client, method)(url, data=data, content_type=content_type)
        _assert_too_long(answer, digits)
    assert snapshot(app) == before
    # The trial still takes a good answer afterwards.
    assert p.put(0, response_body()).status_code == 200


def test_an_integer_beyond_float_range_is_out_of_range(app, started):
    p = started
    before = snapshot(app)

    rt = p.put(0, data=_with(response_body(), "rt_ms", HUGE))
    negative = p.put(0, data=_with(response_body(), "onset_ms", "-" + HUGE))
    frames = p.put(0, data=_with(response_body(), "intended_frames", HUGE))
    window = p.client.post(
        f"{API}/studies/{p.slug}/sessions",
        data=_start_body(Participant(p.client, p.study, "PID2"), HUGE),
        content_type="application/json",
    )

    assert rt.status_code == 422
    assert rt.json["error"]["field"] == "rt_ms"
    assert rt.json["error"]["message"] == (
        "rt_ms: got an integer of 401 digits; "
        "allowed: a finite number from 0, below 600000"
    )
    assert negative.status_code == 422
    assert negative.json["error"]["message"] == (
        "onset_ms: got an integer of 401 digits; "
        "allowed: a finite number from 0, at most 1e+10"
    )
    assert frames.status_code == 422
    assert frames.json["error"]["message"] == (
        "intended_frames: got 1000000000000000000000000000000000000...; "
        "allowed: an integer from 0 to 10000"
    )
    assert window.status_code == 422
    assert window.json["error"]["field"] == "width"
    assert window.json["error"]["message"].startswith("width: got 10000000000")
    assert snapshot(app) == before
