"""Test helpers for the participant path: a :class:`Participant` and table snapshots.

:class:`Participant` is the common actor of the server tests (as flaskr's
``AuthActions`` is for logins): a crowdworker who arrives, starts a session,
does the device check, fetches blocks and answers trials through the Flask
test client, exactly as the browser runner would. Typical use::

    from api_helpers import Participant

    def test_something(app, client, make_study):
        study = make_study(recruitment={"platform": "prolific"})
        p = Participant(client, study, "PID1")
        p.start()                      # POST /sessions; p.token, p.state
        p.device()                     # POST /device (60 Hz by default)
        p.finish(correct=True)         # every block, every trial, then /complete
        assert p.state["status"] == "active"
        assert p.complete().json["status"] == "completed"

Answers that should be right or wrong need the truth, which the API never
gives; :meth:`Participant.truth` reads it from the database (test only).
Every helper returns the Flask test response, so tests can check status
codes and bodies; ``p.state`` holds the last session state.

:func:`small_study` makes a 20-image study quickly (with the ``no_fsync``
fixture). :func:`snapshot` returns every row of the session, trial and participant
tables, for checking that a refused request changed nothing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

API = "/api/v1"

# A desktop browser (Chromium on Linux).
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip ``os.fsync`` while ``make_study`` fills the content store.

    The store syncs every image to disk for crash safety, which is a third
    of the time of a small study's import; a test's temporary folder does not
    need to survive a crash. Use with
    ``pytestmark = pytest.mark.usefixtures("no_fsync")``.
    """
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def small_study(make_study: Any, platform: str = "prolific", **sections: Any) -> Any:
    """A small study for API tests: 2 models, 10 main + 2 practice + 2 checks.

    Few enough images (20) that the import runs without a process pool.
    ``sections`` override study-file tables (``recruitment={...}``...);
    ``models``, ``n_real``, ``n_per_model``... go to ``make_study``.
    """
    factory_args = {
        key: sections.pop(key)
        for key in ("slug", "models", "n_real", "n_per_model", "n_practice", "n_checks")
        if key in sections
    }
    recruitment = {
        "platform": platform,
        "target_per_model": 25,
        "completion_code": "DONE42",
        "screenout_code": "SCREEN7",
    }
    recruitment.update(sections.pop("recruitment", {}))
    return make_study(
        **{"models": ("m1", "m2"), "n_real": 6, "n_per_model": 5, **factory_args},
        recruitment=recruitment,
        **sections,
    )


def platform_params(platform: str, external_id: str) -> dict[str, str]:
    """Query parameters a platform sends for the participant ``external_id``."""
    if platform == "prolific":
        return {
            "PROLIFIC_PID": external_id,
            "STUDY_ID": "study123",
            "SESSION_ID": f"sess-{external_id}",
        }
    if platform == "mturk":
        return {
            "workerId": external_id,
            "assignmentId": f"A{external_id}",
            "hitId": "HIT42",
            "turkSubmitTo": "https://workersandbox.mturk.com",
        }
    return {"pid": external_id}


