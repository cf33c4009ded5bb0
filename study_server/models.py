"""Database models, named after the glossary in DESIGN.md §2.

study -> stimulus (images that can be shown), study -> session -> trial,
participant -> session, and event (an append-only log of what happened).
All timestamps are aware UTC (:class:`~study_server.db.UTCDateTime`).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import UTCDateTime, db, utcnow

PLATFORMS = ("prolific", "mturk", "direct")
DESIGNS = ("between", "within")
STUDY_STATUSES = ("draft", "open", "paused", "closed")
TRIAL_KINDS = ("practice", "main", "check")
RESPONSES = ("real", "generated")
STIMULUS_ROLES = ("main", "practice", "check")

# Session statuses. "Holding" ones count against a model's place in
# assignment; the others free the place for the next participant.
SESSION_HOLDING = ("active", "completed")
SESSION_FREED = ("screened_out", "returned", "timed_out", "excluded", "abandoned")
SESSION_STATUSES = SESSION_HOLDING + SESSION_FREED


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def new_token(nbytes: int = 32) -> str:
    """Return an unguessable URL-safe token."""
    return secrets.token_urlsafe(nbytes)


def new_public_id() -> str:
    """Return a short random id for exports and researcher pages."""
    return secrets.token_hex(8)


class Study(db.Model):
    """One experiment: its settings (the validated study file) and stimuli."""

    __tablename__ = "study"
    __table_args__ = (
        CheckConstraint(_in("design", DESIGNS), name="design"),
        CheckConstraint(_in("status", STUDY_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(64))
    design: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # The validated study file (StudySettings.model_dump()).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Digest of the study file's settings, to tell an update from a reload.
    settings_digest: Mapped[str] = mapped_column(String(64))
    # Bumped under lock by every assignment; also serves as the row lock.
    assignment_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    stimuli: Mapped[list[Stimulus]] = relationship(back_populates="study")
    sessions: Mapped[list[Session]] = relationship(back_populates="study")

    def __repr__(self) -> str:
        return f"<Study {self.slug}>"


class Stimulus(db.Model):
    """One image that can be shown. Its source and truth never leave the server."""

    __tablename__ = "stimulus"
    __table_args__ = (
        UniqueConstraint("study_id", "digest"),
        CheckConstraint(_in("role", STIMULUS_ROLES), name="role"),
        Index("ix_stimulus_pick", "study_id", "role", "source", "shown_count"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    # sha256 of the normalised PNG; the file lives in the content store.
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(128))
    is_real: Mapped[bool] = mapped_column(Boolean)
    role: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # For researchers only: where the image came from before normalisation.
    original_path: Mapped[str] = mapped_column(Text, default="")
    # Times it was put in a session's trial list, for least-shown balancing.
    shown_count: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    study: Mapped[Study] = relationship(back_populates="stimuli")

    @property
    def public_id(self) -> str:
        return self.digest[:16]


class Participant(db.Model):
    """A person, known by a recruitment platform and the platform's id."""

    __tablename__ = "participant"
    __table_args__ = (
        UniqueConstraint("platform", "external_id"),
        CheckConstraint(_in("platform", PLATFORMS), name="platform"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    sessions: Mapped[list[Session]] = relationship(back_populates="participant")


class Session(db.Model):
    """One participant's run through one study."""

    __tablename__ = "session"
    __table_args__ = (
        UniqueConstraint("study_id", "participant_id"),
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        Index("ix_session_assignment", "study_id", "status", "model"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(16), unique=True, default=new_public_id
    )
    # The participant's bearer token for the API; never shown to researchers.
    token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # The model assigned to the participant (between design); None for within.
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Platform parameters as they arrived (STUDY_ID, SESSION_ID, assignmentId...).
    platform_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # "f=real" or "j=real": which key means real for this participant.
    key_mapping: Mapped[str] = mapped_column(String(16), default="f=real")
    exposure_ms: Mapped[float] = mapped_column(Float, default=500.0)
    # Device check results.
    frame_interval_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    exposure_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_agent: Mapped[str] = mapped_column(Text, default="")
    screen_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    screen_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Free-text answers given on the consent or debrief pages.
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    n_answered: Mapped[int] = mapped_column(Integer, default=0)
    checks_failed: Mapped[int] = mapped_column(Integer, default=0)
    # Adaptive staircase state (exposure in frames, reversals...), if used.
    staircase: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    exclusion_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    completion_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    study: Mapped[Study] = relationship(back_populates="sessions")
    participant: Mapped[Participant] = relationship(back_populates="sessions")
    trials: Mapped[list[Trial]] = relationship(
        back_populates="session", order_by="Trial.position"
    )


class Trial(db.Model):
    """One presentation and its response, planned when the session starts."""

    __tablename__ = "trial"
    __table_args__ = (
        UniqueConstraint("session_id", "position"),
        CheckConstraint(_in("kind", TRIAL_KINDS), name="kind"),
        CheckConstraint(
            f"response IS NULL OR {_in('response', RESPONSES)}", name="response"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("session.id", ondelete="CASCADE")
    )
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id"))
    position: Mapped[int] = mapped_column(Integer)
    block: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    # Copies of the stimulus's truth, fixed when the trial list is made.
    source: Mapped[str] = mapped_column(String(128))
    is_real: Mapped[bool] = mapped_column(Boolean)
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response: Mapped[str | None] = mapped_column(String(16), nullable=True)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    rt_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    exposure_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    intended_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    achieved_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame_interval_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    onset_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    offset_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    visibility_lost: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    focus_lost: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    timing_invalid: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # sha256 of the canonical response payload: a replay with the same digest
    # is acknowledged again, a different one is a conflict.
    payload_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    session: Mapped[Session] = relationship(back_populates="trials")
    stimulus: Mapped[Stimulus] = relationship()


class Event(db.Model):
    """An append-only record of something that happened, and who did it."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_study_time", "study_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("study.id", ondelete="CASCADE"), nullable=True
    )
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("session.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    # "participant", "system" or "researcher:<username>".
    actor: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Researcher(db.Model):
    """A researcher account for the dashboard and exports."""

    __tablename__ = "researcher"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
