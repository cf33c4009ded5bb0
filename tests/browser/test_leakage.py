"""Nothing the browser receives tells real and generated stimuli apart.

Two participants complete sessions in headless Chromium while every network
response is recorded. Then, for the stimulus responses: the URL form, every
header (names and values, except Content-Length and Date) and every
byte-level property of the PNG (chunk list, size, bit depth, colour type,
compression, filter and interlace method, zlib header, mode, metadata) are
the same for real and generated images; no response of any kind carries a
model name, a file name or an image digest; and the same image has different
URLs in the two sessions.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import struct
from collections import defaultdict
from urllib.parse import urlparse

import pytest
from driver import KeyboardParticipant
from PIL import Image
from sqlalchemy import select
from test_session import QUICK_STUDY

pytestmark = pytest.mark.browser

MODELS = ("leakmodel-alpha", "leakmodel-beta", "leakmodel-gamma")
STIMULUS_PATH = "/api/v1/stimuli/"
# Headers that legitimately differ between any two responses.
VARYING_HEADERS = {"content-length", "date"}
# Keys of a trial in a block (docs/participant-api.md); nothing else.
TRIAL_KEYS = {
    "position",
    "kind",
    "image_url",
    "fixation_ms",
    "exposure_frames",
    "mask_ms",
}


def png_properties(data: bytes) -> dict:
    """Everything about a PNG file except its pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, idat, offset = [], b"", 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8].decode("ascii")
        body = data[offset + 8 : offset + 8 + length]
        if kind == "IHDR":
            width, height, depth, colour, compression, filter_, interlace = (
                struct.unpack(">IIBBBBB", body)
            )
        if kind == "IDAT":
            idat += body
        # Consecutive IDAT chunks are one stream; their count follows its size.
        if not (kind == "IDAT" and chunks and chunks[-1] == "IDAT"):
            chunks.append(kind)
        offset += 12 + length
    image = Image.open(io.BytesIO(data))
    return {
        "chunks": tuple(chunks),
        "size": (width, height),
        "bit_depth": depth,
        "colour_type": colour,
        "compression_method": compression,
        "filter_method": filter_,
        "interlace_method": interlace,
        # CMF and FLG: window size and compression level of the zlib stream.
        "zlib_header": idat[:2].hex(),
        "mode": image.mode,
        "format": image.format,
        "info": tuple(sorted(image.info)),
    }


def describe(response, bodies: dict[str, bytes]) -> dict:
    path = urlparse(response.url).path
    if path in bodies:
        body = bodies[path]
    elif 300 <= response.status < 400:
        body = b""
    else:
        body = response.body()
    return {
        "url": response.url,
        "method": response.request.method,
        "status": response.status,
        "headers": response.headers_array(),
        "body": body,
    }


def record_session(app, live_server, browser, study) -> list[dict]:
    """Complete one session in a fresh browser profile; return its responses."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    # Chromium does not keep the bodies of responses read as blobs, so image
    # bytes are taken on their way in: the route fetches the request from
    # the server and passes the answer on unchanged.
    bodies: dict[str, bytes] = {}

    def keep_body(route) -> None:
        fetched = route.fetch()
        bodies[urlparse(route.request.url).path] = fetched.body()
        route.fulfill(response=fetched)

    try:
        page = context.new_page()
        page.route(f"**{STIMULUS_PATH}**", keep_body)
        recorded: list[dict] = []
        page.on(
            "response", lambda response: recorded.append(describe(response, bodies))
        )
        participant = KeyboardParticipant(page, app, study.id)
        page.goto(f"{live_server}/s/{study.slug}")
        participant.run()
        page.reload()
        page.locator(".completion-code").wait_for()
        recorded.append({"session_id": participant.session().id})
        return recorded
    finally:
        context.close()


def truth(app, session_id: int) -> dict[int, dict]:
    """Position -> the trial's stimulus facts, from the database."""
    from study_server.db import db
    from study_server.models import Stimulus, Trial

    with app.app_context():
        rows = db.session.execute(
            select(Trial, Stimulus)
            .join(Stimulus, Trial.stimulus_id == Stimulus.id)
            .where(Trial.session_id == session_id)
        ).all()
        return {
            trial.position: {
                "trial_id": trial.id,
                "kind": trial.kind,
                "is_real": stimulus.is_real,
                "source": stimulus.source,
                "digest": stimulus.digest,
                "stimulus_id": stimulus.id,
                "file": stimulus.original_path.rsplit("/", 1)[-1],
            }
            for trial, stimulus in rows
        }


