"""Researcher accounts: creation, password checks and lock-out.

:func:`authenticate` answers every failed login the same way and in about the
same time (one password hash is always computed), whether the username is
unknown, the password wrong or the account locked, so a stranger learns
nothing about which accounts exist. After ``max_failures`` failed logins in a
row an account is locked for ``lockout_s`` seconds; while it is locked even the
right password is refused, and the lock is not extended by further attempts
(so nobody can keep a researcher out for ever).

Usernames are unique ignoring case, and every lookup (login, password, unlock)
ignores case too: ``Alice`` logs in as ``alice``. Names keep the spelling they
were created with. The rule is checked here, not by a database constraint.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import db, utcnow
from ..errors import Conflict, NotFound, OutOfRange, Unauthorized
from ..models import Researcher

audit = logging.getLogger("study_server.audit")


@functools.cache
def _dummy_hash() -> str:
    # Checked when there is no real hash to check, so that a failed login costs
    # the same time whatever its reason.
    return generate_password_hash(secrets.token_urlsafe(16))


USERNAME = re.compile(r"[A-Za-z0-9_.-]{2,64}")
MIN_PASSWORD_LENGTH = 10


def _named(username: str) -> Select[Any]:
    """The researchers whose username equals ``username`` ignoring case."""
    # Usernames are ASCII (USERNAME), so SQL lower() agrees with str.lower().
    return select(Researcher).where(func.lower(Researcher.username) == username.lower())


def find_researcher(username: str, *, lock: bool = False) -> Researcher | None:
    """The researcher ``username``, ignoring case; None when there is none.

    Accounts created before usernames ignored case may differ only in case;
    then only the exact spelling finds one. ``lock`` locks the row for update.
    """
    if not USERNAME.fullmatch(username):
        # No account has such a name; and str.lower() maps some non-ASCII
        # letters (the Kelvin sign) to ASCII ones, which must not match.
        return None
    query = _named(username).order_by(Researcher.id)
    if lock:
        query = query.with_for_update()
    found = db.session.scalars(query).all()
    exact = [researcher for researcher in found if researcher.username == username]
    if exact:
        return exact[0]
    return found[0] if len(found) == 1 else None


def create_researcher(username: str, password: str) -> Researcher:
    """Create a researcher account with a hashed password.

    Raises
    ------
    OutOfRange
        The username or password does not meet the rules.
    Conflict
        The username is taken.
    """
    if not USERNAME.fullmatch(username):
        raise OutOfRange(
            f"username {username!r} is not allowed: use 2-64 letters, digits, "
            "'.', '_' or '-'",
            field="username",
        )
    check_password_rules(password)
    taken = db.session.scalars(_named(username)).first()
    if taken is not None:
        same = "" if taken.username == username else " (usernames ignore case)"
        raise Conflict(
            f"a researcher named {taken.username!r} already exists{same}",
            field="username",
        )
    researcher = Researcher(
        username=username, password_hash=generate_password_hash(password)
    )
    db.session.add(researcher)
    db.session.commit()
    audit.info("researcher %r created", username)
    return researcher


def check_password_rules(password: str) -> None:
    """Raise :class:`OutOfRange` for a password too short or only whitespace."""
    if password and not password.strip():
        raise OutOfRange(
            f"the password is {len(password)} whitespace character(s) and nothing "
            "else; use letters, digits or symbols",
            field="password",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OutOfRange(
            f"the password has {len(password)} characters; at least "
            f"{MIN_PASSWORD_LENGTH} are required",
            field="password",
        )


def password_matches(researcher: Researcher, password: str) -> bool:
    return check_password_hash(researcher.password_hash, password)


def login_failed_message(max_failures: int, lockout_s: float) -> str:
    """The one message every failed login gets."""
    minutes = max(1, round(lockout_s / 60))
    return (
        "Wrong username or password. After "
        f"{max_failures} failed attempts in a row an account is locked for "
        f"{minutes} minute(s)."
    )


def authenticate(
    username: str,
    password: str,
    *,
    max_failures: int,
    lockout_s: float,
    now: datetime | None = None,
    remote: str = "",
) -> Researcher:
    """Check a login and return the researcher; count and log every failure.

    Raises
    ------
    Unauthorized
        Unknown username, wrong password, or the account is locked. The message
        is the same in all three cases; the audit log says which it was.
    """
    now = now or utcnow()
    researcher = find_researcher(username, lock=True)
    locked = (
        researcher is not None
        and researcher.locked_until is not None
        and researcher.locked_until > now
    )
    checked_hash = _dummy_hash() if researcher is None else researcher.password_hash
    matches = check_password_hash(checked_hash, password)
    failure = _failure_reason(researcher, locked, matches)
    if researcher is not None and failure is None:
        researcher.failed_logins = 0
        researcher.locked_until = None
        researcher.last_login_at = now
        db.session.commit()
        audit.info("login %r from %s", username, remote or "-")
        return researcher

    if failure == "wrong_password" and researcher is not None:
        _count_failure(researcher, now, max_failures, lockout_s)
    db.session.commit()
    audit.warning("failed login %r from %s: %s", username, remote or "-", failure)
    raise Unauthorized(login_failed_message(max_failures, lockout_s))


def _failure_reason(
    researcher: Researcher | None, locked: bool, matches: bool
) -> str | None:
    if researcher is None:
        return "unknown_user"
    if locked:
        return "locked"
    return None if matches else "wrong_password"


def _count_failure(
    researcher: Researcher, now: datetime, max_failures: int, lockout_s: float
) -> None:
    researcher.failed_logins = (researcher.failed_logins or 0) + 1
    if researcher.failed_logins >= max_failures:
        researcher.locked_until = now + timedelta(seconds=lockout_s)
        researcher.failed_logins = 0
        audit.warning(
            "researcher %r locked until %s after %d failed logins",
            researcher.username,
            researcher.locked_until.isoformat(),
            max_failures,
        )


def get_researcher(username: str) -> Researcher:
    """Return the researcher ``username`` (any case); :class:`NotFound` if none."""
    researcher = find_researcher(username)
    if researcher is None:
        raise NotFound(f"no researcher named {username!r}", field="username")
    return researcher


def set_password(username: str, password: str) -> Researcher:
    """Replace a researcher's password; this also ends their open logins."""
    check_password_rules(password)
    researcher = get_researcher(username)
    researcher.password_hash = generate_password_hash(password)
    researcher.failed_logins = 0
    researcher.locked_until = None
    db.session.commit()
    audit.info("password of researcher %r changed", username)
    return researcher


def unlock(username: str) -> Researcher:
    """Lift a lock-out and reset the failed-login count."""
    researcher = get_researcher(username)
    researcher.failed_logins = 0
    researcher.locked_until = None
    db.session.commit()
    audit.info("researcher %r unlocked", username)
    return researcher
