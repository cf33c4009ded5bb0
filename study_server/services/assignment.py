"""Assignment: a model for each new participant, images and order for each session.

Everything here runs inside the transaction that starts a session. Counting
places, choosing the model and the images and storing them happen with the
study row locked (:func:`lock_study`): ``SELECT ... FOR NO KEY UPDATE`` on
PostgreSQL; on SQLite every transaction already begins with ``BEGIN
IMMEDIATE`` (see ``study_server/db.py``), which serialises writers. So two
arrivals never see the same counts, and the counts they update
(``Stimulus.shown_count``, the sessions per model) are exact. Arrivals queue
on that lock, so what runs under it is a few prebuilt statements: one query
picks all of a session's images (:func:`pick_groups`), and on PostgreSQL the
trial list goes in as arrays.

Rules (DESIGN §6):

- between design: the model with the fewest holding sessions (active or
  completed, :data:`~study_server.models.SESSION_HOLDING`) gets the next
  participant, ties broken at random; a model at ``target_per_model`` takes no
  one more. Freed sessions (returned, timed out, excluded...) free the place.
- within design: every session sees every model; the study is full when
  ``target_per_model`` sessions hold a place.
- images: least-shown first (ties at random) within each source, so each
  image gets a balanced number of judgements; no image twice in a session.
- the trial list: practice block first, then main blocks of
  ``trials.break_every`` main trials, real and generated in random order,
  attention checks mixed in at random positions.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    Select,
    bindparam,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import defer

from ..db import db
from ..errors import NotFound, Unavailable
from ..models import SESSION_HOLDING, Session, Stimulus, Study, Trial
from ..studyfile import StudySettings

_TRIAL = Trial.__table__
_STIMULUS = Stimulus.__table__
_PLAN_COLUMNS = {
    "stimulus_id": "integer",
    "position": "integer",
    "block": "integer",
    "kind": "varchar",
    "source": "varchar",
    "is_real": "boolean",
}
# Rows come out of unnest() in array order, so ids follow positions.
_INSERT_TRIALS_PG = (
    f"INSERT INTO {_TRIAL.name} (session_id, {', '.join(_PLAN_COLUMNS)}) "
    f"SELECT %(session_id)s, * FROM unnest("
    + ", ".join(f"%({c})s::{t}[]" for c, t in _PLAN_COLUMNS.items())
    + ")"
)
_COUNT_SHOWN_PG = (
    f"UPDATE {_STIMULUS.name} SET shown_count = shown_count + 1 "
    "WHERE id = ANY(%(ids)s::integer[])"
)


@dataclass(frozen=True)
class Pick:
    """A stimulus chosen for a session, with the truth copied onto its trial."""

    stimulus_id: int
    source: str
    is_real: bool


@dataclass(frozen=True)
class PlannedTrial:
    """One row of a session's trial list."""

    pick: Pick
    position: int
    block: int
    kind: str


# The settings JSON is read only when the digest is not cached yet
# (sessions.settings_of).
_STUDY = (
    select(Study).where(Study.slug == bindparam("slug")).options(defer(Study.settings))
)
# FOR NO KEY UPDATE serialises assignments without making rows that merely
# refer to the study (events, sessions' foreign keys) wait.
_LOCKED_STUDY = _STUDY.with_for_update(key_share=True).execution_options(
    populate_existing=True
)


def find_study(slug: str, *, lock: bool = False) -> Study:
    """Load the study by ``slug``; with ``lock``, lock its row for this transaction.

    Raises
    ------
    NotFound
        No such study, or the study is a draft.
    """
    study = db.session.scalar(_LOCKED_STUDY if lock else _STUDY, {"slug": slug})
    if study is None or study.status == "draft":
        raise NotFound(f"there is no study {slug[:64]!r}")
    return study


def lock_study(slug: str) -> Study:
    """Load the study by ``slug`` and lock its row for this transaction."""
    return find_study(slug, lock=True)


# Statements that run on every session start are built once, with bound
# parameters: building and keying a SQLAlchemy statement costs more Python
# than running it, and starts queue on the study lock.
_MODELS = (
    select(Stimulus.source)
    .where(
        Stimulus.study_id == bindparam("study_id"),
        Stimulus.role == "main",
        Stimulus.is_real.is_(False),
        Stimulus.active.is_(True),
    )
    .distinct()
    .order_by(Stimulus.source)
)
_HOLDING = (
    select(Session.model, func.count())
    .where(
        Session.study_id == bindparam("study_id"),
        Session.status.in_(SESSION_HOLDING),
    )
    .group_by(Session.model)
)


def study_models(study_id: int) -> list[str]:
    """The models of a study: the sources of its active generated main images."""
    return list(db.session.scalars(_MODELS, {"study_id": study_id}))


def holding_counts(study_id: int) -> Counter[str | None]:
    """Sessions that hold a place, per model (None for the within design)."""
    rows = db.session.execute(_HOLDING, {"study_id": study_id})
    return Counter({model: n for model, n in rows})


