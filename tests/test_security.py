"""Security of the participant path (DESIGN §6).

- Session tokens are 256 random bits, distinct, and nothing else opens a
  session; stimulus URLs are signed per session and trial, say nothing about
  the image, differ between sessions for the same image, and stop working
  when tampered with, signed with another key, or expired.
- A participant's token reaches only its own session, and no researcher page.
- The label cannot be inferred before answering: block JSON, session state,
  image bytes and headers are the same in form for real and generated
  images, and carry no source, model, digest or file name.
- Request bodies over ``MAX_CONTENT_LENGTH`` are refused with 413 and the JSON
  envelope, whether or not they declare their length, and store nothing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import time

import pytest
from api_helpers import (
    API,
    Participant,
    no_fsync,
    response_body,
    small_study,
    snapshot,
)
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from study_server.db import db
from study_server.models import Event, Session, Stimulus, Trial
from study_server.services.signing import SALT

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark

MODELS = ("zebramodel", "yakmodel")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _study(make_study, platform: str = "direct", **sections):
    return small_study(make_study, platform=platform, models=MODELS, **sections)


def _started(client, study, external_id: str) -> Participant:
    p = Participant(client, study, external_id)
    assert p.start().status_code == 201
    assert p.device().status_code == 200
    return p


def _trial_rows(app, token: str) -> dict[int, tuple]:
    """position -> (trial id, stimulus id, is_real, source, digest, file name)."""
    with app.app_context():
        rows = db.session.execute(
            select(
                Trial.position,
                Trial.id,
                Trial.stimulus_id,
                Trial.is_real,
                Trial.source,
                Stimulus.digest,
                Stimulus.original_path,
            )
            .join(Session, Session.id == Trial.session_id)
            .join(Stimulus, Stimulus.id == Trial.stimulus_id)
            .where(Session.token == token)
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _opaque(url: str) -> str:
    return url.rsplit("/", 1)[1]


# Tokens


def test_session_tokens_are_256_random_bits_and_never_repeat(app, client, make_study):
    study = _study(make_study)
    tokens = []
    for i in range(24):
        p = Participant(client, study, f"T{i}")
        assert p.start().status_code == 201
        tokens.append(p.token)
    assert len(set(tokens)) == len(tokens)
    assert all(TOKEN.match(t) for t in tokens)
    raw = [base64.urlsafe_b64decode(t + "=") for t in tokens]
    assert all(len(r) == 32 for r in raw)
    # No shared prefixes (a counter or a clock would give them): for random
    # tokens, two of 24 sharing 5 characters has probability 2.6e-7.
    for i, a in enumerate(tokens):
        for b in tokens[i + 1 :]:
            assert a[:5] != b[:5]
    # Bits are balanced overall (6144 bits, sd 39) and any two tokens differ
    # in about half of their 256 bits (fewer than 80 has probability < 1e-9).
    ones = sum(bin(byte).count("1") for r in raw for byte in r)
    assert abs(ones - 3072) < 5 * 39.2
    for i, a in enumerate(raw):
        for b in raw[i + 1 :]:
            distance = sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))
            assert distance > 80


def test_tokens_do_not_follow_the_participant_and_resume_is_by_platform_id(
    app, client, make_study
):
    first = _study(make_study)
    second = _study(make_study, slug="second")
    a = Participant(client, first, "SAME")
    b = Participant(client, second, "SAME")
    a.start()
    b.start()
    assert a.token != b.token
    # The same person arriving again gets the same session, not a new token.
    again = Participant(client, first, "SAME")
    assert again.start().status_code == 200 and again.token == a.token


def test_only_a_live_token_opens_a_session(app, client, make_study):
    study = _study(make_study)
    p = _started(client, study, "P1")
    token = p.token
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (
        flipped,
        token.lower() if token.lower() != token else token.upper(),
        token[:-1],
        token + "A",
        "A" * 43,
        "../" + token,
    ):
        answer = client.get(f"{API}/sessions/{bad}")
        assert answer.status_code in (401, 404), bad
        assert answer.json["error"]["status"] == answer.status_code
    assert client.get(f"{API}/sessions/{token}").status_code == 200


def test_a_finished_session_token_stores_nothing_more(app, client, make_study):
    study = _study(make_study)
    p = _started(client, study, "P1")
    p.finish(correct=True)
    assert p.complete().status_code == 200
    before = snapshot(app)
    # One of the two is the stored answer (a replay, 200); the other is not
    # taken: a conflict, or refused because the session has ended.
    statuses = sorted(
        p.put(0, response_body(answer)).status_code for answer in ("real", "generated")
    )
    assert statuses in ([200, 403], [200, 409])
    assert p.block(0).status_code == 403
    assert snapshot(app) == before


# Stimulus URLs


def test_stimulus_urls_say_nothing_and_differ_between_sessions(app, client, make_study):
    study = _study(make_study)
    p1 = _started(client, study, "P1")
    p2 = _started(client, study, "P2")
    urls = {}
    for p in (p1, p2):
        rows = _trial_rows(app, p.token)
        for block in p.state["blocks"]:
            for trial in p.block(block["block"]).json["trials"]:
                urls[(p.token, rows[trial["position"]][1])] = trial["image_url"]
                p.answer(trial["position"], correct=True)
    # Both sessions see 5 of the 6 real images, so at least 4 are shared,
    # each under a different URL in each session.
    by_stimulus: dict[int, set[str]] = {}
    for (_, stimulus_id), url in urls.items():
        by_stimulus.setdefault(stimulus_id, set()).add(url)
    assert sum(len(seen) == 2 for seen in by_stimulus.values()) >= 4
    for url in urls.values():
        assert re.fullmatch(rf"{API}/stimuli/[A-Za-z0-9_.-]+", url)

    with app.app_context():
        stimuli = db.session.execute(
            select(
                Stimulus.id, Stimulus.digest, Stimulus.source, Stimulus.original_path
            )
        ).all()
    forbidden = {"real", "generated", "practice", "check", "img_", ".png", *MODELS}
    for _, digest, source, original in stimuli:
        forbidden |= {digest[:12], source, original.rsplit("/", 1)[-1]}
    for (_, stimulus_id), url in urls.items():
        opaque = _opaque(url)
        assert not any(word in opaque for word in forbidden), opaque
        # The signed value is readable (signed, not encrypted): it holds only
        # the trial's row id, never the stimulus's id or digest.
        payload = json.loads(base64.urlsafe_b64decode(opaque.split(".")[0] + "=="))
        assert isinstance(payload, int)
        with app.app_context():
            trial = db.session.get(Trial, payload)
            assert trial is not None and trial.stimulus_id == stimulus_id


def test_stimulus_urls_stop_working_when_tampered_foreign_unserved_or_expired(
    app, client, make_study
):
    study = _study(make_study)
    p = _started(client, study, "P1")
    url = p.block(0).json["trials"][0]["image_url"]
    opaque = _opaque(url)
    assert client.get(url).status_code == 200

    tampered = opaque[:-2] + ("AA" if opaque[-2:] != "AA" else "BB")
    foreign = URLSafeTimedSerializer("another-key", salt=SALT).dumps(
        json.loads(base64.urlsafe_b64decode(opaque.split(".")[0] + "=="))
    )
    unserved_trial = _trial_rows(app, p.token)[p.state["blocks"][1]["first"]][0]
    signed_unserved = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT)
    for bad in (tampered, foreign, signed_unserved.dumps(unserved_trial), "x" * 300):
        answer = client.get(f"{API}/stimuli/{bad}")
        assert answer.status_code == 404, bad
        assert answer.json["error"]["code"] == "not_found"
        assert answer.mimetype == "application/json"

    app.config["STIMULUS_URL_MAX_AGE_S"] = 1
    time.sleep(2.1)
    assert client.get(url).status_code == 404


# Another session, researcher pages


def test_a_token_reaches_only_its_own_session(app, client, make_study):
    study = _study(make_study)
    a = _started(client, study, "A")
    b = _started(client, study, "B")
    b_urls = {t["image_url"] for t in b.block(0).json["trials"]}
    b.answer(0, correct=True)
    b_before = _trial_rows(app, b.token)
    with app.app_context():
        b_stored = db.session.execute(
            select(Trial.position, Trial.response, Trial.payload_digest)
            .join(Session)
            .where(Session.token == b.token)
            .order_by(Trial.position)
        ).all()
    a_urls = {t["image_url"] for t in a.block(0).json["trials"]}
    assert not a_urls & b_urls
    for position in range(a.state["n_trials"]):
        a.put(position, response_body("generated"))
    assert a.refresh().json["token"] == a.token
    with app.app_context():
        b_after = db.session.execute(
            select(Trial.position, Trial.response, Trial.payload_digest)
            .join(Session)
            .where(Session.token == b.token)
            .order_by(Trial.position)
        ).all()
    assert b_after == b_stored
    assert _trial_rows(app, b.token) == b_before
    # The state a token opens is its own session's and nothing else.
    state = a.refresh().json
    assert b.token not in json.dumps(state)


def test_a_participant_cannot_open_researcher_pages(app, client, make_study):
    study = _study(make_study)
    p = _started(client, study, "P1")
    slug = study.slug
    pages = [
        "/researcher/",
        f"/researcher/studies/{slug}",
        f"/researcher/studies/{slug}/sessions",
        f"/researcher/studies/{slug}/export/trials.csv",
        f"/researcher/studies/{slug}/export.zip",
    ]
    credentials = [
        {},
        {"headers": {"Authorization": f"Bearer {p.token}"}},
        {"query_string": {"token": p.token}},
    ]
    for page in pages:
        for extra in credentials:
            answer = client.get(page, **extra)
            assert answer.status_code == 302, (page, answer.status_code)
            assert "/researcher/login" in answer.headers["Location"]
    answer = client.get(f"/researcher/studies/{slug}/dashboard.json")
    assert answer.status_code == 401
    assert answer.json["error"]["status"] == 401
    before = snapshot(app)
    answer = client.post(
        f"/researcher/studies/{slug}/status",
        data={"status": "closed"},
        headers={"Authorization": f"Bearer {p.token}"},
    )
    assert answer.status_code in (302, 400, 401, 403)
    assert snapshot(app) == before


# The label


def _png_layout(data: bytes) -> tuple:
    """The PNG's chunk types (runs of IDAT as one) and its IHDR fields."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, kinds, header = 8, [], None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IHDR":
            header = data[offset + 8 : offset + 8 + length]
        if not kinds or kinds[-1] != kind or kind != b"IDAT":
            kinds.append(kind)
        offset += 12 + length
    return tuple(kinds), header


