"""``flask researcher create|password|unlock|list``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash

from study_server.db import db, utcnow
from study_server.models import Researcher

SECRET = "a long enough secret"


def stored(app, username: str = "bob") -> Researcher | None:
    with app.app_context():
        found = db.session.scalar(
            select(Researcher).where(Researcher.username == username)
        )
        if found is not None:
            db.session.expunge(found)
        return found


def test_create_asks_twice_and_stores_a_hash(app, runner):
    result = runner.invoke(
        args=["researcher", "create", "bob"], input=f"{SECRET}\n{SECRET}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output and "Repeat the password:" in result.output
    assert SECRET not in result.output  # hidden input is not echoed
    researcher = stored(app)
    assert researcher.password_hash.startswith("scrypt:")
    assert SECRET not in researcher.password_hash
    assert check_password_hash(researcher.password_hash, SECRET)


def test_create_asks_again_when_the_passwords_differ(app, runner):
    result = runner.invoke(
        args=["researcher", "create", "bob"],
        input=f"{SECRET}\nsomething else entirely\n{SECRET}\n{SECRET}\n",
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert check_password_hash(stored(app).password_hash, SECRET)


def test_create_reads_the_password_from_stdin(app, runner):
    result = runner.invoke(
        args=["researcher", "create", "bob", "--password-stdin"], input=f"{SECRET}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Password:" not in result.output
    assert check_password_hash(stored(app).password_hash, SECRET)

    empty = runner.invoke(
        args=["researcher", "create", "carol", "--password-stdin"], input="\n"
    )
    assert empty.exit_code == 2
    assert "no password on standard input" in empty.output


def test_create_refuses_bad_input(app, runner):
    def create(username: str, password: str):
        return runner.invoke(
            args=["researcher", "create", username, "--password-stdin"],
            input=f"{password}\n",
        )

    short = create("bob", "short")
    assert short.exit_code == 1
    assert "the password has 5 characters; at least 10 are required" in short.output
    bad_name = create("bob smith", SECRET)
    assert bad_name.exit_code == 1
    assert "username 'bob smith' is not allowed" in bad_name.output
    assert create("bob", SECRET).exit_code == 0
    taken = create("bob", SECRET)
    assert taken.exit_code == 1
    assert "a researcher named 'bob' already exists" in taken.output


def _create(runner, username: str, password: str = SECRET):
    return runner.invoke(
        args=["researcher", "create", username, "--password-stdin"],
        input=f"{password}\n",
    )


def test_usernames_are_unique_ignoring_case(app, runner):
    assert _create(runner, "alice").exit_code == 0

    for other in ("Alice", "ALICE", "aLiCe"):
        refused = _create(runner, other)
        assert refused.exit_code == 1, other
        assert refused.stderr == (
            "Error: a researcher named 'alice' already exists (usernames ignore case)\n"
        )
    with app.app_context():
        names = db.session.scalars(select(Researcher.username)).all()
    assert names == ["alice"]

    # The other commands find the account whatever the case.
    new = "another long secret"
    changed = runner.invoke(
        args=["researcher", "password", "ALICE", "--password-stdin"],
        input=f"{new}\n",
    )
    assert changed.exit_code == 0, changed.output
    assert check_password_hash(stored(app, "alice").password_hash, new)
    assert runner.invoke(args=["researcher", "unlock", "Alice"]).exit_code == 0


def test_whitespace_only_passwords_are_refused(app, runner):
    for password, n in ((" " * 12, 12), ("\t" * 10, 10), (" \t " * 4, 12)):
        refused = _create(runner, "bob", password)
        assert refused.exit_code == 1, repr(password)
        assert refused.stderr == (
            f"Error: the password is {n} whitespace character(s) and nothing "
            "else; use letters, digits or symbols\n"
        )
    assert stored(app) is None

    assert _create(runner, "bob").exit_code == 0
    changed = runner.invoke(
        args=["researcher", "password", "bob", "--password-stdin"],
        input=" " * 12 + "\n",
    )
    assert changed.exit_code == 1
    assert "the password is 12 whitespace character(s)" in changed.stderr
    assert check_password_hash(stored(app).password_hash, SECRET)
    # Spaces inside a passphrase are fine.
    assert _create(runner, "carol", "  two words  ").exit_code == 0


def test_password_unlock_and_list(app, runner):
    runner.invoke(
        args=["researcher", "create", "bob", "--password-stdin"], input=f"{SECRET}\n"
    )
    with app.app_context():
        researcher = db.session.scalar(select(Researcher))
        researcher.locked_until = utcnow() + timedelta(minutes=10)
        researcher.failed_logins = 3
        db.session.commit()

    listing = runner.invoke(args=["researcher", "list"])
    assert listing.exit_code == 0
    assert "bob" in listing.output and "last login never" in listing.output
    assert "locked until" in listing.output

    assert runner.invoke(args=["researcher", "unlock", "bob"]).exit_code == 0
    assert (stored(app).locked_until, stored(app).failed_logins) == (None, 0)
    missing = runner.invoke(args=["researcher", "unlock", "zed"])
    assert missing.exit_code == 1
    assert "no researcher named 'zed'" in missing.output

    new = "another long secret"
    changed = runner.invoke(
        args=["researcher", "password", "bob", "--password-stdin"], input=f"{new}\n"
    )
    assert changed.exit_code == 0, changed.output
    assert check_password_hash(stored(app).password_hash, new)


def test_list_without_researchers(runner):
    result = runner.invoke(args=["researcher", "list"])
    assert result.exit_code == 0
    assert "No researchers yet" in result.output
