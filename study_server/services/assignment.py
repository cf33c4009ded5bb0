"""Assignment: a model for each new participant, images and order for each session.

Everything here runs inside the transaction that starts a session, with the
study row locked (:func:`lock_study`): ``SELECT ... FOR NO KEY UPDATE``
on PostgreSQL; on SQLite every transaction already begins with ``BEGIN
IMMEDIATE`` (see ``study_server/db.py``), which serialises writers. So two
arrivals never see the same counts, and the counts they update
(``Stimulus.shown_count``, the sessions per model) are exact.

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

from sqlalchemy import func, insert, select, update

from ..db import db
from ..errors import NotFound, Unavailable
from ..models import SESSION_HOLDING, Session, Stimulus, Study, Trial
from ..studyfile import StudySettings


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


def lock_study(slug: str) -> Study:
    """Load the study by ``slug`` and lock its row for this transaction.

    Raises
    ------
    NotFound
        No such study, or the study is a draft.
    """
    # FOR NO KEY UPDATE serialises assignments without making rows that
    # merely refer to the study (events, sessions' foreign keys) wait.
    study = db.session.scalar(
        select(Study)
        .where(Study.slug == slug)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if study is None or study.status == "draft":
        raise NotFound(f"there is no study {slug[:64]!r}")
    return study


def study_models(study_id: int) -> list[str]:
    """The models of a study: the sources of its active generated main images."""
    return list(
        db.session.scalars(
            select(Stimulus.source)
            .where(
                Stimulus.study_id == study_id,
                Stimulus.role == "main",
                Stimulus.is_real.is_(False),
                Stimulus.active.is_(True),
            )
            .distinct()
            .order_by(Stimulus.source)
        )
    )


def holding_counts(study_id: int) -> Counter[str | None]:
    """Sessions that hold a place, per model (None for the within design)."""
    rows = db.session.execute(
        select(Session.model, func.count())
        .where(Session.study_id == study_id, Session.status.in_(SESSION_HOLDING))
        .group_by(Session.model)
    )
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
    query = select(Stimulus.id, Stimulus.source, Stimulus.is_real).where(
        Stimulus.study_id == study_id,
        Stimulus.role == role,
        Stimulus.active.is_(True),
    )
    if source is not None:
        query = query.where(Stimulus.source == source)
    if is_real is not None:
        query = query.where(Stimulus.is_real.is_(is_real))
    if exclude:
        query = query.where(Stimulus.id.not_in(exclude))
    query = query.order_by(Stimulus.shown_count, func.random()).limit(n)
    return [Pick(*row) for row in db.session.execute(query)]


def _pick_mixed(study_id: int, role: str, n: int, n_real: int) -> list[Pick]:
    """``n`` stimuli of ``role``, ``n_real`` of them real when there are enough."""
    chosen = pick_least_shown(study_id, role, n_real, is_real=True)
    chosen += pick_least_shown(study_id, role, n - len(chosen), is_real=False)
    if len(chosen) < n:
        chosen += pick_least_shown(
            study_id, role, n - len(chosen), exclude=[p.stimulus_id for p in chosen]
        )
    return chosen


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

    Block 0 holds the practice trials (when there are any). The main trials are
    shuffled and cut into blocks of ``break_every`` main trials; each check is
    inserted at a random place among the main trials, into the block where it
    falls.
    """
    main = list(main)
    rng.shuffle(main)
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
    main = pick_least_shown(study.id, "main", settings.n_real, source="real")
    split = {model: n_generated} if model is not None else {}
    if model is None and n_generated:
        split = generated_split(study.id, models, n_generated, rng)
    for source, n in split.items():
        main += pick_least_shown(study.id, "main", n, source=source)
    n_practice_real = round(trials.practice * trials.real_fraction)
    practice = _pick_mixed(study.id, "practice", trials.practice, n_practice_real)
    checks = pick_least_shown(study.id, "check", trials.checks)
    return layout(practice, main, checks, trials.break_every, rng)


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
    db.session.execute(insert(Trial), rows)
    db.session.execute(
        update(Stimulus)
        .where(Stimulus.id.in_([t.pick.stimulus_id for t in planned]))
        .values(shown_count=Stimulus.shown_count + 1)
        .execution_options(synchronize_session=False)
    )
