"""Exposure in whole frames, the device check, and the adaptive staircase."""

from __future__ import annotations

import pytest
from api_helpers import API, Participant, no_fsync, small_study, snapshot
from sqlalchemy import select

from study_server.db import db
from study_server.models import Event, Session
from study_server.services.timing import (
    StaircaseRule,
    advance_staircase,
    exposure_frames,
    staircase_step,
    start_staircase,
)
from study_server.studyfile import Staircase

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark

# (exposure ms, frame interval ms, frames): at 60, 144, 75 and 30 Hz.
ROUNDING = [
    (500, 1000 / 60, 30),  # 29.99999... frames
    (500, 1000 / 144, 72),
    (500, 1000 / 75, 38),  # 37.5 rounds up, not to even
    (50, 1000 / 30, 2),  # 1.5 rounds up
    (25, 10, 3),  # 2.5 rounds up (Python's round would give 2)
    (24.9, 10, 2),
    (16, 1000 / 60, 1),
    (5, 1000 / 60, 1),  # shorter than a frame: still one frame
    (0, 1000 / 60, 0),  # until response
    (10_000, 1000 / 60, 600),
]


@pytest.mark.parametrize(("exposure_ms", "interval_ms", "frames"), ROUNDING)
def test_exposure_rounds_to_the_nearest_whole_frame(exposure_ms, interval_ms, frames):
    assert exposure_frames(exposure_ms, interval_ms) == frames


def test_exposure_needs_a_positive_frame_interval():
    with pytest.raises(ValueError, match="frame_interval_ms"):
        exposure_frames(500, 0)


RULE = StaircaseRule(min_frames=2, max_frames=12, step_frames=2, down_after=3)


def _run(frames, answers, rule=RULE):
    streak, path = 0, []
    for correct in answers:
        frames, streak = staircase_step(frames, streak, correct, rule)
        path.append(frames)
    return path


def test_staircase_goes_down_after_n_right_and_up_after_one_wrong():
    # Three right: down one step; one wrong: up one step, streak reset.
    assert _run(8, [True, True, True]) == [8, 8, 6]
    assert _run(8, [True, True, False]) == [8, 8, 10]
    assert _run(8, [True, True, False, True, True, True]) == [8, 8, 10, 10, 10, 8]
    two_down = StaircaseRule(2, 12, 1, 2)
    assert _run(8, [True] * 6, two_down) == [8, 7, 7, 6, 6, 5]


def test_staircase_stays_within_its_limits():
    assert _run(4, [True] * 9) == [4, 4, 2, 2, 2, 2, 2, 2, 2]
    assert _run(10, [False] * 3) == [12, 12, 12]


def test_staircase_limits_in_frames_follow_the_display():
    stair = Staircase(start_ms=500, min_ms=16, max_ms=1000, step_frames=2)
    at_60 = StaircaseRule.from_settings(stair, 1000 / 60)
    at_144 = StaircaseRule.from_settings(stair, 1000 / 144)
    assert (at_60.min_frames, at_60.max_frames) == (1, 60)
    assert (at_144.min_frames, at_144.max_frames) == (2, 144)
    state = start_staircase(stair, 1000 / 144)
    assert state["frames"] == 72 and state["through"] == -1


def test_advancing_applies_each_answer_once_and_counts_reversals():
    state = start_staircase(Staircase(start_ms=100, step_frames=1), 10.0)
    assert state["frames"] == 10
    answers = [(2, True), (3, True), (4, True), (5, False), (7, True)]
    once = advance_staircase(state, answers)
    twice = advance_staircase(once, answers)
    assert once == twice
    # 10 -> 9 (down, after three right) -> 10 (up: a reversal at 9).
    assert (once["frames"], once["streak"], once["through"]) == (10, 1, 7)
    assert once["reversals"] == [9]
    assert state["reversals"] == []  # the input state is not changed


