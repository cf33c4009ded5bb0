"""Researcher login: every URL needs it, every POST needs a CSRF token, lock-out."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from researcher_helpers import (
    PASSWORD,
    csrf_token,
    login,
    make_researcher,
    make_session,
    make_study_row,
)
from sqlalchemy import select

from study_server.db import db, utcnow
from study_server.models import Event, Researcher, Session, Study
from study_server.services import accounts
from study_server.views.researcher import PUBLIC_ENDPOINTS

LOGIN = "/researcher/login"


@pytest.fixture
def world(app):
    """A study with one active session and a researcher named alice."""
    study = make_study_row(app)
    session = make_session(app, study)
    make_researcher(app)
    return {"slug": study.slug, "public_id": session.public_id, "table": "trials"}


def researcher_urls(app: Flask, values: dict) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every researcher URL, from the URL map."""
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("researcher."):
                continue
            arguments = {name: values[name] for name in rule.arguments}
            url = app.url_for(rule.endpoint, **arguments)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((rule.endpoint, method, url))
    return out


def state(app: Flask) -> tuple:
    """What a refused request must not change."""
    with app.app_context():
        return (
            db.session.scalars(select(Study.status)).all(),
            db.session.scalars(select(Session.status)).all(),
            db.session.scalar(select(db.func.count()).select_from(Event)),
        )


def test_url_map_covers_every_researcher_page(app, world):
    endpoints = {endpoint for endpoint, _, _ in researcher_urls(app, world)}
    assert endpoints >= {
        "researcher.login",
        "researcher.logout",
        "researcher.index",
        "researcher.study_dashboard",
        "researcher.dashboard_json",
        "researcher.sessions",
        "researcher.study_status",
        "researcher.session_status",
        "researcher.export_table",
        "researcher.export_zip",
        "researcher.plotly_js",
    }


def test_every_researcher_url_refuses_anonymous_requests(app, client, world):
    before = state(app)
    token = csrf_token(client)  # a valid token, so only the login is missing
    checked = 0
    for endpoint, method, url in researcher_urls(app, world):
        if endpoint in PUBLIC_ENDPOINTS:
            continue
        answer = client.open(url, method=method, data={"csrf_token": token})
        if url.endswith(".json"):
            assert answer.status_code == 401, (method, url)
            assert answer.json["error"]["code"] == "unauthorized"
        elif method == "GET":
            assert answer.status_code == 302, (method, url, answer.status_code)
            assert answer.headers["Location"] == f"{LOGIN}?next={url}"
        else:
            assert answer.status_code == 302, (method, url, answer.status_code)
            assert answer.headers["Location"] == LOGIN
        assert b"csrf_token" not in answer.data
        checked += 1
    assert checked >= 10
    assert state(app) == before


def test_anonymous_redirect_returns_to_the_page_after_login(client, world):
    answer = client.get("/researcher/studies/pilot/sessions")
    assert (
        answer.headers["Location"] == f"{LOGIN}?next=/researcher/studies/pilot/sessions"
    )
    token = csrf_token(client)
    answer = client.post(
        LOGIN,
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/researcher/studies/pilot/sessions",
        },
    )
    assert answer.headers["Location"] == "/researcher/studies/pilot/sessions"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/x", "//evil.example/researcher", "/s/pilot"]
)
def test_login_never_redirects_off_the_researcher_pages(client, world, next_url):
    token = csrf_token(client)
    answer = client.post(
        LOGIN,
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrf_token": token,
            "next": next_url,
        },
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/researcher/"


def forged_tokens(app: Flask, client) -> dict[str, str | None]:
    """Tokens that must be refused: missing, junk, signed with another key,
    and a genuine token of another browser's session."""
    other_key = URLSafeTimedSerializer("not-the-secret-key", salt="wtf-csrf-token")
    other_browser = app.test_client()
    return {
        "missing": None,
        "junk": "not-a-token",
        "other key": other_key.dumps("0" * 40),
        "other session": csrf_token(other_browser),
    }


