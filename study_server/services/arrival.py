"""What a participant sees on arriving at ``/s/<slug>``.

:func:`arrival_page` decides the page from the study, the query parameters
and the user agent; the view only renders it. Nothing is stored on arrival
except a ``resume`` event for a returning participant: the session starts
through the API once the participant has consented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from ..db import db
from ..errors import Forbidden, Gone, Malformed, NotFound
from ..models import Study
from ..studyfile import StudySettings
from . import platforms
from .sessions import completion_of, find_session, resume, settings_of, state_of

# Seconds a main trial takes besides fixation and exposure: the response and
# the pause before the next trial. Used only for the duration shown in the
# MTurk preview.
RESPONSE_S = 1.5


@dataclass(frozen=True)
class Page:
    """A template to render with its HTTP status and context."""

    template: str
    status: int = 200
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Redirect:
    """Send the browser to ``location`` (302)."""

    location: str


def estimated_minutes(settings: StudySettings) -> int:
    """A generous estimate of how long a session takes, in whole minutes."""
    t = settings.timing
    exposure_s = (t.exposure_ms or 2000) / 1000
    per_trial = (t.fixation_ms + t.mask_ms) / 1000 + exposure_s + RESPONSE_S
    trials = settings.trials
    n = trials.per_session + trials.practice + trials.checks
    # Instructions, the device check and breaks: a few minutes on top.
    return math.ceil(n * per_trial / 60 + 3)


def bootstrap(
    study: Study,
    settings: StudySettings,
    params: dict[str, str],
    api_base: str,
    session_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The object the runner page reads (docs/participant-api.md)."""
    t = settings.timing
    stair = settings.staircase
    return {
        "api": api_base,
        "study": study.slug,
        "title": study.title,
        "platform": settings.recruitment.platform,
        "platform_params": params,
        "texts": settings.texts.model_dump(),
        "display": {
            "size": settings.display.size,
            "min_window_width": settings.display.min_window_width,
            "min_window_height": settings.display.min_window_height,
        },
        "timing": {
            "fixation_ms": t.fixation_ms,
            "exposure_ms": t.exposure_ms,
            "mask_ms": t.mask_ms,
            "staircase": stair.model_dump() if stair else None,
        },
        "trials": {
            "practice": settings.trials.practice,
            "per_session": settings.trials.per_session,
            "checks": settings.trials.checks,
            "break_every": settings.trials.break_every,
        },
        "session": session_state,
    }


def _study(slug: str) -> Study:
    study = db.session.scalar(select(Study).where(Study.slug == slug))
    if study is None or study.status == "draft":
        raise NotFound(f"there is no study {slug[:64]!r}")
    return study


def arrival_page(
    slug: str,
    args: Mapping[str, str],
    user_agent: str,
    path: str,
    api_base: str,
) -> Page | Redirect:
    """Decide what to show a participant arriving at the study's URL.

    ``args`` are the query parameters and ``path`` the arrival path (for the
    direct-link redirect). Raises NotFound for an unknown or draft study.
    """
    study = _study(slug)
    settings = settings_of(study)
    platform = settings.recruitment.platform
    common = {"study": study, "settings": settings}
    if platforms.is_mobile(user_agent):
        return Page("participant/mobile.html", 200, common)
    if platforms.is_mturk_preview(platform, args):
        minutes = estimated_minutes(settings)
        return Page("participant/preview.html", 200, {**common, "minutes": minutes})
    if platform == "direct" and not args.get("pid"):
        query = urlencode({**args, "pid": platforms.new_direct_id()})
        return Redirect(f"{path}?{query}")
    try:
        arrival = platforms.parse_arrival(platform, args)
    except Malformed as exc:
        context = {**common, "problem": exc.message}
        return Page("participant/bad_link.html", 400, context)

    session = find_session(study, arrival)
    if session is None:
        return _new_arrival(study, settings, arrival, api_base, common)
    try:
        resume(session, study, via="page")
    except Gone as exc:
        return Page("participant/expired.html", 410, {**common, "message": exc.message})
    except Forbidden:
        return Page("participant/already_taken.html", 403, common)
    completion = completion_of(session, settings)
    if session.status == "completed":
        return Page("participant/completed.html", 200, {**common, "c": completion})
    if session.status == "screened_out":
        return Page("participant/screened_out.html", 200, {**common, "c": completion})
    state = state_of(session, study)
    db.session.commit()
    data = bootstrap(study, settings, arrival.params, api_base, state)
    return Page("participant/run.html", 200, {"bootstrap": data})


def _new_arrival(
    study: Study,
    settings: StudySettings,
    arrival: platforms.Arrival,
    api_base: str,
    common: dict[str, Any],
) -> Page:
    if study.status == "paused":
        return Page("participant/unavailable.html", 503, {**common, "closed": False})
    if study.status == "closed":
        return Page("participant/unavailable.html", 410, {**common, "closed": True})
    data = bootstrap(study, settings, arrival.params, api_base)
    return Page("participant/run.html", 200, {"bootstrap": data})