def test_the_label_cannot_be_inferred_before_answering(app, client, make_study):
    study = _study(make_study, platform="prolific")
    p = _started(client, study, "P1")
    rows = _trial_rows(app, p.token)
    with app.app_context():
        stimuli = db.session.execute(
            select(Stimulus.digest, Stimulus.source, Stimulus.original_path)
        ).all()
    secrets_ = {"is_real", "digest", *MODELS}
    for digest, source, original in stimuli:
        secrets_ |= {digest[:12], source, original.rsplit("/", 1)[-1]}
    # "real" and "generated" name the keys and buttons, so they are allowed.
    secrets_ -= {"real", "generated"}

    page = p.arrive()
    state = p.refresh()
    texts = [page.get_data(as_text=True), state.get_data(as_text=True)]
    images: dict[bool, list] = {True: [], False: []}
    entries: dict[str, list] = {"practice": [], "main": []}
    for block in p.state["blocks"]:
        served = p.block(block["block"])
        texts.append(served.get_data(as_text=True))
        for trial in served.json["trials"]:
            entries[trial["kind"]].append(trial)
            answer = client.get(trial["image_url"])
            truth = rows[trial["position"]][2]
            images[truth].append(answer)
        for trial in served.json["trials"]:
            ack = p.answer(trial["position"], correct=True)
            if trial["kind"] == "main":
                assert ack.json["feedback"] is None
    # Check trials are served as "main"; nothing in any text names a source.
    kinds = {rows[t["position"]][0] for t in entries["main"]}
    with app.app_context():
        served_kinds = set(
            db.session.scalars(select(Trial.kind).where(Trial.id.in_(kinds)))
        )
    assert served_kinds == {"main", "check"}
    for text in texts:
        lowered = text.lower()
        assert not [s for s in secrets_ if s.lower() in lowered]
    for text in texts[1:]:  # the JSON answers
        assert not {'"check"', '"source"', '"correct"'} & set(
            re.findall(r'"[a-z_]+"', text)
        )
    # Every main trial entry has the same keys in the same order and the
    # same timing values, whatever its truth or kind.
    for kind, group in entries.items():
        assert len({tuple(t) for t in group}) == 1, kind
        for key in ("kind", "fixation_ms", "exposure_frames", "mask_ms"):
            assert len({t[key] for t in group}) == 1, (kind, key)
    # Image answers: the same header names in the same order and the same
    # values but the length; the same PNG layout and IHDR.
    assert images[True] and images[False]
    forms = set()
    for answer in images[True] + images[False]:
        assert answer.status_code == 200
        headers = tuple(
            (name, "<n>" if name == "Content-Length" else value)
            for name, value in answer.headers.items()
        )
        forms.add((headers, _png_layout(answer.data)))
        names = {name.lower() for name, _ in headers}
        assert not names & {"etag", "last-modified", "content-disposition"}
    assert len(forms) == 1, forms
    headers, (chunks, _) = forms.pop()
    assert chunks == (b"IHDR", b"IDAT", b"IEND")
    assert dict(headers)["Content-Type"] == "image/png"
    assert dict(headers)["Cache-Control"].startswith("private, max-age=")


