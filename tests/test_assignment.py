"""Assignment of models to participants and of images to sessions (DESIGN §6)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from api_helpers import Participant, no_fsync, small_study
from sqlalchemy import func, select

from study_server.db import db
from study_server.models import Session, Stimulus, Study, Trial
from study_server.services import assignment
from study_server.services.assignment import Pick, layout
from study_server.services.sessions import settings_of

pytestmark = pytest.mark.usefixtures("no_fsync")
assert no_fsync  # a fixture, used through pytestmark


def _picks(n, start, is_real=None):
    return [
        Pick(start + i, "real" if is_real or (is_real is None and i % 2) else "m1",
             bool(is_real or (is_real is None and i % 2)))
        for i in range(n)
    ]  # fmt: skip


def test_layout_puts_practice_first_then_blocks_of_main_trials_with_checks():
    practice, main, checks = _picks(4, 100), _picks(23, 0), _picks(3, 200, True)
    planned = layout(practice, main, checks, break_every=10, rng=random.Random(1))

    assert [t.position for t in planned] == list(range(30))
    assert [t.kind for t in planned[:4]] == ["practice"] * 4
    assert {t.block for t in planned[:4]} == {0}
    assert sorted(t.pick.stimulus_id for t in planned[:4]) == [100, 101, 102, 103]
    main_blocks = Counter(t.block for t in planned if t.kind == "main")
    assert main_blocks == {1: 10, 2: 10, 3: 3}
    assert sorted(t.pick.stimulus_id for t in planned if t.kind == "check") == [
        200, 201, 202,
    ]  # fmt: skip
    assert sorted(t.pick.stimulus_id for t in planned if t.kind == "main") == list(
        range(23)
    )
    # Blocks are contiguous runs of positions.
    blocks = [t.block for t in planned]
    assert blocks == sorted(blocks)


def test_layout_without_practice_starts_with_main_block_zero():
    planned = layout([], _picks(6, 0), [], break_every=3, rng=random.Random(0))
    assert [t.block for t in planned] == [0, 0, 0, 1, 1, 1]


def test_layout_shuffles_practice_so_real_images_do_not_come_first():
    # Practice picks arrive real first; the first practice trial is real in
    # about half of the sessions, not in all of them.
    practice = _picks(2, 100, True) + _picks(2, 102, False)
    first_real = sum(
        layout(practice, _picks(4, 0), [], break_every=4, rng=random.Random(seed))[
            0
        ].pick.is_real
        for seed in range(400)
    )
    assert 160 < first_real < 240


def test_blocks_of_plan_match_the_blocks_read_back_from_the_trials():
    planned = layout(
        _picks(4, 100), _picks(23, 0), _picks(3, 200, True), 10, random.Random(2)
    )
    blocks = assignment.blocks_of_plan(planned)
    assert [b["block"] for b in blocks] == [0, 1, 2, 3]
    assert [b["kind"] for b in blocks] == ["practice", "main", "main", "main"]
    assert blocks[0] == {"block": 0, "kind": "practice", "first": 0, "size": 4}
    assert [b["first"] for b in blocks] == [
        min(t.position for t in planned if t.block == b["block"]) for b in blocks
    ]
    assert [b["size"] for b in blocks] == [
        sum(t.block == b["block"] for t in planned) for b in blocks
    ]


def test_layout_shuffles_order_and_check_positions_across_sessions():
    main, checks = _picks(20, 0), _picks(2, 100, True)
    orders, check_places = set(), Counter()
    for seed in range(200):
        planned = layout([], main, checks, break_every=10, rng=random.Random(seed))
        orders.add(tuple(t.pick.stimulus_id for t in planned if t.kind == "main"))
        check_places.update(t.position for t in planned if t.kind == "check")
    assert len(orders) == 200
    # Every place in the 22-trial list holds a check in some session.
    assert set(check_places) == set(range(22))


def test_the_model_with_fewest_holding_sessions_gets_the_next_participant(
    app, client, make_study
):
    study = small_study(
        make_study, models=("m1", "m2", "m3"), recruitment={"target_per_model": 2}
    )
    seen = []
    for i in range(6):
        p = Participant(client, study, f"P{i}")
        assert p.start().status_code == 201
        with app.app_context():
            seen.append(
                db.session.scalar(select(Session.model).where(Session.token == p.token))
            )
        # After every third arrival each model has the same count.
        if i % 3 == 2:
            assert Counter(seen) == {m: (i + 1) // 3 for m in ("m1", "m2", "m3")}
    assert Participant(client, study, "P6").start().status_code == 503


def test_ties_are_broken_at_random(app, make_study):
    study = small_study(make_study, models=("m1", "m2", "m3"))
    with app.app_context():
        row = db.session.get(Study, study.id)
        settings = settings_of(row)
        models = assignment.study_models(row.id)
        chosen = {
            assignment.choose_model(row, settings, models, random.Random(seed))
            for seed in range(30)
        }
        db.session.rollback()
    assert models == ["m1", "m2", "m3"]
    assert chosen == {"m1", "m2", "m3"}


def _shown_by_source(app):
    with app.app_context():
        rows = db.session.execute(
            select(Stimulus.role, Stimulus.source, Stimulus.shown_count)
        ).all()
        in_trials = Counter(db.session.scalars(select(Trial.stimulus_id)).all())
        counts = dict(
            db.session.execute(select(Stimulus.id, Stimulus.shown_count)).all()
        )
    groups = {}
    for role, source, shown in rows:
        groups.setdefault((role, source), []).append(shown)
    return groups, counts, in_trials


def test_images_are_balanced_across_sessions_and_never_repeat_within_one(
    app, client, make_study
):
    # 7 real images, 6 per model; each session takes 5 real and 5 of its model.
    study = small_study(make_study, n_real=7, n_per_model=6)
    for i in range(9):
        assert Participant(client, study, f"P{i}").start().status_code == 201

    groups, counts, in_trials = _shown_by_source(app)
    for key, shown in groups.items():
        assert max(shown) - min(shown) <= 1, (key, shown)
    # shown_count is exactly the number of trials that show the image.
    assert {k: v for k, v in counts.items() if v} == dict(in_trials)
    with app.app_context():
        repeats = db.session.execute(
            select(Trial.session_id, Trial.stimulus_id)
            .group_by(Trial.session_id, Trial.stimulus_id)
            .having(func.count() > 1)
        ).all()
    assert repeats == []


def test_within_design_spreads_generated_trials_evenly_over_models(
    app, client, make_study
):
    study = small_study(
        make_study,
        models=("m1", "m2", "m3"),
        top={"design": "within"},
        recruitment={"target_per_model": 6},
    )
    for i in range(6):
        assert Participant(client, study, f"P{i}").start().status_code == 201
    assert Participant(client, study, "P6").start().status_code == 503

    with app.app_context():
        rows = db.session.execute(
            select(Trial.session_id, Trial.source).where(Trial.kind == "main")
        ).all()
        models = db.session.scalars(select(Session.model)).all()
    assert models == [None] * 6
    per_session = Counter((session, source) for session, source in rows)
    totals = Counter()
    for session in {s for s, _ in rows}:
        # 5 generated trials over 3 models: 2, 2 and 1.
        counts = sorted(per_session[(session, m)] for m in ("m1", "m2", "m3"))
        assert counts == [1, 2, 2]
        assert per_session[(session, "real")] == 5
        for m in ("m1", "m2", "m3"):
            totals[m] += per_session[(session, m)]
    # Over 6 sessions every model got the same number of trials.
    assert totals == {"m1": 10, "m2": 10, "m3": 10}
