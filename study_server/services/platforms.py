"""Recruitment platforms: arrival parameters, completion codes and redirects.

Each platform sends its own query parameters to the arrival URL; one of them
is the participant's identity. A missing or malformed parameter is an error,
never a made-up identity. Only the parameters listed here are stored (in
``Session.platform_data``); anything else in the URL is ignored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import Malformed
from ..studyfile import StudySettings

#: Query parameters each platform must send, identity first.
PARAMS: dict[str, tuple[str, ...]] = {
    "prolific": ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"),
    "mturk": ("workerId", "assignmentId", "hitId", "turkSubmitTo"),
    "direct": ("pid",),
}
IDENTITY = {platform: names[0] for platform, names in PARAMS.items()}

# MTurk sends this assignmentId while a worker only previews the HIT.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
# The hosts MTurk names in turkSubmitTo: production and the sandbox.
MTURK_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")

# Prolific: "When the participant completes the task, redirect them to Prolific
# with the completion code: https://app.prolific.com/submissions/complete?cc=
# {completion code}" (docs.prolific.com/documentation/core-concepts/
# reviewing-submissions-and-rewards).
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ID_RULE = "1 to 128 letters, digits, '_' or '-'"
# Phones and tablets, by the tokens their browsers put in the user agent.
# iPadOS 13+ claims to be desktop Safari; the browser's window-size check
# catches those.
_MOBILE = re.compile(
    r"Mobi|Android|iPhone|iPad|iPod|Windows Phone|BlackBerry|BB10|Opera Mini|"
    r"Silk/|Kindle|Tablet|webOS",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Arrival:
    """A participant's identity on a platform and the parameters that came."""

    platform: str
    external_id: str
    params: dict[str, str]


def _check_submit_to(value: str) -> str:
    parts = urlsplit(value)
    ok = (
        parts.scheme == "https"
        and parts.hostname in MTURK_HOSTS
        and parts.port is None
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and not parts.username
    )
    if not ok:
        raise Malformed(
            f"turkSubmitTo: got {value[:80]!r}; allowed: "
            + " or ".join(f"https://{host}" for host in MTURK_HOSTS),
            field="turkSubmitTo",
        )
    return f"https://{parts.hostname}"


def parse_arrival(platform: str, params: Mapping[str, Any]) -> Arrival:
    """Check the platform's parameters and return the participant's identity.

    Raises
    ------
    Malformed
        A required parameter is missing, is not a string, or breaks the
        allowed form; the message names it and says what is allowed.
    """
    if platform not in PARAMS:
        raise Malformed(
            f"platform: got {platform!r}; allowed: {', '.join(PARAMS)}",
            field="platform",
        )
    values: dict[str, str] = {}
    for name in PARAMS[platform]:
        value = params.get(name)
        if value is None or value == "":
            raise Malformed(
                f"{name}: the link is missing this {platform} parameter; "
                f"a {platform} link carries {', '.join(PARAMS[platform])}",
                field=name,
            )
        if not isinstance(value, str):
            raise Malformed(f"{name}: allowed: a string", field=name)
        if name == "turkSubmitTo":
            values[name] = _check_submit_to(value)
            continue
        if not _ID.fullmatch(value):
            raise Malformed(
                f"{name}: got {value[:40]!r}; allowed: {_ID_RULE}", field=name
            )
        values[name] = value
    if platform == "mturk" and values["assignmentId"] == MTURK_PREVIEW:
        raise Malformed(
            "assignmentId: this is a preview of the HIT; accept the HIT to start",
            field="assignmentId",
        )
    return Arrival(platform, values[IDENTITY[platform]], values)


def is_mturk_preview(platform: str, params: Mapping[str, Any]) -> bool:
    """Return whether an MTurk worker is only previewing the HIT."""
    return platform == "mturk" and params.get("assignmentId") == MTURK_PREVIEW


def new_direct_id() -> str:
    """Return a random identity for a participant who came by a direct link."""
    return secrets.token_urlsafe(12)


def is_mobile(user_agent: str) -> bool:
    """Return whether ``user_agent`` belongs to a phone or tablet."""
    return bool(_MOBILE.search(user_agent or ""))


def new_completion_code() -> str:
    """Return a random code for studies that set none (direct links)."""
    return secrets.token_hex(5).upper()


@dataclass(frozen=True)
class Completion:
    """What a finished participant gets: a code, a redirect, an MTurk form."""

    status: str
    code: str | None
    url: str | None
    mturk: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "url": self.url,
            "mturk": self.mturk,
        }


def completion_code_for(settings: StudySettings, status: str) -> str | None:
    """Return the code to store when a session ends with ``status``.

    A completed session gets the study's completion code, or a random one when
    the study sets none; a screened-out one gets the screen-out code or none.
    """
    recruitment = settings.recruitment
    if status == "completed":
        return recruitment.completion_code or new_completion_code()
    return recruitment.screenout_code


def completion_for(
    settings: StudySettings,
    platform_data: Mapping[str, str],
    status: str,
    code: str | None,
) -> Completion:
    """Return the completion object of a session that ended with ``status``.

    The URL is the study's own (``completion_url`` / ``screenout_url``) when it
    gives one; on Prolific it is otherwise Prolific's completion URL with the
    code. On MTurk the completion page posts ``assignmentId`` to
    ``<turkSubmitTo>/mturk/externalSubmit``, described by ``mturk``.
    """
    recruitment = settings.recruitment
    completed = status == "completed"
    study_url = recruitment.completion_url if completed else recruitment.screenout_url
    url = str(study_url) if study_url else None
    if url is None and settings.recruitment.platform == "prolific" and code:
        url = PROLIFIC_COMPLETE + quote(code, safe="")
    mturk = None
    if settings.recruitment.platform == "mturk" and "turkSubmitTo" in platform_data:
        mturk = {
            "action": platform_data["turkSubmitTo"] + "/mturk/externalSubmit",
            "assignmentId": platform_data["assignmentId"],
        }
    return Completion(status, code, url, mturk)