# Body size


BODY_ENDPOINTS = [
    ("post", "/studies/{slug}/sessions"),
    ("post", "/sessions/{token}/device"),
    ("put", "/sessions/{token}/trials/0"),
    ("post", "/sessions/{token}/responses"),
    ("post", "/sessions/{token}/events"),
    ("post", "/sessions/{token}/complete"),
]


def test_bodies_over_the_limit_are_refused_with_413_and_store_nothing(
    app, client, make_study
):
    study = _study(make_study)
    p = _started(client, study, "P1")
    p.block(0)
    limit = app.config["MAX_CONTENT_LENGTH"]
    padding = "x" * (limit + 1)
    body = json.dumps({"response": "real", "key": padding}).encode()
    before = snapshot(app)
    for method, template in BODY_ENDPOINTS:
        path = API + template.format(slug=study.slug, token=p.token)
        for content_type in ("application/json", "text/plain"):
            answer = getattr(client, method)(path, data=body, content_type=content_type)
            assert answer.status_code == 413, (path, answer.status_code)
            error = answer.json["error"]
            assert error["status"] == 413 and error["code"] == "too_large"
            assert str(limit) in error["message"]
        # No declared length (chunked; gunicorn marks such input terminated):
        # the limit holds while the body is read.
        answer = _chunked(client, method, path, body)
        assert answer.status_code == 413, (path, "chunked", answer.status_code)
        assert answer.json["error"]["code"] == "too_large"
    assert snapshot(app) == before
    # Just under the limit is read (and judged on its content).
    comments = "y" * 5_000
    assert len(json.dumps({"answers": {"comments": comments}})) < limit
    assert p.complete({"comments": comments}).status_code == 409


def _n_events(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Event))


def _chunked(client, method: str, path: str, body: bytes):
    """Send ``body`` without a length, as gunicorn passes a chunked request on."""
    return getattr(client, method)(
        path,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_bodies_over_the_limit_are_refused_even_when_their_start_parses(
    app, client, make_study
):
    study = _study(make_study)
    p = _started(client, study, "P1")
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"kind": "focus"}).encode() + b" " * (limit + 1)
    # Werkzeug stops reading at the limit; the start of this body parses, so
    # only a check for more bytes past the limit refuses it.
    events = _n_events(app)
    answer = _chunked(client, "post", f"{API}/sessions/{p.token}/events", body)
    assert answer.status_code == 413, answer.status_code
    assert _n_events(app) == events
    under = json.dumps({"kind": "focus"}).encode() + b" " * (limit // 2)
    assert (
        _chunked(client, "post", f"{API}/sessions/{p.token}/events", under).status_code
        == 201
    )
