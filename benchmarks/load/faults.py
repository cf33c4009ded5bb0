"""Faults injected mid-load, each a coroutine that runs beside the participants.

- ``kill-worker``: SIGKILL a gunicorn worker, three times, 5 s apart; the
  master starts new ones. Requests in flight on it get no answer.
- ``restart``: SIGTERM the whole server (in-flight requests finish), then
  start it again on the same port and database.
- ``db-terminate``: PostgreSQL: ``pg_terminate_backend`` on every connection
  of the run's database, every 0.1 s for 5 s. SQLite has no connections to
  terminate; there the database is instead locked by another process
  (``BEGIN EXCLUSIVE``) for 3 s, twice, so writers wait on the busy timeout.
- ``drop-retry``: done by the participants (see participant.py).

Every blocking call runs in a thread so the participants' event loop goes on.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable

import sqlalchemy as sa
from server import POSTGRES_ADMIN_URI, Database, Gunicorn

FAULTS = ("none", "kill-worker", "restart", "db-terminate", "drop-retry")

Log = Callable[[str], None]


async def kill_workers(
    server: Gunicorn, at_s: float, log: Log, times: int = 3, every_s: float = 5.0
) -> None:
    await asyncio.sleep(at_s)
    for i in range(times):
        pid = server.kill_worker()
        log(f"fault: SIGKILL worker pid {pid} ({i + 1} of {times})")
        await asyncio.sleep(every_s)


async def restart_server(server: Gunicorn, at_s: float, log: Log) -> None:
    await asyncio.sleep(at_s)
    log("fault: SIGTERM to the gunicorn master; starting again on the same port")
    downtime = await asyncio.to_thread(server.restart)
    log(f"fault: server answered again after {downtime:.2f} s")


def _terminate_backends(name: str) -> int:
    engine = sa.create_engine(POSTGRES_ADMIN_URI, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return len(
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).all()
            )
    finally:
        engine.dispose()


async def terminate_connections(
    database: Database,
    at_s: float,
    log: Log,
    duration_s: float = 5.0,
    every_s: float = 0.1,
) -> None:
    await asyncio.sleep(at_s)
    log(f"fault: terminating every connection to {database.name} for {duration_s} s")
    terminated = 0
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        terminated += await asyncio.to_thread(_terminate_backends, database.name)
        await asyncio.sleep(every_s)
    log(f"fault: {terminated} connections terminated")


def _hold_exclusive_lock(path: str, hold_s: float) -> None:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        time.sleep(hold_s)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def lock_sqlite(
    database: Database, at_s: float, log: Log, hold_s: float = 3.0, times: int = 2
) -> None:
    await asyncio.sleep(at_s)
    path = database.uri.removeprefix("sqlite:///")
    for i in range(times):
        log(f"fault: SQLite locked exclusively for {hold_s} s ({i + 1} of {times})")
        await asyncio.to_thread(_hold_exclusive_lock, path, hold_s)
        await asyncio.sleep(2.0)


def injector(
    fault: str, server: Gunicorn, database: Database, at_s: float, log: Log
) -> Callable[[], object] | None:
    """The coroutine function that injects ``fault``; None when there is none."""
    if fault == "kill-worker":
        return lambda: kill_workers(server, at_s, log)
    if fault == "restart":
        return lambda: restart_server(server, at_s, log)
    if fault == "db-terminate" and database.kind == "postgres":
        return lambda: terminate_connections(database, at_s, log)
    if fault == "db-terminate":
        return lambda: lock_sqlite(database, at_s, log)
    return None