def test_every_post_refuses_a_missing_or_forged_csrf_token(app, client, world):
    login(client)
    before = state(app)
    posts = [
        (endpoint, url)
        for endpoint, method, url in researcher_urls(app, world)
        if method == "POST"
    ]
    assert {e for e, _ in posts} >= {
        "researcher.login",
        "researcher.logout",
        "researcher.study_status",
        "researcher.session_status",
    }
    form = {"action": "pause", "status": "excluded", "reason": "too_fast"}
    form |= {"username": "alice", "password": PASSWORD}
    for name, token in forged_tokens(app, client).items():
        for endpoint, url in posts:
            data = dict(form) if token is None else {**form, "csrf_token": token}
            answer = client.post(url, data=data)
            assert answer.status_code == 400, (name, endpoint, answer.status_code)
            assert b"Form refused" in answer.data
    # Nothing changed, and the researcher is still logged in (logout refused).
    assert state(app) == before
    assert client.get("/researcher/").status_code == 200


def test_a_genuine_token_is_accepted(app, client, world):
    login(client)
    token = csrf_token(client, "/researcher/studies/pilot")
    answer = client.post(
        "/researcher/studies/pilot/status",
        data={"action": "pause", "csrf_token": token},
    )
    assert answer.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Study.status)) == "paused"


def session_cookie(answer) -> str:
    cookies = [
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session=")
    ]
    assert cookies, answer.headers
    return cookies[-1]


def test_login_cookie_is_httponly_samesite_and_secure_only_over_https(app, world):
    plain = login(app.test_client())
    cookie = session_cookie(plain)
    assert plain.headers["Location"] == "/researcher/"
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie

    https = app.test_client()
    token = csrf_token(https, "https://localhost/researcher/login")
    answer = https.post(
        "https://localhost/researcher/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
        headers={"Referer": "https://localhost/researcher/login"},
    )
    assert answer.status_code == 302
    assert "Secure" in session_cookie(answer)


def test_secure_cookie_by_configuration(app, world):
    app.config["SESSION_COOKIE_SECURE"] = True
    assert "Secure" in session_cookie(app.test_client().get(LOGIN))


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "wrong password!", "wrong_password"),
        ("mallory", PASSWORD, "unknown_user"),
    ],
)
def test_failed_login_same_answer_and_audit_log(
    client, world, caplog, username, password, reason
):
    caplog.set_level(logging.INFO, logger="study_server.audit")
    token = csrf_token(client)
    answer = client.post(
        LOGIN, data={"username": username, "password": password, "csrf_token": token}
    )
    assert answer.status_code == 401
    assert b"Wrong username or password." in answer.data
    assert client.get("/researcher/").status_code == 302
    record = caplog.records[-1]
    assert record.name == "study_server.audit"
    assert record.levelname == "WARNING"
    assert f"failed login {username!r}" in record.getMessage()
    assert reason in record.getMessage()


def test_successful_login_is_audited(client, world, caplog):
    caplog.set_level(logging.INFO, logger="study_server.audit")
    login(client)
    messages = [
        r.getMessage() for r in caplog.records if r.name == "study_server.audit"
    ]
    assert any(m.startswith("login 'alice' from") for m in messages)


def test_login_ignores_the_case_of_the_username(client, world, caplog):
    caplog.set_level(logging.INFO, logger="study_server.audit")

    answer = login(client, username="ALICE")

    assert answer.status_code == 302
    assert client.get("/researcher/").status_code == 200
    assert any(r.getMessage().startswith("login 'ALICE' from") for r in caplog.records)


def test_accounts_differing_only_in_case_are_found_by_exact_spelling(app, world):
    # Two such accounts can predate the case-insensitive rule.
    make_researcher(app, "Alice", "a different password")
    make_researcher(app, "kate")
    with app.app_context():
        assert accounts.find_researcher("KATE").username == "kate"
        # The Kelvin sign lowers to an ASCII k, but no username has one.
        assert accounts.find_researcher("\u212aate") is None
        assert accounts.find_researcher("alice").username == "alice"
        assert accounts.find_researcher("Alice").username == "Alice"
        assert accounts.find_researcher("ALICE") is None
        assert accounts.find_researcher("alice\n") is None


