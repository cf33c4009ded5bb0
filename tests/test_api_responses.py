"""Responses: grading, idempotency, refusals, screen-out and completion (DESIGN §6)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from api_helpers import (
    API,
    Participant,
    no_fsync,
    response_body,
    small_study,
    snapshot,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from study_server.db import db
from study_server.models import Event, Session, Trial
from study_server.services.grading import RESPONSE_FIELDS

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark


def _trial(app, token, position):
    with app.app_context():
        trial = db.session.scalar(
            select(Trial)
            .join(Session)
            .where(Session.token == token, Trial.position == position)
        )
        db.session.expunge(trial)
        return trial


def _session(app, token):
    with app.app_context():
        session = db.session.scalar(select(Session).where(Session.token == token))
        db.session.expunge(session)
        return session


def _positions(state, kind):
    return [
        b["first"] + i
        for b in state["blocks"]
        if b["kind"] == kind
        for i in range(b["size"])
    ]


def _check_positions(app, token):
    with app.app_context():
        return list(
            db.session.scalars(
                select(Trial.position)
                .join(Session)
                .where(Session.token == token, Trial.kind == "check")
                .order_by(Trial.position)
            )
        )


def test_a_response_is_graded_and_stored_with_its_timing(app, started):
    p = started
    right = p.answer(0, correct=True)
    wrong = p.answer(1, correct=False)

    assert right.status_code == 200 and wrong.status_code == 200
    assert right.json == {
        "position": 0,
        "stored": True,
        "replay": False,
        "n_answered": 1,
        "feedback": {"correct": True},
        "screened_out": False,
        "completion": None,
        "next_exposure_frames": None,
    }
    assert wrong.json["feedback"] == {"correct": False}
    trial = _trial(app, p.token, 0)
    assert trial.correct is True
    assert trial.response == ("real" if trial.is_real else "generated")
    assert (trial.rt_ms, trial.exposure_ms) == (812.4, 500.4)
    assert (trial.intended_frames, trial.achieved_frames) == (30, 30)
    assert (trial.onset_ms, trial.offset_ms) == (123456.7, 123957.1)
    assert trial.frame_interval_ms == 16.68
    assert trial.visibility_lost is False and trial.focus_lost is False
    assert trial.timing_invalid is False
    assert len(trial.payload_digest) == 64
    assert trial.responded_at.utcoffset().total_seconds() == 0
    assert _trial(app, p.token, 1).correct is False
    assert _session(app, p.token).n_answered == 2


def test_main_trials_get_no_feedback_and_wrong_frames_are_flagged(app, started):
    p = started
    p.answer_block(0)
    first_main = p.block(1).json["trials"][0]["position"]

    answer = p.answer(first_main, achieved_frames=31)

    assert answer.json["feedback"] is None
    assert _trial(app, p.token, first_main).timing_invalid is True


def test_storing_a_response_is_one_short_transaction(app, started):
    # The response path is the hot one (hundreds per second in a paid study).
    # PostgreSQL: one autocommitted statement locks the session, stores the
    # answer and counts it; a replay finds nothing to store there and is read
    # by the general path. SQLite: the session by token (locked by BEGIN
    # IMMEDIATE) joined to its trial, then two updates.
    from sqlalchemy import event

    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    with app.app_context():
        engine = db.engine
        dialect = engine.dialect.name
    event.listen(engine, "before_cursor_execute", record)
    try:
        stored = started.put(0, response_body())
        replayed = started.put(0, response_body())
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert stored.status_code == 200 and replayed.json["replay"] is True
    assert replayed.json == {**stored.json, "replay": True}
    begins = [s for s in statements if s == "BEGIN"]  # SQLite's BEGIN IMMEDIATE
    if dialect == "postgresql":
        assert statements == [
            "WITH",  # the response, in one statement
            "WITH", "SELECT",  # the replay: nothing stored, then read
        ]  # fmt: skip
        return
    assert [s for s in statements if s != "BEGIN"] == [
        "SELECT", "UPDATE", "UPDATE",  # the response
        "SELECT",  # the replay: nothing written
    ]  # fmt: skip
    assert len(begins) in (0, 2)


def test_a_replay_is_acknowledged_and_stored_once(app, started):
    p = started
    body = response_body("real")
    first = p.put(0, body)
    stored = _trial(app, p.token, 0)
    before = snapshot(app)

    # The same answer again, sent later by another key press: still a replay.
    again = p.put(0, {**body, "client_sent_at": "2026-12-03T12:00:09Z", "key": "j"})

    assert first.status_code == 200 and first.json["replay"] is False
    assert again.status_code == 200
    assert again.json == {**first.json, "replay": True}
    assert snapshot(app) == before
    assert _trial(app, p.token, 0).responded_at == stored.responded_at


def test_a_different_answer_to_an_answered_trial_is_a_conflict(app, started):
    p = started
    p.put(0, response_body("real"))
    before = snapshot(app)
    for changed in (
        response_body("generated"),
        response_body("real", rt_ms=900),
        response_body("real", achieved_frames=29),
        response_body("real", visibility_lost=True),
    ):
        answer = p.put(0, changed)
        assert answer.status_code == 409, changed
        assert answer.json["error"]["code"] == "conflict"
        assert answer.json["error"]["field"] == "response"
    assert snapshot(app) == before


def test_unknown_and_unserved_trials(app, started):
    p = started
    before = snapshot(app)
    main = _positions(p.state, "main")

    unknown = p.put(14, response_body())
    huge = p.put(10**12, response_body())
    unserved = p.put(main[0], response_body())

    assert unknown.status_code == 404 and unknown.json["error"]["field"] == "position"
    assert "0 to 13" in unknown.json["error"]["message"]
    assert huge.status_code == 404
    assert unserved.status_code == 422
    assert "fetch block 1" in unserved.json["error"]["message"]
    assert p.put(-1, response_body()).status_code == 404
    assert snapshot(app) == before


def test_a_token_touches_only_its_own_session(app, client, started):
    p = started
    other = Participant(client, p.study, "PID2")
    other.start()
    other.device()
    other.block(0)
    before = _trial(app, p.token, 0)

    answer = other.put(0, response_body("real"))

    assert answer.status_code == 200
    assert _trial(app, p.token, 0).response is None
    assert _trial(app, other.token, 0).response == "real"
    assert before.response is None
    forged = client.put(f"{API}/sessions/{'A' * 43}/trials/0", json=response_body())
    assert forged.status_code == 401


OK = response_body("real")
BAD_BODIES = [
    # (what, raw body, status, field or None, text the message must contain)
    ("malformed JSON", b'{"response": "real",', 400, None, "not valid JSON"),
    ("not UTF-8", b'{"response": "\xff"}', 400, None, "UTF-8"),
    ("empty body", b"", 400, None, "not valid JSON"),
    ("nested too deep", b"[" * 40_000, 400, None, "nested"),
    ("an array", [OK], 400, "body", "JSON object"),
    ("a string", "real", 400, "body", "JSON object"),
    ("null", None, 400, "body", "JSON object"),
    ("unknown field", {**OK, "label": "real"}, 400, "label", "unknown field"),
    ("missing response", {k: v for k, v in OK.items() if k != "response"}, 400,
     "response", "required"),
    ("missing rt", {k: v for k, v in OK.items() if k != "rt_ms"}, 400, "rt_ms",
     "required"),
    ("rt as text", {**OK, "rt_ms": "fast"}, 400, "rt_ms", "a number"),
    ("rt null", {**OK, "rt_ms": None}, 400, "rt_ms", "null"),
    ("rt as boolean", {**OK, "rt_ms": True}, 400, "rt_ms", "a number"),
    ("rt as object", {**OK, "rt_ms": {"value": 800}}, 400, "rt_ms", "a number"),
    ("rt as array", {**OK, "rt_ms": [800]}, 400, "rt_ms", "a number"),
    ("response as number", {**OK, "response": 1}, 400, "response", "'real'"),
    ("response as object", {**OK, "response": {"is": "real"}}, 400, "response",
     "'generated'"),
    ("frames fractional", {**OK, "intended_frames": 30.5}, 400, "intended_frames",
     "an integer"),
    ("frames as boolean", {**OK, "achieved_frames": False}, 400, "achieved_frames",
     "an integer"),
    ("flag as text", {**OK, "visibility_lost": "no"}, 400, "visibility_lost",
     "true or false"),
    ("position differs", {**OK, "position": 1}, 400, "position", "URL says 0"),
    ("response maybe", {**OK, "response": "maybe"}, 422, "response", "'real'"),
    ("negative rt", {**OK, "rt_ms": -5}, 422, "rt_ms", "from 0"),
    ("rt over 10 minutes", {**OK, "rt_ms": 600_000}, 422, "rt_ms", "below 600000"),
    ("frames over limit", {**OK, "achieved_frames": 10_001}, 422, "achieved_frames",
     "0 to 10000"),
    ("negative frames", {**OK, "intended_frames": -1}, 422, "intended_frames",
     "0 to 10000"),
    ("negative onset", {**OK, "onset_ms": -0.1}, 422, "onset_ms", "from 0"),
    ("sent at without offset", {**OK, "client_sent_at": "2026-12-03T12:00:00"}, 422,
     "client_sent_at", "offset"),
    ("sent at not a time", {**OK, "client_sent_at": "yesterday"}, 422,
     "client_sent_at", "ISO-8601"),
    ("key too long", {**OK, "key": "f" * 33}, 422, "key", "at most 32"),
]  # fmt: skip
NON_FINITE = [
    ("NaN rt", b'"rt_ms": NaN', "rt_ms"),
    ("Infinity rt", b'"rt_ms": Infinity', "rt_ms"),
    ("-Infinity exposure", b'"exposure_ms": -Infinity', "exposure_ms"),
    ("overflowing rt", b'"rt_ms": 1e400', "rt_ms"),
    ("NaN frame interval", b'"frame_interval_ms": NaN', "frame_interval_ms"),
]


def _raw(body):
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def test_bad_response_bodies_get_a_4xx_naming_the_problem_and_change_nothing(
    app, started
):
    p = started
    before = snapshot(app)
    cases = list(BAD_BODIES)
    for what, literal, field in NON_FINITE:
        text = json.dumps({k: v for k, v in OK.items() if k != field})
        cases.append((what, text[:-1].encode() + b", " + literal + b"}", 422, field,
                      "finite"))  # fmt: skip
    for what, body, status, field, text in cases:
        for content_type in ("application/json", "text/plain"):
            answer = p.put(0, data=_raw(body), content_type=content_type)
            assert answer.status_code == status, (what, answer.get_data(as_text=True))
            error = answer.json["error"]
            assert error["status"] == status, what
            assert error["field"] == field, (what, error)
            assert text in error["message"], (what, error["message"])
    assert snapshot(app) == before
    # The same trial still takes a good answer afterwards.
    assert p.put(0, OK).status_code == 200


def test_oversize_bodies_are_413_in_the_envelope(app, started):
    p = started
    before = snapshot(app)
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = json.dumps({**OK, "key": "x" * limit}).encode()

    answer = p.put(0, data=big, content_type="application/json")
    batch = p.client.post(
        f"{API}/sessions/{p.token}/responses", data=big, content_type="text/plain"
    )

    # A chunked body has no Content-Length; it is cut off at the limit.
    chunked = p.client.put(
        f"{API}/sessions/{p.token}/trials/0",
        input_stream=io.BytesIO(json.dumps(OK).encode() + b" " * limit),
        headers={"Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    for refused in (answer, batch, chunked):
        assert refused.status_code == 413
        assert refused.json["error"]["code"] == "too_large"
        assert str(limit) in refused.json["error"]["message"]
    assert snapshot(app) == before


def test_failing_too_many_checks_screens_out_with_the_screenout_code(
    app, client, make_study
):
    study = small_study(make_study)  # 2 checks, 1 may be failed
    p = Participant(client, study, "PID1")
    p.start()
    p.device()
    checks = _check_positions(app, p.token)
    acks = {}
    for block in p.state["blocks"]:
        for trial in p.block(block["block"]).json["trials"]:
            position = trial["position"]
            acks[position] = p.answer(position, correct=position not in checks)
            if position == checks[1]:
                break
        if checks[1] in acks:
            break
    first, second = acks[checks[0]], acks[checks[1]]
    assert first.json["screened_out"] is False
    assert all(a.json["screened_out"] is False for a in acks.values() if a != second)

    expected = {
        "status": "screened_out",
        "code": "SCREEN7",
        "url": "https://app.prolific.com/submissions/complete?cc=SCREEN7",
        "mturk": None,
    }
    assert second.status_code == 200
    assert second.json["screened_out"] is True
    assert second.json["completion"] == expected
    session = _session(app, p.token)
    assert session.status == "screened_out"
    assert session.checks_failed == 2
    assert session.exclusion_reason.startswith("failed_checks: 2 of 2")
    # The failing answer can be retried (a lost acknowledgement); others refused.
    retried = p.answer(checks[1], correct=False)
    assert retried.json == {**second.json, "replay": True}
    assert retried.json["completion"] == expected
    refused = p.answer(max(acks) + 1) if max(acks) < 13 else p.device()
    assert refused.status_code == 403
    assert "screened out" in refused.json["error"]["message"]
    assert p.complete().json == expected
    assert p.refresh().json["completion"] == expected
    with app.app_context():
        [event] = db.session.scalars(select(Event).where(Event.kind == "screened_out"))
        assert "failed_checks" in event.data["reason"]


def test_completion_only_when_every_trial_is_stored_and_always_the_same(
    app, client, make_study
):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()
    p.device()
    p.answer_block(0)
    before = snapshot(app)

    early = p.complete()

    assert early.status_code == 409
    assert early.json["error"]["missing"] == list(range(2, 14))
    assert "12 of 14" in early.json["error"]["message"]
    assert snapshot(app) == before

    p.finish()
    done = p.complete({"comments": "Schön, danke – 谢谢"})
    expected = {
        "status": "completed",
        "code": "DONE42",
        "url": "https://app.prolific.com/submissions/complete?cc=DONE42",
        "mturk": None,
    }
    assert done.status_code == 200 and done.json == expected
    assert p.complete().json == expected
    assert p.complete({"comments": "again"}).json == expected
    assert p.refresh().json["completion"] == expected
    assert Participant(client, study, "PID1").start().json["completion"] == expected
    session = _session(app, p.token)
    assert session.status == "completed"
    assert session.answers == {"comments": "Schön, danke – 谢谢"}
    assert session.completed_at.utcoffset().total_seconds() == 0


def test_a_replay_after_completion_carries_the_completion(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()
    p.device()
    frames = p.block(0).json["trials"][0]["exposure_frames"]
    first = p.answer(0, correct=True, frames=frames)
    p.finish()
    before_completion = p.answer(0, correct=True, frames=frames)
    done = p.complete()
    before = snapshot(app)

    replay = p.answer(0, correct=True, frames=frames)

    assert first.json["completion"] is None
    assert before_completion.json == {**first.json, "replay": True, "n_answered": 14}
    assert done.json == {
        "status": "completed",
        "code": "DONE42",
        "url": "https://app.prolific.com/submissions/complete?cc=DONE42",
        "mturk": None,
    }
    assert replay.status_code == 200
    assert replay.json == {**before_completion.json, "completion": done.json}
    assert replay.json["completion"] == p.refresh().json["completion"]
    assert snapshot(app) == before


def test_a_study_without_a_code_gives_each_session_its_own_lasting_code(
    app, client, make_study
):
    study = small_study(
        make_study,
        platform="direct",
        recruitment={"completion_code": None, "screenout_code": None},
    )
    codes = []
    for pid in ("a1", "a2"):
        p = Participant(client, study, pid)
        p.start()
        p.device()
        p.finish()
        first = p.complete().json
        assert first["url"] is None and len(first["code"]) == 10
        assert p.complete().json == first
        codes.append(first["code"])
    assert codes[0] != codes[1]


def test_bad_completion_bodies(app, started):
    p = started
    p.finish()
    before = snapshot(app)
    url = f"{API}/sessions/{p.token}/complete"
    cases = [
        ({"answers": "nice"}, 400, "answers"),
        ({"answers": {"comments": 5}}, 400, "comments"),
        ({"answers": {"comments": "x" * 5001}}, 422, "comments"),
        ({"answers": {"Bad Key": "x"}}, 400, "answers"),
        ({"answers": {"comments": "\ud800"}}, 400, "comments"),
        ({"answers": {"comments": "a\x00b"}}, 422, "comments"),
        ({"answers": {f"q{i}": "x" for i in range(11)}}, 422, "answers"),
        ({"notes": "x"}, 400, "notes"),
        ([], 400, "body"),
    ]
    for body, status, field in cases:
        answer = p.client.post(
            url, data=json.dumps(body), content_type="application/json"
        )
        assert answer.status_code == status, (body, answer.json)
        assert answer.json["error"]["field"] == field
    assert snapshot(app) == before
    assert p.client.post(url).status_code == 200  # no body at all is fine


def test_batch_stores_each_response_as_if_sent_alone(app, started):
    p = started
    p.put(0, response_body("real"))
    p.put(1, response_body("real"))
    first, second = [t["position"] for t in p.block(1).json["trials"][:2]]
    unserved = _positions(p.state, "main")[-1]
    items = [
        {"position": 0, **response_body("real")},  # replay
        {"position": first, **response_body("generated")},  # new
        {"position": 1, **response_body("generated")},  # conflict
        {"position": second, **response_body("real", rt_ms=-1)},  # out of range
        {"position": unserved, **response_body("real")},  # block not served
        {"position": 99, **response_body("real")},  # no such trial
        {"position": "x", **response_body("real")},  # malformed
        "not an object",
    ]
    answer = p.client.post(
        f"{API}/sessions/{p.token}/responses",
        data=json.dumps({"responses": items}),
        content_type="text/plain;charset=UTF-8",
    )

    assert answer.status_code == 200
    results = answer.json["results"]
    assert [(r["position"], r["status"]) for r in results] == [
        (0, 200), (first, 200), (1, 409), (second, 422), (unserved, 422), (99, 404),
        (None, 400), (None, 400),
    ]  # fmt: skip
    assert [r["replay"] for r in results[:2]] == [True, False]
    assert "rt_ms" in results[3]["error"]
    assert _trial(app, p.token, first).response == "generated"
    assert _trial(app, p.token, 1).response == "real"
    assert _trial(app, p.token, second).response is None
    assert _session(app, p.token).n_answered == 3


def test_bad_batches_are_refused_whole(app, started):
    p = started
    before = snapshot(app)
    url = f"{API}/sessions/{p.token}/responses"
    cases = [
        ({"responses": {"position": 0}}, 400),
        ({"responses": [{}] * 501}, 422),
        ({"items": []}, 400),
        ("[]", 400),
    ]
    for body, status in cases:
        answer = p.client.post(url, json=body)
        assert answer.status_code == status, body
    assert p.client.post(f"{API}/sessions/{'B' * 43}/responses", json={
        "responses": []}).status_code == 401  # fmt: skip
    assert snapshot(app) == before


def test_client_events_are_stored_and_checked(app, started):
    p = started
    stored = p.event("reload", data={"next_position": 0}, at="2026-12-03T12:00:00Z")
    assert stored.status_code == 201 and stored.json == {"stored": True}
    with app.app_context():
        [event] = db.session.scalars(select(Event).where(Event.kind == "reload"))
        assert event.actor == "participant"
        assert event.data == {
            "client_at": "2026-12-03T12:00:00+00:00",
            "data": {"next_position": 0},
        }
    before = snapshot(app)
    for body, status in (
        ({"kind": "hack"}, 422),
        ({"kind": 3}, 400),
        ({"kind": "blur", "data": [1]}, 400),
        ({"kind": "blur", "at": "soon"}, 422),
        ({"kind": "blur", "extra": 1}, 400),
        # Values PostgreSQL cannot store in a JSON column are refused.
        ({"kind": "blur", "data": {"x": float("nan")}}, 422),
        ({"kind": "blur", "data": {"x": "\ud800"}}, 400),
        ({"kind": "blur", "data": {"x": ["nul\x00"]}}, 422),
        ({"kind": "blur", "data": {"a": {"b": {"c": {"d": {"e": [1]}}}}}}, 422),
    ):
        answer = p.client.post(
            f"{API}/sessions/{p.token}/events",
            data=json.dumps(body),
            content_type="application/json",
        )
        assert answer.status_code == status, body
    assert snapshot(app) == before


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["real", "generated", "2026-12-03T12:00:00Z"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
# Whole bodies of any JSON shape, and valid bodies with one field changed.
BODIES = JSON_VALUES | st.builds(
    lambda field, value: {**OK, field: value},
    st.sampled_from([*RESPONSE_FIELDS, "extra"]),
    JSON_VALUES,
)
STATUSES = {200, 400, 404, 409, 413, 422}
# A short run here; the long fuzzing of the whole API belongs to the load and
# fault benchmarks (issue 8).


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=BODIES, position=st.sampled_from([0, 1, 13, 14, 10**9]))
def test_random_bodies_get_documented_answers_and_refusals_change_nothing(
    app, started, body, position
):
    p = started
    before = snapshot(app)

    answer = p.put(position, data=json.dumps(body), content_type="application/json")

    assert answer.status_code in STATUSES, (body, answer.get_data(as_text=True))
    if answer.status_code != 200:
        error = answer.json["error"]
        assert error["status"] == answer.status_code
        assert error["message"]
        assert snapshot(app) == before


ENDPOINTS = st.sampled_from(["sessions", "device", "events", "complete", "responses"])
# A body of any shape, or a plausible one with one field changed.
OTHER_BODIES = JSON_VALUES | st.builds(
    lambda field, value, base: {**base, field: value},
    st.sampled_from(
        ["params", "consent", "window", "frame_interval_ms", "n_frames", "kind",
         "data", "at", "answers", "responses", "platform"]
    ),
    JSON_VALUES,
    st.sampled_from([
        {"params": {"PROLIFIC_PID": "P9", "STUDY_ID": "s", "SESSION_ID": "x"},
         "consent": True},
        {"frame_interval_ms": 16.7, "n_frames": 120},
        {"kind": "blur", "data": {}, "at": "2026-12-03T12:00:00Z"},
        {"answers": {"comments": "ok"}},
        {"responses": [{"position": 0, **OK}]},
    ]),
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(endpoint=ENDPOINTS, body=OTHER_BODIES)
def test_random_bodies_on_other_endpoints_never_cause_a_server_error(
    app, started, endpoint, body
):
    p = started
    url = (
        f"{API}/studies/{p.slug}/sessions"
        if endpoint == "sessions"
        else f"{API}/sessions/{p.token}/{endpoint}"
    )
    before = snapshot(app)

    answer = p.client.post(url, data=json.dumps(body), content_type="text/plain")

    assert answer.status_code < 500 or answer.status_code == 503, (
        endpoint,
        body,
        answer.get_data(as_text=True),
    )
    if answer.status_code >= 400:
        assert answer.json["error"]["status"] == answer.status_code
        assert snapshot(app) == before


STORED_COLUMNS = (
    "response", "rt_ms", "exposure_ms", "intended_frames", "achieved_frames",
    "frame_interval_ms", "onset_ms", "offset_ms", "visibility_lost", "focus_lost",
    "correct", "timing_invalid", "payload_digest",
)  # fmt: skip


def test_the_one_statement_store_stores_what_the_general_path_stores(
    app, client, make_study, monkeypatch
):
    # PostgreSQL stores a new answer in one statement (trials._record_fast);
    # every other answer, and every answer on SQLite, takes the general path.
    # The same answers through each must be stored and acknowledged alike.
    from study_server.services import trials

    study = small_study(make_study)
    fast, general = Participant(client, study, "F1"), Participant(client, study, "G1")
    for p in (fast, general):
        p.start()
        p.device()
        p.block(0)
    body = response_body("generated", achieved_frames=31, visibility_lost=None)
    ack_fast = fast.put(1, body)
    with monkeypatch.context() as patch:
        patch.setattr(trials, "_record_fast", lambda *args: None)
        ack_general = general.put(1, body)

    assert ack_fast.status_code == ack_general.status_code == 200
    assert ack_fast.json == ack_general.json | {
        "feedback": {"correct": not fast.truth(1)}
    }
    assert ack_fast.json["feedback"] == {"correct": not fast.truth(1)}
    stored_fast, stored_general = (
        _trial(app, fast.token, 1),
        _trial(app, general.token, 1),
    )
    for column in STORED_COLUMNS:
        if column == "correct":
            assert stored_fast.correct is (not fast.truth(1))
            assert stored_general.correct is (not general.truth(1))
            continue
        assert getattr(stored_fast, column) == getattr(stored_general, column), column
    assert stored_fast.timing_invalid is True and stored_fast.visibility_lost is None
    assert stored_fast.responded_at.utcoffset() == timedelta(0)
    assert _session(app, fast.token).n_answered == 1
    assert _session(app, fast.token).last_seen_at == stored_fast.responded_at
