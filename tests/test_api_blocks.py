"""Blocks and stimulus URLs: order, opacity, signatures, identical headers."""

from __future__ import annotations

import base64
import io
import time
from datetime import timedelta

import pytest
from api_helpers import (
    API,
    Participant,
    no_fsync,
    small_study,
    snapshot,
    without_random_parts,
)
from PIL import Image
from sqlalchemy import select

from study_server.db import db, utcnow
from study_server.models import Session, Stimulus, Trial

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark


def _served(app, token):
    with app.app_context():
        return dict(
            db.session.execute(
                select(Trial.position, Trial.served_at)
                .join(Session)
                .where(Session.token == token)
            ).all()
        )


def test_blocks_are_served_in_order_and_marked_once(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()

    early = p.block(0)
    assert early.status_code == 422
    assert early.json["error"]["field"] == "device"
    p.device()

    asked_at = utcnow()
    block0 = p.block(0)
    assert block0.status_code == 200
    assert block0.json["block"] == 0 and block0.json["kind"] == "practice"
    assert [t["position"] for t in block0.json["trials"]] == [0, 1]
    served = _served(app, p.token)
    assert served[0] is not None and served[2] is None
    # Stored as aware UTC, at the time of the request; the session was seen then.
    assert served[0] == served[1]
    assert timedelta(0) <= served[0] - asked_at < timedelta(seconds=30)
    with app.app_context():
        seen = db.session.scalar(
            select(Session.last_seen_at).where(Session.token == p.token)
        )
    assert seen == served[0]

    later = p.block(1)
    assert later.status_code == 422
    assert "finish block 0 first" in later.json["error"]["message"]
    assert p.block(7).status_code == 404
    assert p.block(10**15).status_code == 404

    # Fetching again (a reload) gives the same trials and keeps the first time.
    again = p.block(0)
    assert [t["position"] for t in again.json["trials"]] == [0, 1]
    assert _served(app, p.token)[0] == served[0]

    p.answer_block(0)
    block1 = p.block(1).json
    assert block1["kind"] == "main"
    assert {t["kind"] for t in block1["trials"]} == {"main"}
    positions = [t["position"] for t in block1["trials"]]
    assert positions == list(range(2, 2 + len(positions)))
    first = block1["trials"][0]
    assert set(first) == {
        "position", "kind", "image_url", "fixation_ms", "exposure_frames", "mask_ms",
    }  # fmt: skip
    assert (first["fixation_ms"], first["exposure_frames"], first["mask_ms"]) == (
        500,
        30,
        0,
    )


def test_blocks_hide_which_trials_are_checks_and_what_any_image_is(
    app, client, make_study
):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()
    p.device()
    with app.app_context():
        digests = set(db.session.scalars(select(Stimulus.digest)))
        paths = set(db.session.scalars(select(Stimulus.original_path)))
    texts = [without_random_parts(p.refresh().json)]
    for block in p.state["blocks"]:
        served = p.block(block["block"])
        texts.append(without_random_parts(served.json))
        for trial in served.json["trials"]:
            p.answer(trial["position"])
    for i, text in enumerate(texts):
        # The state names the response keys ("generated": "j"); blocks don't.
        words = ["check", "source", "is_real", "m1", "m2", "img_", "generated"]
        for secret in words[: 6 if i == 0 else 7]:
            assert secret not in text, secret
        assert not any(d[:12] in text for d in digests)
        assert not any(path.rsplit("/", 1)[-1] in text for path in paths)


def _image_urls(p):
    p.start()
    p.device()
    return {t["position"]: t["image_url"] for t in p.block(0).json["trials"]}


def test_stimulus_urls_are_signed_per_session_and_trial(app, client, make_study):
    # Two practice images only, so both sessions see the same two images.
    study = small_study(make_study, n_practice=2)
    urls_a = _image_urls(Participant(client, study, "A"))
    urls_b = _image_urls(Participant(client, study, "B"))

    bytes_a = {client.get(u).data for u in urls_a.values()}
    bytes_b = {client.get(u).data for u in urls_b.values()}
    assert bytes_a == bytes_b  # the same images...
    assert not set(urls_a.values()) & set(urls_b.values())  # ...at other URLs
    with app.app_context():
        digests = list(db.session.scalars(select(Stimulus.digest)))
    for url in [*urls_a.values(), *urls_b.values()]:
        assert url.startswith(f"{API}/stimuli/")
        # payload.timestamp.signature; the payload is the trial's row id alone.
        parts = url.removeprefix(f"{API}/stimuli/").split(".")
        assert len(parts) == 3
        payload = parts[0]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        assert decoded.isdigit()
        assert not any(d[:8] in url for d in digests)

    url = urls_a[0]
    opaque = url.removeprefix(f"{API}/stimuli/")
    tampered = [
        f"{API}/stimuli/{opaque[:-2]}xx",
        f"{API}/stimuli/{opaque.replace(opaque[0], 'Z', 1)}",
        f"{API}/stimuli/{'A' * 300}",
        f"{API}/stimuli/not-signed",
    ]
    for bad in tampered:
        answer = client.get(bad)
        assert answer.status_code == 404, bad
        assert answer.json["error"]["code"] == "not_found"


def test_stimulus_urls_expire(app, client, make_study, monkeypatch):
    study = small_study(make_study)
    url = _image_urls(Participant(client, study, "A"))[0]
    assert client.get(url).status_code == 200
    max_age = app.config["STIMULUS_URL_MAX_AGE_S"]
    later = time.time() + max_age + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get(url).status_code == 404


def test_every_image_has_the_same_headers_and_format(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "A")
    p.start()
    p.device()
    seen = {}
    for block in p.state["blocks"]:
        for trial in p.block(block["block"]).json["trials"]:
            image = client.get(trial["image_url"])
            assert image.status_code == 200
            seen[p.truth(trial["position"])] = image
            p.answer(trial["position"])
    real, generated = seen[True], seen[False]
    for image in (real, generated):
        headers = dict(image.headers)
        assert set(headers) >= {"Content-Type", "Content-Length", "Cache-Control"}
        for leaky in ("ETag", "Last-Modified", "Content-Disposition", "Set-Cookie"):
            assert leaky not in headers
        assert headers["Content-Type"] == "image/png"
        assert headers["Cache-Control"].startswith("private, max-age=")
        decoded = Image.open(io.BytesIO(image.data))
        assert (decoded.format, decoded.mode, decoded.size) == ("PNG", "RGB", (32, 32))
        assert not decoded.info.keys() - {"dpi"}
    assert {k: v for k, v in real.headers if k != "Content-Length"} == {
        k: v for k, v in generated.headers if k != "Content-Length"
    }


def test_an_image_url_cannot_be_made_for_an_unserved_trial(app, client, make_study):
    from study_server.services.signing import StimulusSigner

    study = small_study(make_study)
    p = Participant(client, study, "A")
    p.start()
    p.device()
    with app.app_context():
        trial_id = db.session.scalar(select(Trial.id).where(Trial.position == 5))
    # Even a correctly signed id gets nothing before its block is served.
    signer = StimulusSigner(app.config["SECRET_KEY"], 3600)
    before = snapshot(app)
    assert client.get(f"{API}/stimuli/{signer.sign(trial_id)}").status_code == 404
    # A value signed with another key, or another salt, is refused too.
    other_key = StimulusSigner("another-key", 3600).sign(trial_id)
    assert client.get(f"{API}/stimuli/{other_key}").status_code == 404
    assert snapshot(app) == before