def test_device_check_rounds_the_exposure_and_can_be_repeated(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()

    at_144 = p.device(frame_interval_ms=1000 / 144, n_frames=90)
    assert at_144.status_code == 200
    assert at_144.json == {
        "exposure_frames": 72,
        "exposure_ms": 500.0,
        "frame_interval_ms": pytest.approx(1000 / 144),
        "staircase": None,
    }
    at_75 = p.device(frame_interval_ms=1000 / 75).json
    assert (at_75["exposure_frames"], at_75["exposure_ms"]) == (38, 506.6667)
    assert p.block(0).json["trials"][0]["exposure_frames"] == 38
    assert p.refresh().json["exposure_frames"] == 38
    with app.app_context():
        session = db.session.scalar(select(Session))
        assert (session.exposure_frames, session.exposure_ms) == (38, 506.6667)
        checks = db.session.scalars(select(Event).where(Event.kind == "device_check"))
        assert [e.data["n_frames"] for e in checks] == [90, 120]


def test_bad_device_checks_are_refused(app, client, make_study):
    study = small_study(make_study)
    p = Participant(client, study, "PID1")
    p.start()
    before = snapshot(app)
    url = f"{API}/sessions/{p.token}/device"
    cases = [
        ({"frame_interval_ms": 16.7, "n_frames": 59}, 422, "n_frames"),
        ({"frame_interval_ms": 16.7}, 400, "n_frames"),
        ({"frame_interval_ms": 0.5, "n_frames": 120}, 422, "frame_interval_ms"),
        ({"frame_interval_ms": 250, "n_frames": 120}, 422, "frame_interval_ms"),
        ({"frame_interval_ms": "16", "n_frames": 120}, 400, "frame_interval_ms"),
        ({"frame_interval_ms": 16.7, "n_frames": 120.5}, 400, "n_frames"),
        ({"frame_interval_ms": 16.7, "n_frames": 120, "hz": 60}, 400, "hz"),
        ({"frame_interval_ms": 16.7, "n_frames": 120, "refresh_hz": -60}, 422,
         "refresh_hz"),
        ([16.7, 120], 400, "body"),
    ]  # fmt: skip
    for body, status, field in cases:
        answer = client.post(url, json=body)
        assert answer.status_code == status, (body, answer.json)
        assert answer.json["error"]["field"] == field, body
    nan = client.post(
        url,
        data=b'{"frame_interval_ms": NaN, "n_frames": 120}',
        content_type="application/json",
    )
    assert nan.status_code == 422
    assert snapshot(app) == before


def test_the_server_runs_the_staircase_from_stored_answers(app, client, make_study):
    study = small_study(
        make_study,
        timing={"exposure_ms": 100},
        # study_toml writes each keyword as a table: [timing.staircase].
        **{"timing.staircase": {"start_ms": 100, "min_ms": 20, "max_ms": 200,
                                "step_frames": 1, "down_after": 2}},
        trials={"per_session": 10, "practice": 2, "checks": 0,
                "max_failed_checks": 0, "break_every": 10},
    )  # fmt: skip
    p = Participant(client, study, "PID1")
    p.start()
    device = p.device(frame_interval_ms=10.0).json
    assert device["exposure_frames"] == 10
    assert device["staircase"] == {
        "frames": 10, "streak": 0, "min_frames": 2, "max_frames": 20,
        "step_frames": 1, "down_after": 2,
    }  # fmt: skip
    # Practice trials run at the start exposure and leave the staircase alone.
    assert [a.json["next_exposure_frames"] for a in p.answer_block(0)] == [10, 10]

    main = [t["position"] for t in p.block(1).json["trials"]]
    assert all(t["exposure_frames"] == 10 for t in p.block(1).json["trials"])
    acks = [p.answer(main[0], True), p.answer(main[1], True)]
    assert [a.json["next_exposure_frames"] for a in acks] == [10, 9]

    # Out of order: main[3] arrives before main[2]; the rule waits for main[2].
    late = p.answer(main[3], True)
    assert late.json["next_exposure_frames"] == 9
    gap_filled = p.answer(main[2], False)
    # main[2] wrong: 9 -> 10; then main[3] right: streak 1, stays 10.
    assert gap_filled.json["next_exposure_frames"] == 10
    replay = p.answer(main[2], False)
    assert replay.json["replay"] is True
    assert replay.json["next_exposure_frames"] == 10
    state = p.refresh().json["staircase"]
    assert (state["frames"], state["streak"]) == (10, 1)
    with app.app_context():
        stored = db.session.scalar(select(Session.staircase))
        assert stored["through"] == main[3] and stored["reversals"] == [9]
