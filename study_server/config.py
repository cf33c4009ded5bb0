"""Configuration defaults and the order in which they are overridden.

The order is: these code defaults, then ``instance/config.py``, then ``STUDY_*``
environment variables (``STUDY_SECRET_KEY`` sets ``SECRET_KEY``; values are
parsed as JSON when they can be, so ``STUDY_SESSION_COOKIE_SECURE=true`` is a
boolean), then the mapping passed to ``create_app`` by tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from flask import Flask

#: The key the app ships with. Outside debug and testing the app refuses it.
PLACEHOLDER_SECRET_KEY = "change-me-placeholder-secret-key"
#: The shortest SECRET_KEY accepted outside debug and testing.
MIN_SECRET_KEY_LENGTH = 16

ENV_PREFIX = "STUDY"


class ConfigurationError(RuntimeError, click.ClickException):
    """The app's configuration is unsafe or inconsistent.

    A click exception too, so a ``flask`` command that cannot build the app
    prints the message as its one error line instead of a traceback.
    """

    def __init__(self, message: str):
        RuntimeError.__init__(self, message)
        click.ClickException.__init__(self, message)


def defaults(instance_path: str) -> dict[str, Any]:
    """Return the code defaults; paths point into the instance folder."""
    instance = Path(instance_path)
    return {
        "SECRET_KEY": PLACEHOLDER_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'study.sqlite3'}",
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        # SQLite waits this long for a lock before failing with "database is locked".
        "SQLITE_BUSY_TIMEOUT_MS": 15_000,
        # Normalised stimulus images, stored by content digest.
        "STIMULUS_STORE": str(instance / "stimuli"),
        # Participant API bodies are small; anything larger is refused with 413.
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # Signed stimulus URLs stay valid this long after their block is served.
        "STIMULUS_URL_MAX_AGE_S": 6 * 3600,
        # Key for pseudonymising platform ids in exports; defaults to SECRET_KEY.
        "PSEUDONYM_KEY": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,
        "WTF_CSRF_TIME_LIMIT": None,
        # Failed researcher logins before the account is locked for a while.
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_LOCKOUT_S": 15 * 60,
    }


def load(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Fill ``app.config`` in the documented order and check it is safe."""
    app.config.from_mapping(defaults(app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env(ENV_PREFIX)
    if test_config is not None:
        app.config.from_mapping(test_config)
    check(app)


def check(app: Flask) -> None:
    """Refuse unsafe settings outside debug/testing: the placeholder secret key,
    or one shorter than ``MIN_SECRET_KEY_LENGTH`` (it signs sessions, CSRF
    tokens and stimulus URLs, and keys the export's pseudonyms)."""
    if app.debug or app.testing:
        return
    key = app.config.get("SECRET_KEY")
    where = (
        f"Set a random key in {os.path.join(app.instance_path, 'config.py')} "
        f"(SECRET_KEY = '...') or in the environment variable "
        f"{ENV_PREFIX}_SECRET_KEY; generate one with: "
        "python -c 'import secrets; print(secrets.token_hex(32))' (or run "
        "python -m study_server.instance, which writes the file with one)"
    )
    if key in (None, "", PLACEHOLDER_SECRET_KEY):
        raise ConfigurationError(f"SECRET_KEY is the placeholder. {where}")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            f"SECRET_KEY has {len(key)} characters; at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters are needed. {where}"
        )
