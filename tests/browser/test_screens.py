"""The window-size guard and the screen-out path in the browser."""

from __future__ import annotations

import pytest
from driver import KeyboardParticipant
from sqlalchemy import select
from test_session import QUICK_STUDY

pytestmark = pytest.mark.browser


def events_of(app, session_id: int) -> list[str]:
    from study_server.db import db
    from study_server.models import Event

    with app.app_context():
        return list(
            db.session.scalars(select(Event.kind).where(Event.session_id == session_id))
        )


def test_small_window_waits_and_failed_check_screens_out(
    app, live_server, make_study, browser
):
    study = make_study(
        **{
            **QUICK_STUDY,
            "trials": {**QUICK_STUDY["trials"], "max_failed_checks": 0},
            "recruitment": {"platform": "direct", "screenout_code": "SCREENED-1"},
            "display": {"size": 64, "min_window_width": 800, "min_window_height": 600},
        }
    )
    context = browser.new_context(viewport={"width": 700, "height": 500})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/s/{study.slug}")

    # Too small: a message covers the page until the window is enlarged.
    overlay = page.locator("#window-too-small")
    overlay.wait_for(state="visible")
    assert "at least 800 x 600" in overlay.inner_text()
    assert "700 x 500" in overlay.inner_text()
    page.set_viewport_size({"width": 1024, "height": 700})
    overlay.wait_for(state="hidden")

    shrunk: dict[str, object] = {}

    def before_answer(p: KeyboardParticipant, position: int) -> None:
        if shrunk or p.trial(position).kind == "practice":
            return
        # Mid-block the window gets too small: the trial on screen can still
        # be answered, but no further trial starts until it is large again.
        shrunk["position"] = position
        page.set_viewport_size({"width": 640, "height": 480})
        overlay.wait_for(state="visible")

    def after_answer(p: KeyboardParticipant, position: int) -> None:
        if shrunk.get("position") != position:
            return
        page.wait_for_timeout(800)
        stage = page.locator(".stage")
        shrunk["after"] = (
            stage.get_attribute("data-phase"),
            stage.get_attribute("data-position"),
        )
        page.set_viewport_size({"width": 1024, "height": 700})
        overlay.wait_for(state="hidden")

    participant = KeyboardParticipant(
        page,
        app,
        study.id,
        fail_checks=True,
        before_answer=before_answer,
        after_answer=after_answer,
    )
    code = participant.run()

    assert errors == []
    assert shrunk["after"] == ("answered", str(shrunk["position"]))
    assert code == "SCREENED-1"
    assert "did not meet" in page.locator("#app").inner_text()
    session = participant.session()
    assert session.status == "screened_out"
    # The session ended at the first failed check: later trials never came.
    first_check = min(
        p for p in participant.answered if participant.trial(p).kind == "check"
    )
    assert max(participant.answered) <= first_check + 1
    assert "window_too_small" in events_of(app, session.id)

    page.reload()
    assert page.locator(".completion-code").inner_text().strip() == "SCREENED-1"
    context.close()
