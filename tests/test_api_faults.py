"""A database that is briefly unreachable answers 503 with Retry-After, not 500."""

from __future__ import annotations

import pytest
from api_helpers import (  # noqa: F401  (no_fsync is a fixture)
    Participant,
    no_fsync,
    response_body,
    small_study,
    snapshot,
)
from sqlalchemy.exc import OperationalError

from study_server.services import trials

pytestmark = pytest.mark.usefixtures("no_fsync")


def lost_connection(*args, **kwargs):
    raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))


def break_response_path(patch):
    # Both ways an answer reaches the database: PostgreSQL's one-statement
    # store and the general path.
    patch.setattr(trials, "_record_fast", lost_connection)
    patch.setattr(trials, "_response_row", lost_connection)


def test_lost_connection_is_503_retry_and_stores_nothing(app, started, monkeypatch):
    before = snapshot(app)
    break_response_path(monkeypatch)

    answer = started.put(0, response_body())

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json["error"]["code"] == "database_unavailable"
    assert "retry" in answer.json["error"]["message"]
    assert snapshot(app) == before


def test_the_retry_is_stored_once(app, started, monkeypatch):
    with monkeypatch.context() as patch:
        break_response_path(patch)
        assert started.put(0, response_body()).status_code == 503

    stored = started.put(0, response_body())
    replay = started.put(0, response_body())

    assert stored.status_code == 200 and stored.json["replay"] is False
    assert replay.status_code == 200 and replay.json["replay"] is True


def test_pages_say_retry_too(client, monkeypatch):
    monkeypatch.setattr("study_server.views.participant.arrival_page", lost_connection)
    answer = client.get("/s/pilot?pid=abc")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert b"Please retry" in answer.data
