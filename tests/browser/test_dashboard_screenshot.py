"""The dashboard in headless Chromium: login, charts, live refresh, screenshot.

The screenshot is saved as a test artefact in ``test-artifacts/dashboard.png``
(git-ignored) for people to look at; the test itself checks what is on the
page.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from researcher_helpers import (
    PASSWORD,
    make_event,
    make_researcher,
    make_session,
    make_study_row,
    make_trials,
)

from study_server.db import utcnow

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MODELS = ("ddpm", "stylegan2", "ldm", "vq-gan")
# How often each model's images fool people, roughly, for a plausible picture.
FOOLED = {"ddpm": 0.45, "stylegan2": 0.3, "ldm": 0.38, "vq-gan": 0.2}


def answers(rng: random.Random, model: str, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        is_real = i % 2 == 0
        wrong = rng.random() < (0.25 if is_real else FOOLED[model])
        said_real = is_real != wrong
        rows.append(
            {
                "is_real": is_real,
                "response": "real" if said_real else "generated",
                "rt_ms": round(rng.lognormvariate(6.6, 0.45), 1),
                "timing_invalid": rng.random() < 0.03,
                "visibility_lost": False,
                "focus_lost": rng.random() < 0.02,
            }
        )
    return rows


def fill_study(app) -> None:
    """A running study with sessions in several states."""
    rng = random.Random(7)
    now = utcnow()
    study = make_study_row(
        app,
        "cifar10-pilot",
        models=MODELS,
        title="CIFAR-10: real or generated?",
        recruitment={"target_per_model": 6, "platform": "prolific"},
    )
    plan = [("completed", m) for m in MODELS for _ in range(3)]
    plan += [("active", "ddpm"), ("active", "ldm"), ("active", "vq-gan")]
    plan += [("returned", "stylegan2"), ("timed_out", "ddpm")]
    plan += [("excluded", "ldm"), ("screened_out", "vq-gan"), ("abandoned", "ddpm")]
    for i, (status, model) in enumerate(plan):
        started = now - timedelta(minutes=55 - i)
        done = status == "completed"
        session = make_session(
            app,
            study,
            status=status,
            model=model,
            started_at=started,
            completed_at=started + timedelta(minutes=rng.uniform(9, 16))
            if done
            else None,
            exclusion_reason={
                "excluded": "too_fast",
                "screened_out": "failed_checks",
            }.get(status),
            checks_failed=2 if status == "screened_out" else int(rng.random() < 0.2),
        )
        n = 40 if done else 14
        make_trials(app, session, answers(rng, model, n))
        if done:
            checks = [{"is_real": False, "response": "generated"}] * 2
            if session.checks_failed:
                checks[1] = {"is_real": False, "response": "real"}
            make_trials(app, session, checks, kind="check", first_position=n)
        make_event(app, study, "session_start", session=session, created_at=started)
        if status in ("returned", "excluded", "timed_out"):
            make_event(
                app,
                study,
                "status_change",
                session=session,
                actor="researcher:alice",
                data={"from": "active", "to": status},
                created_at=started + timedelta(minutes=5),
            )


def test_dashboard_renders_refreshes_and_is_captured(app, live_server, context):
    fill_study(app)
    make_researcher(app)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{live_server}/researcher/studies/cifar10-pilot")
    assert "/researcher/login" in page.url  # anonymous: sent to the login page
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/researcher/studies/cifar10-pilot")

    page.wait_for_selector("#dashboard[data-loaded=true]")
    for chart in ("chart-progress", "chart-errors", "chart-rt"):
        page.wait_for_selector(f"#{chart} .main-svg")
    assert page.locator("#sessions-table").inner_text().count("\n") >= 8
    assert "total\t20" in page.locator("#sessions-table").inner_text()
    assert "too_fast" in page.locator("#exclusions").inner_text()
    assert "ddpm" in page.locator("#error-table").inner_text()
    assert "status_change" in page.locator("#events").inner_text()

    # A participant finishes meanwhile: the page redraws without reloading.
    page.evaluate("window.__sameDocument = true")
    late = make_session(
        app,
        make_study_row_detached(app),
        status="completed",
        model="ldm",
        completed_at=utcnow(),
    )
    make_trials(app, late, answers(random.Random(1), "ldm", 10))
    page.wait_for_function(
        "document.getElementById('sessions-table').innerText.includes('total\\t21')",
        timeout=15_000,
    )
    assert page.evaluate("window.__sameDocument") is True

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 50_000

    # Everything came from this server: plotly.js included, no CDN.
    assert requested and all(url.startswith(live_server) for url in requested)


def make_study_row_detached(app):
    """The study made by :func:`fill_study`, loaded again."""
    from study_server.db import db
    from study_server.models import Study

    with app.app_context():
        study = db.session.query(Study).filter_by(slug="cifar10-pilot").one()
        db.session.expunge(study)
        return study