@pytest.fixture
def strict_app_config(app_config):
    app_config.update(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_S=600)
    return app_config


def test_lock_out_after_repeated_failures(strict_app_config, app, client, world):
    for _ in range(3):
        assert login(client, password="wrong password!").status_code == 401
    with app.app_context():
        locked = db.session.scalar(select(Researcher.locked_until))
    assert timedelta(seconds=590) < locked - utcnow() <= timedelta(seconds=600)

    # While locked, even the right password gets the same refusal.
    answer = login(client)
    assert answer.status_code == 401
    assert b"Wrong username or password. After 3 failed attempts" in answer.data

    # Once the lock has run out, the right password works and clears the count.
    with app.app_context():
        researcher = db.session.scalar(select(Researcher))
        researcher.locked_until = utcnow() - timedelta(seconds=1)
        researcher.failed_logins = 2
        db.session.commit()
    assert login(client).status_code == 302
    with app.app_context():
        researcher = db.session.scalar(select(Researcher))
        assert (researcher.failed_logins, researcher.locked_until) == (0, None)
        assert researcher.last_login_at is not None


def test_lock_is_not_extended_by_attempts_while_locked(app, world):
    now = utcnow()
    with app.app_context():
        for _ in range(5):
            with pytest.raises(accounts.Unauthorized):
                accounts.authenticate(
                    "alice", "wrong password!", max_failures=5, lockout_s=60, now=now
                )
        first_lock = db.session.scalar(select(Researcher.locked_until))
        later = now + timedelta(seconds=30)
        with pytest.raises(accounts.Unauthorized):
            accounts.authenticate(
                "alice", "wrong password!", max_failures=5, lockout_s=60, now=later
            )
        assert db.session.scalar(select(Researcher.locked_until)) == first_lock
        # After the lock: the right password works.
        after = now + timedelta(seconds=61)
        found = accounts.authenticate(
            "alice", PASSWORD, max_failures=5, lockout_s=60, now=after
        )
        assert found.username == "alice"


def test_logout_ends_the_login(client, world):
    login(client)
    assert client.get("/researcher/").status_code == 200
    token = csrf_token(client, "/researcher/")
    assert (
        client.post("/researcher/logout", data={"csrf_token": token}).status_code == 302
    )
    assert client.get("/researcher/").status_code == 302


def test_a_password_change_ends_open_logins(app, client, world):
    login(client)
    assert client.get("/researcher/").status_code == 200
    with app.app_context():
        accounts.set_password("alice", "another long password")
    assert client.get("/researcher/").status_code == 302


def test_participant_pages_show_no_researcher_data(app, client, world):
    login(client)
    token = csrf_token(client, "/researcher/studies/pilot/sessions")
    secret = "reason-only-researchers-see"
    client.post(
        f"/researcher/studies/pilot/sessions/{world['public_id']}/status",
        data={"status": "excluded", "reason": secret, "csrf_token": token},
    )
    with app.app_context():
        session = db.session.scalar(select(Session))
        external_id = session.participant.external_id
    for query in ({"PROLIFIC_PID": external_id}, {"PROLIFIC_PID": "someone-else"}):
        params = {**query, "STUDY_ID": "s", "SESSION_ID": "x"}
        page = client.get("/s/pilot", query_string=params).get_data(as_text=True)
        assert secret not in page
        assert "/researcher" not in page
        assert "alice" not in page


def test_participant_api_needs_no_csrf_token(app, client, make_study):
    from api_helpers import Participant, small_study

    study = small_study(make_study)
    make_researcher(app)
    login(client)  # a researcher's cookie in the same browser changes nothing
    participant = Participant(client, study, "PID-no-csrf")
    assert participant.start().status_code == 201
    assert participant.device().status_code == 200
    assert participant.event("blur").status_code == 201
