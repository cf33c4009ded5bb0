"""A whole session in headless Chromium, by keyboard, against the real app.

The participant reloads the page in the middle of a main block and on the
debrief, and answers for 10 seconds offline; afterwards the database holds
every trial exactly once, the completion code is shown, and reloading the
last page shows the same code.
"""

from __future__ import annotations

import time

import pytest
from driver import KeyboardParticipant
from sqlalchemy import func, select

pytestmark = pytest.mark.browser

# A small study that runs quickly: 2 practice trials, then 6 main trials and
# 2 checks in two blocks of 4; short fixation, exposure and mask.
QUICK_STUDY = {
    "trials": {
        "per_session": 6,
        "real_fraction": 0.5,
        "practice": 2,
        "checks": 2,
        "max_failed_checks": 1,
        "break_every": 4,
    },
    "timing": {"fixation_ms": 100, "exposure_ms": 50, "mask_ms": 50},
    "display": {"size": 64},
}


def unsent_in_storage(page) -> int:
    """Items the runner keeps in localStorage, not yet acknowledged."""
    return page.evaluate(
        """() => Object.keys(localStorage)
            .filter((k) => k.endsWith(':queue'))
            .map((k) => JSON.parse(localStorage.getItem(k)).length)
            .reduce((a, b) => a + b, 0)"""
    )


def session_rows(app, session_id: int) -> tuple:
    from study_server.db import db
    from study_server.models import Event, Session, Trial

    with app.app_context():
        session = db.session.get(Session, session_id)
        trials = db.session.scalars(
            select(Trial).where(Trial.session_id == session_id).order_by(Trial.position)
        ).all()
        per_position = db.session.execute(
            select(Trial.position, func.count())
            .where(Trial.session_id == session_id)
            .group_by(Trial.position)
        ).all()
        events = db.session.scalars(
            select(Event.kind).where(Event.session_id == session_id)
        ).all()
        db.session.expunge_all()
        return session, trials, dict(per_position), events


def test_whole_session_by_keyboard_with_reload_and_offline(
    app, live_server, make_study, context
):
    study = make_study(**QUICK_STUDY)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    state = {"main_answered": 0, "reloaded_at": None, "offline_at": None}
    offline_checks: dict[str, object] = {}

    def before_answer(p: KeyboardParticipant, position: int) -> None:
        # From the first trial of the last block on: 10 s offline, over the
        # rest of the block and the save at its end.
        if state["offline_at"] is None and p.trial(position).block == p.last_block():
            state["offline_at"] = position
            p.go_offline()

    def after_answer(p: KeyboardParticipant, position: int) -> None:
        if p.trial(position).kind == "practice":
            return
        state["main_answered"] += 1
        if state["main_answered"] == 2:
            # The second answer of the first main block (of at least 4
            # trials): reload in the middle of the block.
            state["reloaded_at"] = position
            page.reload()
        elif p.offline_since is not None:
            # Answer slowly so the offline spell covers several trials.
            time.sleep(1.5)
            offline_checks["stored_while_offline"] = unsent_in_storage(page)
            offline_checks["note"] = page.locator("#network-note").is_visible()

    def on_screen(p: KeyboardParticipant, screen: str) -> bool:
        # A reload on the debrief, after the last answer: back to the debrief.
        if screen == "debrief" and "debrief_reload" not in state:
            state["debrief_reload"] = True
            page.reload()
            return True
        return False

    participant = KeyboardParticipant(
        page,
        app,
        study.id,
        on_screen=on_screen,
        before_answer=before_answer,
        after_answer=after_answer,
    )
    page.goto(f"{live_server}/s/{study.slug}")
    code = participant.run()

    assert errors == []
    assert state["reloaded_at"] is not None and state["offline_at"] is not None
    # After the reload on the debrief, the debrief came straight back.
    assert participant.screens[-3:] == ["debrief", "debrief", "done"]
    # While offline the answers waited in localStorage and the page said so,
    # during the trials and on the saving screen at the end of the block.
    assert offline_checks["stored_while_offline"] >= 1
    assert offline_checks["note"] is True
    assert any("connection is lost" in text for text in participant.saving_texts)
    assert unsent_in_storage(page) == 0

    session, trials, per_position, events = session_rows(app, participant.session().id)
    assert session.status == "completed"
    assert code == session.completion_code
    assert session.n_answered == session.n_trials == len(trials) == 10
    assert set(per_position.values()) == {1}
    assert all(t.response in ("real", "generated") for t in trials)
    assert sum(t.kind == "main" for t in trials) == 6
    assert sum(t.kind == "check" for t in trials) == 2
    assert all(t.correct for t in trials if t.kind == "check")
    # Every answer was given once: the participant answered each position once
    # (the reload resumed after the last stored answer, not before it).
    assert sorted(participant.answered) == [t.position for t in trials]
    assert "reload" in events
    assert session.answers.get("comments") == participant.comments

    # The timing record of every trial: 50 ms at 60 Hz is 3 frames.
    for t in trials:
        assert t.intended_frames == 3
        assert t.achieved_frames is not None
        assert t.frame_interval_ms == pytest.approx(16.67, abs=1.0)
        assert t.offset_ms > t.onset_ms
        assert t.rt_ms >= 0
    # Headless Chromium under test load may miss an occasional frame; most
    # trials must still be exact.
    assert sum(not t.timing_invalid for t in trials) >= 8

    page.reload()
    shown = page.locator(".completion-code").inner_text().strip()
    assert shown == code


