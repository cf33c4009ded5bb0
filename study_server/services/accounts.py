"""Researcher accounts: creation and password checks."""

from __future__ import annotations

import re

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import db
from ..errors import Conflict, OutOfRange
from ..models import Researcher

USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD_LENGTH = 10


def create_researcher(username: str, password: str) -> Researcher:
    """Create a researcher account with a hashed password.

    Raises
    ------
    OutOfRange
        The username or password does not meet the rules.
    Conflict
        The username is taken.
    """
    if not USERNAME.match(username):
        raise OutOfRange(
            f"username {username!r} is not allowed: use 2-64 letters, digits, "
            "'.', '_' or '-'",
            field="username",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OutOfRange(
            f"the password has {len(password)} characters; at least "
            f"{MIN_PASSWORD_LENGTH} are required",
            field="password",
        )
    taken = db.session.scalar(select(Researcher).where(Researcher.username == username))
    if taken is not None:
        raise Conflict(
            f"a researcher named {username!r} already exists", field="username"
        )
    researcher = Researcher(
        username=username, password_hash=generate_password_hash(password)
    )
    db.session.add(researcher)
    db.session.commit()
    return researcher


def password_matches(researcher: Researcher, password: str) -> bool:
    return check_password_hash(researcher.password_hash, password)
