"""Factories for researcher-side tests: rows written straight to the database.

In the style of CTFd's test helpers: each ``make_*`` writes one kind of row
with sensible defaults and returns it detached (attributes loaded), so tests
state only what matters to them. Studies made here have fake stimulus digests
and no image files; tests that need the participant API use ``make_study``
from conftest.py instead.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from study_server.db import db, utcnow
from study_server.models import (
    Event,
    Participant,
    Researcher,
    Session,
    Stimulus,
    Study,
    Trial,
)
from study_server.studyfile import StudySettings

PASSWORD = "correct horse battery"
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

_counter = itertools.count(1)


def _detached(obj: Any) -> Any:
    db.session.refresh(obj)
    db.session.expunge(obj)
    return obj


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def settings(slug: str, **sections: Any) -> dict[str, Any]:
    """Validated study settings, as a loaded study stores them."""
    data: dict[str, Any] = {
        "slug": slug,
        "title": f"Study {slug}",
        "dataset": "testset",
        "images": {"real": "images/real", "generated": "images/generated"},
    }
    data.update(sections)
    return StudySettings.model_validate(data).model_dump(mode="json")


def make_study_row(
    app: Flask,
    slug: str = "pilot",
    *,
    models: tuple[str, ...] = ("m1", "m2"),
    design: str = "between",
    status: str = "open",
    n_real: int = 6,
    n_per_model: int = 6,
    title: str | None = None,
    **sections: Any,
) -> Study:
    """A study with fake stimuli (no files): real, generated and check images."""
    sections.setdefault("recruitment", {"target_per_model": 5})
    stored = settings(slug, design=design, **sections)
    with app.app_context():
        study = Study(
            slug=slug,
            title=title or stored["title"],
            dataset=stored["dataset"],
            design=design,
            status=status,
            settings=stored,
            settings_digest=digest(slug),
        )
        db.session.add(study)
        db.session.flush()
        sources = [("real", True, "main")] * n_real
        for model in models:
            sources += [(model, False, "main")] * n_per_model
        sources += [("real", True, "check"), (models[0], False, "check")]
        for i, (source, is_real, role) in enumerate(sources):
            db.session.add(
                Stimulus(
                    study_id=study.id,
                    digest=digest(f"{slug}-{source}-{role}-{i}"),
                    source=source,
                    is_real=is_real,
                    role=role,
                    width=32,
                    height=32,
                    original_path=f"images/{source}/{i}.png",
                )
            )
        db.session.commit()
        return _detached(study)


def make_participant(
    app: Flask, external_id: str | None = None, platform: str = "prolific"
) -> Participant:
    with app.app_context():
        participant = Participant(
            platform=platform,
            external_id=external_id or f"PID{next(_counter):021d}",
        )
        db.session.add(participant)
        db.session.commit()
        return _detached(participant)


def make_session(
    app: Flask,
    study: Study,
    *,
    status: str = "active",
    model: str | None = "m1",
    participant: Participant | None = None,
    external_id: str | None = None,
    platform: str = "prolific",
    started_at: datetime | None = None,
    last_seen_at: datetime | None = None,
    completed_at: datetime | None = None,
    **fields: Any,
) -> Session:
    """A session of ``study``; a participant is made for it unless given.

    It starts 10 minutes ago unless ``started_at`` says otherwise, so that it is
    not abandoned for inactivity by the dashboard's clock.
    """
    started_at = started_at or utcnow() - timedelta(minutes=10)
    if participant is None:
        participant = make_participant(app, external_id, platform)
    with app.app_context():
        session = Session(
            study_id=study.id,
            participant_id=participant.id,
            status=status,
            model=model,
            started_at=started_at,
            last_seen_at=last_seen_at or started_at,
            completed_at=completed_at,
            **fields,
        )
        db.session.add(session)
        db.session.commit()
        return _detached(session)


def make_trials(
    app: Flask,
    session: Session,
    answers: list[dict[str, Any] | None],
    *,
    kind: str = "main",
    first_position: int = 0,
) -> list[Trial]:
    """Trials of ``session``, one per item of ``answers``.

    An item is ``None`` for an unanswered trial, or a dict with ``is_real``,
    ``response`` (``real``/``generated``) and any other Trial column. The
    stimulus is one of the study's images of the right kind.
    """
    with app.app_context():
        study_session = db.session.get(Session, session.id)
        stimuli = db.session.query(Stimulus).filter_by(study_id=study_session.study_id)
        real = [s for s in stimuli if s.is_real]
        fake = [
            s
            for s in stimuli
            if not s.is_real and (s.source == session.model or session.model is None)
        ]
        trials = []
        for i, answer in enumerate(answers):
            answer = dict(answer or {})
            is_real = answer.pop("is_real", i % 2 == 0)
            pool = real if is_real else fake
            stimulus = pool[i % len(pool)]
            response = answer.pop("response", None)
            trial = Trial(
                session_id=session.id,
                stimulus_id=stimulus.id,
                position=first_position + i,
                block=(first_position + i) // 10,
                kind=kind,
                source=stimulus.source,
                is_real=is_real,
                response=response,
                correct=None if response is None else (response == "real") == is_real,
                served_at=T0 + timedelta(seconds=i),
                responded_at=None
                if response is None
                else T0 + timedelta(seconds=i + 1),
                **answer,
            )
            db.session.add(trial)
            trials.append(trial)
        db.session.commit()
        return [_detached(trial) for trial in trials]


def make_event(
    app: Flask,
    study: Study,
    kind: str,
    *,
    session: Session | None = None,
    actor: str = "participant",
    data: dict[str, Any] | None = None,
    created_at: datetime = T0,
) -> Event:
    with app.app_context():
        event = Event(
            study_id=study.id,
            session_id=session.id if session else None,
            kind=kind,
            actor=actor,
            data=data or {},
            created_at=created_at,
        )
        db.session.add(event)
        db.session.commit()
        return _detached(event)


# Test accounts use a cheap hash (the app's default, scrypt, takes about half a
# second per login on a small machine); the login code accepts every
# werkzeug hash method, and the CLI tests check the real default.
FAST_HASH = "pbkdf2:sha256:1000"


def make_researcher(
    app: Flask, username: str = "alice", password: str = PASSWORD
) -> Researcher:
    with app.app_context():
        researcher = Researcher(
            username=username,
            password_hash=generate_password_hash(password, method=FAST_HASH),
        )
        db.session.add(researcher)
        db.session.commit()
        return _detached(researcher)


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, url: str = "/researcher/login") -> str:
    """Load ``url`` and return the CSRF token of its first form."""
    page = client.get(url).get_data(as_text=True)
    found = _TOKEN.search(page)
    if found is None:
        raise LookupError(f"no CSRF token on {url}")
    return found.group(1)


def login(
    client: FlaskClient, username: str = "alice", password: str = PASSWORD
) -> Any:
    """Log in through the login form, as a browser does."""
    token = csrf_token(client)
    return client.post(
        "/researcher/login",
        data={"username": username, "password": password, "csrf_token": token},
    )