def response_body(response: str = "real", **fields: Any) -> dict[str, Any]:
    """A complete, valid response payload; ``fields`` override its values."""
    body = {
        "response": response,
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
    body.update(fields)
    return body


class Participant:
    """A participant driving the API through ``client``.

    Parameters
    ----------
    client : FlaskClient
        The test client (one per thread when used concurrently).
    study : Study
        The (detached) study from ``make_study``; its platform decides the
        parameters sent.
    external_id : str
        The participant's id on the platform.
    """

    def __init__(self, client: FlaskClient, study: Any, external_id: str = "P1"):
        self.client = client
        self.study = study
        self.slug = study.slug
        self.platform = study.settings["recruitment"]["platform"]
        self.external_id = external_id
        self.params = platform_params(self.platform, external_id)
        self.token: str | None = None
        self.state: dict[str, Any] | None = None
        self.frame_interval_ms = 1000 / 60

    # Pages

    def arrive(self, user_agent: str = DESKTOP_UA, **params: str) -> Any:
        """GET the arrival page with the platform's parameters (overridable)."""
        query = {**self.params, **params}
        return self.client.get(
            f"/s/{self.slug}",
            query_string=query,
            headers={"User-Agent": user_agent},
        )

    # API

    def start(self, consent: bool = True, **body: Any) -> Any:
        """POST /studies/<slug>/sessions; on success set ``token`` and ``state``."""
        payload = {
            "platform": self.platform,
            "params": self.params,
            "consent": consent,
            "window": {"width": 1280, "height": 800},
            "screen": {"width": 1920, "height": 1080},
            "device_pixel_ratio": 1,
            **body,
        }
        answer = self.client.post(
            f"{API}/studies/{self.slug}/sessions",
            json=payload,
            headers={"User-Agent": DESKTOP_UA},
        )
        if answer.status_code in (200, 201):
            self.state = answer.json
            self.token = answer.json["token"]
        return answer

    def refresh(self) -> Any:
        """GET the session state into ``state``."""
        answer = self.client.get(f"{API}/sessions/{self.token}")
        if answer.status_code == 200:
            self.state = answer.json
        return answer

    def device(
        self, frame_interval_ms: float | None = None, n_frames: int = 120
    ) -> Any:
        """POST the device check (60 Hz unless ``frame_interval_ms`` is given)."""
        if frame_interval_ms is not None:
            self.frame_interval_ms = frame_interval_ms
        return self.client.post(
            f"{API}/sessions/{self.token}/device",
            json={"frame_interval_ms": self.frame_interval_ms, "n_frames": n_frames},
        )

    def block(self, n: int) -> Any:
        """GET block ``n``."""
        return self.client.get(f"{API}/sessions/{self.token}/blocks/{n}")

    def put(self, position: int, body: Any = None, **kwargs: Any) -> Any:
        """PUT a raw response body (any JSON, or ``data=`` bytes) to ``position``."""
        url = f"{API}/sessions/{self.token}/trials/{position}"
        if "data" in kwargs:
            return self.client.put(url, **kwargs)
        return self.client.put(url, json=body, **kwargs)

    def truth(self, position: int) -> bool:
        """Whether the image at ``position`` is real (read from the database)."""
        from study_server.db import db
        from study_server.models import Session, Trial

        app: Flask = self.client.application
        with app.app_context():
            return db.session.scalar(
                select(Trial.is_real)
                .join(Session)
                .where(Session.token == self.token, Trial.position == position)
            )

    def answer(
        self, position: int, correct: bool = True, frames: int = 30, **fields: Any
    ) -> Any:
        """Answer the trial at ``position``, right or wrong as asked."""
        real = self.truth(position) == correct
        fields = {"intended_frames": frames, "achieved_frames": frames, **fields}
        body = response_body("real" if real else "generated", **fields)
        return self.put(position, body)

    def answer_block(self, n: int, correct: bool = True) -> list[Any]:
        """Fetch block ``n`` and answer every trial in it."""
        served = self.block(n)
        assert served.status_code == 200, served.json
        return [
            self.answer(t["position"], correct, t["exposure_frames"])
            for t in served.json["trials"]
        ]

    def finish(self, correct: bool = True) -> None:
        """Answer every block in order (the session is then ready to complete)."""
        self.refresh()
        for block in self.state["blocks"]:
            self.answer_block(block["block"], correct)
        self.refresh()

    def event(self, kind: str, **body: Any) -> Any:
        """POST a client event."""
        return self.client.post(
            f"{API}/sessions/{self.token}/events", json={"kind": kind, **body}
        )

    def complete(self, answers: dict[str, str] | None = None) -> Any:
        """POST /complete."""
        body = {} if answers is None else {"answers": answers}
        return self.client.post(f"{API}/sessions/{self.token}/complete", json=body)


def without_random_parts(document: Any) -> str:
    """JSON text of ``document`` with tokens and image URLs blanked.

    Random base64 text contains short words such as ``m1`` by chance, so
    tests that look for leaked names search this text instead.
    """
    import json

    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: "-" if k in ("token", "image_url") else blank(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [blank(v) for v in value]
        return value

    return json.dumps(blank(document))


def snapshot(app: Flask) -> dict[str, list[tuple]]:
    """Every row of the session, trial and participant tables, in id order."""
    from study_server.db import db
    from study_server.models import Participant as ParticipantRow
    from study_server.models import Session, Trial

    out = {}
    with app.app_context():
        for model in (Session, Trial, ParticipantRow):
            columns = [c for c in model.__table__.columns]
            rows = db.session.execute(
                select(*columns).order_by(model.__table__.c.id)
            ).all()
            out[model.__tablename__] = [tuple(row) for row in rows]
        db.session.rollback()
    return out