def choose_model(
    study: Study, settings: StudySettings, models: Sequence[str], rng: random.Random
) -> str | None:
    """Return the model for the next participant (None for the within design).

    Raises
    ------
    Unavailable
        Every place is taken.
    """
    target = settings.recruitment.target_per_model
    counts = holding_counts(study.id)
    if settings.design == "within":
        if sum(counts.values()) >= target:
            raise Unavailable("the study is full: every place is taken")
        return None
    open_models = [m for m in models if counts[m] < target]
    if not open_models:
        raise Unavailable("the study is full: every place is taken")
    fewest = min(counts[m] for m in open_models)
    return rng.choice([m for m in open_models if counts[m] == fewest])


@dataclass(frozen=True)
class PickRequest:
    """``n`` active stimuli of ``role`` (and ``source``, ``is_real``) to pick."""

    role: str
    n: int
    source: str | None = None
    is_real: bool | None = None


def _least_shown(
    study_id: int, request: PickRequest, exclude: Sequence[int] = ()
) -> Select:
    query = select(Stimulus.id, Stimulus.source, Stimulus.is_real).where(
        Stimulus.study_id == study_id,
        Stimulus.role == request.role,
        Stimulus.active.is_(True),
    )
    if request.source is not None:
        query = query.where(Stimulus.source == request.source)
    if request.is_real is not None:
        query = query.where(Stimulus.is_real.is_(request.is_real))
    if exclude:
        query = query.where(Stimulus.id.not_in(exclude))
    return query.order_by(Stimulus.shown_count, func.random()).limit(request.n)


def pick_least_shown(
    study_id: int,
    role: str,
    n: int,
    *,
    source: str | None = None,
    is_real: bool | None = None,
    exclude: Sequence[int] = (),
) -> list[Pick]:
    """Return up to ``n`` active stimuli, least shown first, ties at random."""
    if n <= 0:
        return []
    query = _least_shown(study_id, PickRequest(role, n, source, is_real), exclude)
    return [Pick(*row) for row in db.session.execute(query)]


def pick_groups(study_id: int, requests: Sequence[PickRequest]) -> list[list[Pick]]:
    """Answer several pick requests, each as :func:`pick_least_shown`, at once.

    One ``UNION ALL`` query instead of one per request: a session start runs
    with the study locked, and every round trip there holds up the next
    arrival. Requests draw independently, so they must not overlap.
    """
    groups: list[list[Pick]] = [[] for _ in requests]
    asked = [(i, request) for i, request in enumerate(requests) if request.n > 0]
    if not asked:
        return groups
    shape = tuple((r.source is not None, r.is_real) for _, r in asked)
    query = _PICKS.get(shape)
    if query is None:
        query = _PICKS[shape] = _picks_statement(shape)
    values: dict[str, object] = {"study_id": study_id}
    for part, (i, request) in enumerate(asked):
        values |= {f"request_{part}": i, f"role_{part}": request.role}
        values |= {f"n_{part}": request.n, f"source_{part}": request.source}
    for stimulus_id, source, is_real, i in db.session.execute(query, values):
        groups[i].append(Pick(stimulus_id, source, is_real))
    return groups


# pick_groups' statements by the shape of their requests (whether each names
# a source, and the truth it asks for); role, source and n are parameters.
_PICKS: dict[tuple[tuple[bool, bool | None], ...], Select | CompoundSelect] = {}


def _picks_statement(
    shape: tuple[tuple[bool, bool | None], ...],
) -> Select | CompoundSelect:
    parts = []
    for part, (has_source, is_real) in enumerate(shape):
        query = select(Stimulus.id, Stimulus.source, Stimulus.is_real).where(
            Stimulus.study_id == bindparam("study_id"),
            Stimulus.role == bindparam(f"role_{part}"),
            Stimulus.active.is_(True),
        )
        if has_source:
            query = query.where(Stimulus.source == bindparam(f"source_{part}"))
        if is_real is not None:
            query = query.where(Stimulus.is_real.is_(is_real))
        inner = (
            query.order_by(Stimulus.shown_count, func.random())
            .limit(bindparam(f"n_{part}", type_=Integer))
            .subquery()
        )
        parts.append(select(*inner.c, bindparam(f"request_{part}", type_=Integer)))
    return parts[0] if len(parts) == 1 else union_all(*parts)


def generated_split(
    study_id: int, models: Sequence[str], n_generated: int, rng: random.Random
) -> dict[str, int]:
    """Spread ``n_generated`` trials evenly over ``models`` (within design).

    Each model gets ``n // k`` trials; the ``n % k`` left over go to the models
    whose images have been shown least so far, so that over sessions every
    model gets the same number of judgements.
    """
    base, extra = divmod(n_generated, len(models))
    shown = dict(
        db.session.execute(
            select(Stimulus.source, func.sum(Stimulus.shown_count))
            .where(
                Stimulus.study_id == study_id,
                Stimulus.role == "main",
                Stimulus.source.in_(models),
            )
            .group_by(Stimulus.source)
        ).all()
    )
    order = sorted(models, key=lambda m: (shown.get(m) or 0, rng.random()))
    return {m: base + (1 if i < extra else 0) for i, m in enumerate(order)}