def stimuli_of(recorded: list[dict]) -> tuple[dict, dict]:
    """Image URL -> position (from the blocks), and URL -> its response."""
    positions, images = {}, {}
    for r in recorded:
        if "url" not in r:
            continue
        path = urlparse(r["url"]).path
        if (
            re.fullmatch(r"/api/v1/sessions/[^/]+/blocks/\d+", path)
            and r["status"] == 200
        ):
            for trial in json.loads(r["body"])["trials"]:
                assert set(trial) == TRIAL_KEYS
                positions[trial["image_url"]] = trial["position"]
        if path.startswith(STIMULUS_PATH):
            images[path] = r
    return positions, images


def signed_trial_id(opaque: str) -> int:
    """The value inside an itsdangerous-signed URL part (payload.time.sig)."""
    payload = opaque.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def stimulus_forms(recorded: list[dict], facts: dict[int, dict]) -> dict:
    """Check each stimulus URL; return {is_real: [status, headers, PNG form]}."""
    positions, images = stimuli_of(recorded)
    assert len(images) == len(facts) == 10
    forms: dict[bool, list[dict]] = defaultdict(list)
    for path, response in images.items():
        fact = facts[positions[path]]
        opaque = path.removeprefix(STIMULUS_PATH)
        # The URL: one opaque, signed value naming the trial, nothing else.
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", opaque)
        assert urlparse(response["url"]).query == ""
        assert signed_trial_id(opaque) == fact["trial_id"]
        assert hashlib.sha256(response["body"]).hexdigest() == fact["digest"]
        headers = sorted(
            (h["name"].lower(), h["value"])
            for h in response["headers"]
            if h["name"].lower() not in VARYING_HEADERS
        )
        forms[fact["is_real"]].append(
            {
                "status": response["status"],
                "headers": headers,
                "png": png_properties(response["body"]),
            }
        )
    return forms


def urls_by_image(recorded: list[dict], facts: dict[int, dict]) -> dict[str, set]:
    """Image digest -> the URLs it was fetched under."""
    positions, images = stimuli_of(recorded)
    found = defaultdict(set)
    for path in images:
        found[facts[positions[path]]["digest"]].add(path)
    return found


def assert_no_secrets(recorded: list[dict], facts: dict[int, dict]) -> None:
    """No URL, header or body names a model, a file or a digest, and only
    practice answers carry feedback."""
    secrets = set(MODELS)
    for fact in facts.values():
        secrets |= {fact["digest"], fact["digest"][:16], fact["file"]}
    by_position = {f"/trials/{p}": fact for p, fact in facts.items()}
    for r in recorded:
        if "url" not in r:
            continue
        headers = " ".join(f"{h['name']}: {h['value']}" for h in r["headers"])
        text = r["url"] + headers + r["body"].decode("latin-1")
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{r['url']} carries {leaked}"
        tail = "/trials/" + r["url"].rsplit("/trials/", 1)[-1]
        if r["method"] == "PUT" and r["status"] == 200:
            practice = by_position[tail]["kind"] == "practice"
            assert (json.loads(r["body"])["feedback"] is not None) == practice


def test_stimulus_responses_do_not_leak_labels(app, live_server, make_study, browser):
    study = make_study(models=MODELS, n_practice=2, n_checks=2, **QUICK_STUDY)
    sessions = [record_session(app, live_server, browser, study) for _ in range(2)]
    facts = [truth(app, recorded[-1]["session_id"]) for recorded in sessions]

    for recorded, session_facts in zip(sessions, facts, strict=True):
        forms = stimulus_forms(recorded, session_facts)
        # Both kinds were shown, and everything but the pixels is identical.
        assert forms[True] and forms[False]
        for form in forms[True] + forms[False]:
            assert form == forms[True][0]
        # Trial ids follow positions, so even the order of the signed values
        # carries nothing beyond the order of presentation.
        ids = [session_facts[p]["trial_id"] for p in sorted(session_facts)]
        assert ids == sorted(ids)
        assert_no_secrets(recorded, session_facts)

    # The same image has different URLs in the two sessions.
    first, second = (urls_by_image(r, f) for r, f in zip(sessions, facts, strict=True))
    shared = set(first) & set(second)
    assert len(shared) >= 2  # the practice images at least
    for digest in shared:
        assert not first[digest] & second[digest]
