"""The dashboard's figures, pages and the locally served plotly.js."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from researcher_helpers import (
    login,
    make_event,
    make_researcher,
    make_session,
    make_study_row,
    make_trials,
)
from statsmodels.stats.proportion import proportion_confint

from study_server.db import db, utcnow
from study_server.services import dashboard

# (errors, n) pairs; reference: statsmodels proportion_confint(method="wilson").
WILSON_CASES = [(0, 1), (1, 1), (3, 10), (47, 100), (500, 1000), (1, 3)]


@pytest.mark.parametrize(("errors", "n"), WILSON_CASES)
def test_wilson_interval_matches_statsmodels(errors, n):
    low, high = dashboard.wilson_interval(errors, n)
    ref_low, ref_high = proportion_confint(errors, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_wilson_interval_of_nothing_is_undefined():
    assert all(math.isnan(x) for x in dashboard.wilson_interval(0, 0))


def trial(is_real: bool, correct: bool, rt: float, **fields) -> dict:
    response = "real" if is_real == correct else "generated"
    return {"is_real": is_real, "response": response, "rt_ms": rt, **fields}


def main_trials(n_real, real_errors, n_fake, fake_errors, rts, **fields) -> list:
    """Main trials with a given number of errors on real and generated images."""
    rows = [trial(True, i >= real_errors, 0) for i in range(n_real)]
    rows += [trial(False, i >= fake_errors, 0) for i in range(n_fake)]
    for row, rt in zip(rows, rts, strict=True):
        row["rt_ms"] = rt
    for position, flags in fields.items():
        rows[int(position.removeprefix("at"))].update(flags)
    return rows


@pytest.fixture
def between(app):
    """A between-design study with sessions in every state (see expectations)."""
    now = utcnow()
    study = make_study_row(app, models=("m1", "m2", "m3"))
    rts = {
        "A": [99.9, 100.0, 250.5, 400, 800, 812.4, 1200, 2999.9],
        "B": [500, 600, 700, 3100],
        "C": [450, 460, 470, 480],
        "D": [10, 20],
    }
    a = make_session(
        app,
        study,
        status="completed",
        model="m1",
        started_at=now - timedelta(minutes=40),
        completed_at=now - timedelta(minutes=28),
        checks_failed=1,
    )
    make_trials(app, a, main_trials(4, 1, 4, 3, rts["A"]))
    make_trials(
        app,
        a,
        [trial(True, True, 900), trial(False, False, 950)],
        kind="check",
        first_position=8,
    )
    b = make_session(app, study, status="active", model="m1")
    make_trials(app, b, main_trials(2, 0, 2, 1, rts["B"]))
    c = make_session(
        app,
        study,
        status="completed",
        model="m2",
        started_at=now - timedelta(minutes=50),
        completed_at=now - timedelta(minutes=30),
    )
    make_trials(
        app,
        c,
        main_trials(
            2,
            2,
            2,
            0,
            rts["C"],
            at0={"timing_invalid": True},
            at1={"visibility_lost": True},
            at2={"focus_lost": True},
        ),
    )
    d = make_session(
        app, study, status="excluded", model="m2", exclusion_reason="too_fast"
    )
    make_trials(app, d, main_trials(1, 1, 1, 1, rts["D"]))
    make_session(
        app,
        study,
        status="screened_out",
        model="m1",
        exclusion_reason="failed_checks",
        checks_failed=2,
    )
    make_session(app, study, status="returned", model="m2")
    make_session(app, study, model="m2", started_at=now - timedelta(hours=3))
    return {"study": study, "rts": rts, "now": now}


def figures(app, slug="pilot", now=None):
    with app.app_context():
        return dashboard.dashboard(db.engine, slug, now)


def test_sessions_and_progress(app, between):
    data = figures(app, now=between["now"])
    assert data["sessions"]["by_status"] == {
        "active": 1,
        "completed": 2,
        "screened_out": 1,
        "returned": 1,
        "timed_out": 0,
        "excluded": 1,
        "abandoned": 1,  # the session silent for 3 hours, abandoned before counting
    }
    assert data["sessions"]["total"] == 7
    assert data["progress"] == [
        {"model": "m1", "completed": 1, "active": 1, "target": 5, "remaining": 3},
        {"model": "m2", "completed": 1, "active": 0, "target": 5, "remaining": 4},
        {"model": "m3", "completed": 0, "active": 0, "target": 5, "remaining": 5},
    ]
    assert data["study"]["status"] == "open"
    assert data["study"]["target_per_model"] == 5


def expected_rate(errors: int, n: int) -> dict:
    if n == 0:
        return {"n": 0, "errors": 0, "rate": None, "ci_low": None, "ci_high": None}
    low, high = proportion_confint(errors, n, method="wilson")
    return {
        "n": n,
        "errors": errors,
        "rate": errors / n,
        "ci_low": low,
        "ci_high": high,
    }


def assert_rate(got: dict, errors: int, n: int) -> None:
    want = expected_rate(errors, n)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == (value if value is None else pytest.approx(value)), key


def test_error_rates_pool_main_trials_of_holding_sessions(app, between):
    data = figures(app, now=between["now"])
    rows = {row["model"]: row for row in data["error_rates"]["rows"]}
    assert list(rows) == ["m1", "m2", "m3", "all"]
    # m1: sessions A (4 real, 1 error; 4 generated, 3 errors) and B (2 real, 0;
    # 2 generated, 1); the excluded session D (m2) is left out.
    expected = {
        "m1": {"real": (1, 6), "fake": (4, 6), "overall": (5, 12)},
        "m2": {"real": (2, 2), "fake": (0, 2), "overall": (2, 4)},
        "m3": {"real": (0, 0), "fake": (0, 0), "overall": (0, 0)},
        "all": {"real": (3, 8), "fake": (4, 8), "overall": (7, 16)},
    }
    for model, kinds in expected.items():
        for kind, (errors, n) in kinds.items():
            assert_rate(rows[model][kind], errors, n)
    assert "approximate" in data["error_rates"]["note"]


def test_checks_exclusions_timing_and_duration(app, between):
    data = figures(app, now=between["now"])
    assert data["checks"] == {
        "answered": 2,
        "failed": 1,
        "sessions_with_failures": 2,
        "screened_out": 1,
    }
    assert data["exclusions"] == [
        {"status": "abandoned", "reason": "", "n": 1},
        {"status": "excluded", "reason": "too_fast", "n": 1},
        {"status": "returned", "reason": "", "n": 1},
        {"status": "screened_out", "reason": "failed_checks", "n": 1},
    ]
    # Main trials answered in all sessions: A 8, B 4, C 4, D 2.
    assert data["timing"] == {
        "answered": 18,
        "timing_invalid": 1,
        "timing_invalid_share": 1 / 18,
        "visibility_lost": 1,
        "focus_lost": 1,
    }
    assert data["duration"] == {"completed": 2, "median_minutes": pytest.approx(16.0)}


def test_response_time_histogram(app, between):
    data = figures(app, now=between["now"])["response_times"]
    assert data["bin_ms"] == 100
    n_bins = len(data["bin_starts_ms"])
    assert data["bin_starts_ms"][-1] == 3000
    expected = {"real": np.zeros(n_bins, int), "generated": np.zeros(n_bins, int)}
    layout = {"A": (4, 4), "B": (2, 2), "C": (2, 2), "D": (1, 1)}
    for name, (n_real, _) in layout.items():
        for i, rt in enumerate(between["rts"][name]):
            key = "real" if i < n_real else "generated"
            expected[key][min(int(np.floor(rt / 100)), n_bins - 1)] += 1
    assert data["counts"] == {k: v.tolist() for k, v in expected.items()}
    # 99.9 and 10 ms fall in the first bin, 100.0 in the second; 3100 ms in the last.
    assert data["counts"]["real"][:2] == [2, 1]
    assert data["counts"]["generated"][-1] == 1


def test_latest_events_newest_first_and_limited(app):
    study = make_study_row(app)
    session = make_session(app, study)
    start = utcnow() - timedelta(minutes=5)
    for i in range(30):
        make_event(
            app,
            study,
            f"kind{i}",
            session=session if i % 2 else None,
            data={"i": i},
            created_at=start + timedelta(seconds=i),
        )
    events = figures(app)["events"]
    assert len(events) == dashboard.N_EVENTS
    assert [e["kind"] for e in events[:3]] == ["kind29", "kind28", "kind27"]
    assert events[0]["session"] == session.public_id
    assert events[1]["session"] is None
    assert events[0]["data"] == {"i": 29}
    assert events[0]["at"].endswith("+00:00")


def test_within_design_rates_generated_images_per_model(app):
    study = make_study_row(app, design="within", models=("m1", "m2"))
    session = make_session(app, study, model=None, status="completed")
    # Positions alternate real/generated; generated images cycle m1, m2, ...
    make_trials(
        app,
        session,
        [trial(i % 2 == 0, i < 4, 500) for i in range(8)],
    )
    data = figures(app)
    rows = {row["model"]: row for row in data["error_rates"]["rows"]}
    assert data["progress"] == [
        {
            "model": "all models",
            "completed": 1,
            "active": 0,
            "target": 5,
            "remaining": 4,
        }
    ]
    for model in ("m1", "m2"):
        assert rows[model]["real"] is None and rows[model]["overall"] is None
    fake_total = rows["m1"]["fake"]["n"] + rows["m2"]["fake"]["n"]
    assert fake_total == 4
    assert_rate(rows["all"]["real"], 2, 4)  # positions 4 and 6 are wrong
    assert_rate(rows["all"]["fake"], 2, 4)  # positions 5 and 7 are wrong


# --- pages ------------------------------------------------------------------


@pytest.fixture
def researcher(app, client):
    make_researcher(app)
    login(client)
    return client


def test_dashboard_page_uses_local_plotly_and_refreshes_from_json(
    app, researcher, between
):
    page = researcher.get("/researcher/studies/pilot")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'src="/researcher/assets/plotly.min.js"' in html
    assert "cdn" not in html.lower()
    assert 'src="https://' not in html and 'src="http://' not in html
    assert 'data-url="/researcher/studies/pilot/dashboard.json"' in html
    assert "/static/js/dashboard.js" in html
    assert "http://localhost/s/pilot" in html  # the participant link

    answer = researcher.get("/researcher/studies/pilot/dashboard.json")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json["sessions"]["total"] == 7

    missing = researcher.get("/researcher/studies/nope/dashboard.json")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"
    assert researcher.get("/researcher/studies/nope").status_code == 404


def test_plotly_is_served_from_the_installed_package(researcher):
    from plotly.offline import get_plotlyjs

    answer = researcher.get("/researcher/assets/plotly.min.js")
    assert answer.status_code == 200
    assert answer.mimetype == "text/javascript"
    assert answer.get_data(as_text=True) == get_plotlyjs()
    etag = answer.headers["ETag"]
    again = researcher.get(
        "/researcher/assets/plotly.min.js", headers={"If-None-Match": etag}
    )
    assert again.status_code == 304


def test_index_lists_studies_with_counts(app, researcher, between):
    make_study_row(app, "second", status="paused")
    html = researcher.get("/researcher/").get_data(as_text=True)
    assert html.index(">pilot<") < html.index(">second<")
    assert "status-paused" in html


def test_sessions_page_paginates_and_searches(app, researcher):
    study = make_study_row(app)
    now = utcnow()
    made = [
        make_session(app, study, started_at=now - timedelta(minutes=59 - i / 10))
        for i in range(55)
    ]
    page = "/researcher/studies/pilot/sessions"
    first = researcher.get(page).get_data(as_text=True)
    assert "55 session(s), page 1 of 2" in first
    assert made[-1].public_id in first and made[0].public_id not in first
    second = researcher.get(page, query_string={"page": 2}).get_data(as_text=True)
    assert made[0].public_id in second
    assert second.count("<code>") == 5
    found = researcher.get(page, query_string={"q": made[3].public_id})
    assert "1 session(s)" in found.get_data(as_text=True)
    nonsense = researcher.get(page, query_string={"page": "x"})
    assert nonsense.status_code == 200


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("3", 2),
        ("99999999999999999999", 2),
        ("9" * 5000, 2),
        ("\u00b2", 1),
        ("0", 1),
        ("-1", 1),
    ],
)
def test_sessions_page_number_out_of_range_shows_a_page_not_an_error(
    app, researcher, number, shown
):
    study = make_study_row(app)
    for _ in range(55):
        make_session(app, study)
    answer = researcher.get(
        "/researcher/studies/pilot/sessions", query_string={"page": number}
    )
    assert answer.status_code == 200
    assert f"55 session(s), page {shown} of 2" in answer.get_data(as_text=True)


def test_sessions_search_with_a_nul_character_is_refused(app, researcher):
    make_study_row(app)
    answer = researcher.get(
        "/researcher/studies/pilot/sessions", query_string={"q": "P\x00ID"}
    )
    assert answer.status_code == 422
    assert "q: contains a NUL character" in answer.get_data(as_text=True)
