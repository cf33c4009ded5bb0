"""An answer and its retry arriving at once are stored and counted once.

The load harness's drop-and-retry fault found this: on PostgreSQL a locked
read can see a trial as it was before a racing request stored its answer, so
the store must re-check "no answer yet" on the row's newest version.
"""

from __future__ import annotations

import threading

import pytest
from api_helpers import (  # noqa: F401  (no_fsync is a fixture)
    Participant,
    no_fsync,
    small_study,
)
from sqlalchemy import func, select

from study_server.db import db
from study_server.models import Session, Trial

pytestmark = pytest.mark.usefixtures("no_fsync")
COPIES = 4


def at_once(functions):
    """Run the functions in threads released together; return their results."""
    barrier = threading.Barrier(len(functions))
    results = [None] * len(functions)

    def run(i, function):
        barrier.wait()
        results[i] = function()

    threads = [
        threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_simultaneous_copies_of_an_answer_are_stored_and_counted_once(
    app, client, make_study
):
    # Checks may all fail without a screen-out, so every copy is answered.
    study = small_study(
        make_study,
        trials={
            "per_session": 10,
            "real_fraction": 0.5,
            "practice": 2,
            "checks": 2,
            "max_failed_checks": 2,
            "break_every": 5,
        },
    )
    p = Participant(client, study, "P-race")
    p.start()
    p.device()
    p.answer_block(0)

    replays = []
    for block in range(1, p.state["n_blocks"]):
        for trial in p.block(block).json["trials"]:
            position = trial["position"]
            # Wrong answers, so failed checks are counted too.
            real = not p.truth(position)
            body = {
                "response": "real" if real else "generated",
                "rt_ms": 700.0,
                "intended_frames": 30,
                "achieved_frames": 30,
            }
            url = f"/api/v1/sessions/{p.token}/trials/{position}"
            copies = [
                (lambda url=url, body=body: app.test_client().put(url, json=body))
                for _ in range(COPIES)
            ]
            answers = at_once(copies)
            assert [a.status_code for a in answers] == [200] * COPIES, [
                a.json for a in answers
            ]
            replays.append(sorted(a.json["replay"] for a in answers))

    assert replays == [[False] + [True] * (COPIES - 1)] * len(replays)
    with app.app_context():
        session = db.session.scalar(select(Session).where(Session.token == p.token))
        answered = db.session.scalar(
            select(func.count()).where(
                Trial.session_id == session.id, Trial.response.is_not(None)
            )
        )
        failed = db.session.scalar(
            select(func.count()).where(
                Trial.session_id == session.id,
                Trial.kind == "check",
                Trial.correct.is_(False),
            )
        )
        assert session.n_answered == answered == session.n_trials
        assert session.checks_failed == failed == 2
        assert session.status == "active"
