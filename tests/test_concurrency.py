"""Participants arriving at the same moment (DESIGN §6: assignment is atomic).

Threads, one test client each, are released together by a barrier against a
file SQLite database or a PostgreSQL schema (the ``app`` fixture's backend;
CI runs this module on both).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_helpers import Participant, no_fsync, small_study
from sqlalchemy import func, select

from study_server.db import db
from study_server.models import Participant as ParticipantRow
from study_server.models import Session, Stimulus, Trial

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark


def _arrive_together(app, study, external_ids):
    """Start a session for each id, all threads released at once."""
    barrier = threading.Barrier(len(external_ids))

    def arrive(external_id):
        participant = Participant(app.test_client(), study, external_id)
        barrier.wait(timeout=60)
        return participant.start()

    with ThreadPoolExecutor(max_workers=len(external_ids)) as pool:
        return list(pool.map(arrive, external_ids))


def test_sixty_simultaneous_arrivals_fill_each_model_exactly(app, make_study):
    study = small_study(
        make_study,
        models=("m1", "m2", "m3"),
        n_real=12,
        n_per_model=8,
        recruitment={"target_per_model": 20},
    )

    answers = _arrive_together(app, study, [f"P{i:02d}" for i in range(60)])

    assert Counter(a.status_code for a in answers) == {201: 60}
    assert len({a.json["token"] for a in answers}) == 60
    with app.app_context():
        per_model = Counter(db.session.scalars(select(Session.model)).all())
        repeats = db.session.execute(
            select(Trial.session_id, Trial.stimulus_id)
            .group_by(Trial.session_id, Trial.stimulus_id)
            .having(func.count() > 1)
        ).all()
        n_trials = db.session.scalar(select(func.count()).select_from(Trial))
        shown = db.session.execute(
            select(Stimulus.role, Stimulus.source, Stimulus.shown_count)
        ).all()
        in_trials = Counter(db.session.scalars(select(Trial.stimulus_id)).all())
        counts = dict(
            db.session.execute(select(Stimulus.id, Stimulus.shown_count)).all()
        )
    assert per_model == {"m1": 20, "m2": 20, "m3": 20}
    assert repeats == []
    assert n_trials == 60 * 14
    # Least-shown first kept every image of a source within one showing of
    # the others, and every count is exact (no lost update).
    groups = {}
    for role, source, count in shown:
        groups.setdefault((role, source), []).append(count)
    for key, values in groups.items():
        assert max(values) - min(values) <= 1, (key, sorted(values))
    assert sum(groups[("main", "real")]) == 60 * 5
    assert {k: v for k, v in counts.items() if v} == dict(in_trials)

    late = Participant(app.test_client(), study, "P60").start()
    assert late.status_code == 503


def test_simultaneous_arrivals_of_one_participant_make_one_session(app, make_study):
    study = small_study(make_study)

    answers = _arrive_together(app, study, ["SAME"] * 8)

    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json["token"] for a in answers}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Session)) == 1
        assert db.session.scalar(select(func.count()).select_from(ParticipantRow)) == 1
        assert db.session.scalar(select(func.count()).select_from(Trial)) == 14
