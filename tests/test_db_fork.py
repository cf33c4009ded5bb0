"""A worker forked from a process that used the database (gunicorn --preload)
opens its own connections and leaves the parent's working."""

from __future__ import annotations

import os

import sqlalchemy as sa

from study_server.db import db


def _in_child(app, parent_connection) -> bytes:
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
        shared = connection.connection.dbapi_connection is parent_connection
    return b"shared" if shared else b"own"


def test_forked_child_does_not_use_the_parents_pooled_connection(app):
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            parent_connection = connection.connection.dbapi_connection
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and leave without pytest's teardown
            try:
                os.write(write_end, _in_child(app, parent_connection))
            except BaseException as exc:  # reported to the parent
                os.write(write_end, f"error {exc!r}".encode()[:200])
            finally:
                os._exit(0)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        answer = os.read(read_end, 256)
        os.close(read_end)
        assert status == 0
        assert answer == b"own"
        # The child did not close the parent's connection on its way out.
        with db.engine.connect() as connection:
            assert connection.connection.dbapi_connection is parent_connection
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