def test_offline_between_blocks_waits_and_continues(
    app, live_server, make_study, context
):
    """Offline from the last answer of a block: the save at the block's end,
    the next block's trial list and its images all wait for the connection."""
    study = make_study(**QUICK_STUDY)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    offline_at: list[int] = []

    def before_answer(p: KeyboardParticipant, position: int) -> None:
        trial, following = p.trial(position), p.trial(position + 1)
        last_of_block = following is not None and following.block != trial.block
        if not offline_at and trial.kind != "practice" and last_of_block:
            offline_at.append(position)
            p.go_offline()

    # 5 s offline is enough here; the 10 s spell is the test above.
    participant = KeyboardParticipant(
        page, app, study.id, offline_s=5.0, before_answer=before_answer
    )
    page.goto(f"{live_server}/s/{study.slug}")
    code = participant.run()

    assert errors == []
    assert offline_at
    session, trials, per_position, events = session_rows(app, participant.session().id)
    assert code == session.completion_code
    assert session.status == "completed"
    assert session.n_answered == len(trials) == 10
    assert set(per_position.values()) == {1}
    assert sorted(participant.answered) == [t.position for t in trials]
    assert {"offline", "online"} <= set(events)


def test_unsent_answer_is_kept_and_beaconed_on_reload(
    app, live_server, make_study, context
):
    """An answer the server did not get stays in localStorage, goes out with
    sendBeacon when the page is left, and is not asked again after reload."""
    study = make_study(**QUICK_STUDY)
    requests: list[tuple[str, str]] = []
    inner = app.wsgi_app

    def recording(environ, start_response):
        requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return inner(environ, start_response)

    app.wsgi_app = recording
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    state: dict[str, object] = {}

    def refuse(route) -> None:
        route.abort("connectionreset")

    def before_answer(p: KeyboardParticipant, position: int) -> None:
        if "held" not in state and p.trial(position).kind != "practice":
            # Answers cannot get through from now on (but beacons can).
            page.route("**/trials/*", refuse)
            state["held"] = position

    def after_answer(p: KeyboardParticipant, position: int) -> None:
        if state.get("held") != position:
            return
        page.wait_for_function(
            "() => !document.getElementById('network-note').hidden", timeout=10_000
        )
        state["kept"] = unsent_in_storage(page)
        state["stored_before"] = p.trial_row_response(position)
        n_requests = len(requests)
        page.reload()
        page.unroute("**/trials/*", refuse)
        state["beacons"] = [
            path
            for method, path in requests[n_requests:]
            if path.endswith("/responses")
        ]

    participant = KeyboardParticipant(
        page, app, study.id, before_answer=before_answer, after_answer=after_answer
    )
    page.goto(f"{live_server}/s/{study.slug}")
    code = participant.run()

    assert errors == []
    assert state["kept"] == 1
    assert state["stored_before"] is None
    assert len(state["beacons"]) == 1
    session, trials, per_position, _ = session_rows(app, participant.session().id)
    assert code == session.completion_code
    assert session.n_answered == len(trials) == 10
    assert set(per_position.values()) == {1}
    assert sorted(participant.answered) == [t.position for t in trials]
    assert unsent_in_storage(page) == 0