def layout(
    practice: Sequence[Pick],
    main: Sequence[Pick],
    checks: Sequence[Pick],
    break_every: int,
    rng: random.Random,
) -> list[PlannedTrial]:
    """Order a session's trials into blocks.

    Block 0 holds the practice trials in random order (when there are any).
    The main trials are
    shuffled and cut into blocks of ``break_every`` main trials; each check is
    inserted at a random place among the main trials, into the block where it
    falls.
    """
    main = list(main)
    rng.shuffle(main)
    # Practice arrives real first; shuffled, its order says nothing either.
    practice = list(practice)
    rng.shuffle(practice)
    # Check i goes in front of main trial slots[i] (len(main) = at the end).
    slots = sorted(rng.randint(0, len(main)) for _ in checks)
    checks = list(checks)
    rng.shuffle(checks)
    sequence: list[tuple[Pick, str, int]] = []
    for i, pick in enumerate(main):
        while slots and slots[0] == i:
            slots.pop(0)
            sequence.append((checks.pop(), "check", i))
        sequence.append((pick, "main", i))
    sequence += [(pick, "check", len(main)) for pick in checks]

    first_main_block = 1 if practice else 0
    planned = [PlannedTrial(p, i, 0, "practice") for i, p in enumerate(practice)]
    for pick, kind, main_index in sequence:
        # A check after the last main trial joins the last block.
        block_index = min(main_index, max(len(main) - 1, 0)) // break_every
        planned.append(
            PlannedTrial(pick, len(planned), first_main_block + block_index, kind)
        )
    return planned


def plan_session(
    study: Study,
    settings: StudySettings,
    model: str | None,
    models: Sequence[str],
    rng: random.Random,
) -> list[PlannedTrial]:
    """Choose a session's images (least shown first) and order them."""
    trials = settings.trials
    n_generated = trials.per_session - settings.n_real
    split = {model: n_generated} if model is not None else {}
    if model is None and n_generated:
        split = generated_split(study.id, models, n_generated, rng)
    n_practice_real = round(trials.practice * trials.real_fraction)
    requests = [
        PickRequest("main", settings.n_real, source="real"),
        *(PickRequest("main", n, source=source) for source, n in split.items()),
        PickRequest("practice", n_practice_real, is_real=True),
        PickRequest("practice", trials.practice - n_practice_real, is_real=False),
        PickRequest("check", trials.checks),
    ]
    *main_groups, practice_real, practice_generated, checks = pick_groups(
        study.id, requests
    )
    main = [pick for group in main_groups for pick in group]
    practice = practice_real + practice_generated
    if len(practice) < trials.practice:
        # Too few of one kind: the rest of practice from either kind.
        practice += pick_least_shown(
            study.id,
            "practice",
            trials.practice - len(practice),
            exclude=[p.stimulus_id for p in practice],
        )
    return layout(practice, main, checks, trials.break_every, rng)


def blocks_of_plan(planned: Sequence[PlannedTrial]) -> list[dict[str, Any]]:
    """The blocks of a planned trial list, as ``sessions.blocks_of`` reads them."""
    blocks: dict[int, dict[str, Any]] = {}
    for trial in planned:
        block = blocks.setdefault(
            trial.block,
            {"block": trial.block, "kind": "main", "first": trial.position, "size": 0},
        )
        block["size"] += 1
        if trial.kind == "practice":
            block["kind"] = "practice"
    return [blocks[number] for number in sorted(blocks)]


def store_trials(session: Session, planned: Sequence[PlannedTrial]) -> None:
    """Insert a session's trial list and count each image as shown once more.

    Rows go in position order, so row ids follow positions and say nothing
    about the images.
    """
    rows = [
        {
            "session_id": session.id,
            "stimulus_id": t.pick.stimulus_id,
            "position": t.position,
            "block": t.block,
            "kind": t.kind,
            "source": t.pick.source,
            "is_real": t.pick.is_real,
        }
        for t in planned
    ]
    if not rows:
        return
    ids = [t.pick.stimulus_id for t in planned]
    if db.session.get_bind().dialect.name == "postgresql":
        # Seven arrays instead of 56 rows of parameters: this runs under the
        # study lock, and binding each row costs more Python than the insert.
        connection = db.session.connection()
        connection.exec_driver_sql(
            _INSERT_TRIALS_PG,
            {
                "session_id": session.id,
                **{column: [row[column] for row in rows] for column in _PLAN_COLUMNS},
            },
        )
        connection.exec_driver_sql(_COUNT_SHOWN_PG, {"ids": ids})
        return
    db.session.execute(insert(_TRIAL), rows)
    db.session.execute(
        update(_STIMULUS)
        .where(_STIMULUS.c.id.in_(ids))
        .values(shown_count=_STIMULUS.c.shown_count + 1)
    )
