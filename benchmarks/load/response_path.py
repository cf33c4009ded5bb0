"""Server CPU per stored response, in-process, without HTTP or a load generator.

The load harness (``run.py``) measures the whole system; this measures the one
thing the throughput target depends on most: how much Python CPU the app
spends storing one response (``PUT /api/v1/sessions/<token>/trials/<n>``)
through the Flask test client, on SQLite and on PostgreSQL. It prints
milliseconds of process CPU and of wall time per response, and the same for
an empty request through the app (``GET /api/v1/openapi.json`` is cached
JSON) as the floor that Flask itself costs, so the ratio shows what the
response path adds. It also counts the statements each kind of request sends
to the database (``BEGIN`` and ``COMMIT`` included): every one is a round trip
during which a request under load waits to get Python's GIL back.

Run from the repository root::

    python benchmarks/load/response_path.py --db sqlite --db postgres
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import Database, StudyShape, write_study

HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )
}


def _answer(position: int) -> dict:
    return {
        "response": random.choice(["real", "generated"]),
        "rt_ms": 400.0 + position,
        "exposure_ms": 500.4,
        "intended_frames": 30,
        "achieved_frames": 30,
        "frame_interval_ms": 16.68,
        "onset_ms": 1000.0 + position,
        "offset_ms": 1500.4 + position,
        "visibility_lost": False,
        "focus_lost": False,
    }


def _start(client, i: int) -> tuple[str, int]:
    params = {"PROLIFIC_PID": f"P{i:05d}", "STUDY_ID": "S", "SESSION_ID": f"X{i}"}
    body = {
        "platform": "prolific",
        "params": params,
        "consent": True,
        "window": {"width": 1280, "height": 800},
    }
    state = client.post(
        "/api/v1/studies/load/sessions", json=body, headers=HEADERS
    ).json
    token = state["token"]
    client.post(
        f"/api/v1/sessions/{token}/device",
        json={"frame_interval_ms": 16.68, "n_frames": 120},
    )
    return token, state["n_blocks"]


class StatementCounter:
    """Counts statements (with BEGIN and COMMIT) sent through an engine."""

    def __init__(self, engine) -> None:
        import sqlalchemy as sa

        self.n = 0
        for name in ("before_cursor_execute", "commit"):
            sa.event.listen(engine, name, self._count)
        sa.event.listen(engine, "begin", self._count_begin)

    def _count(self, *args, **kwargs) -> None:
        self.n += 1

    def _count_begin(self, connection) -> None:
        # An autocommit connection sends no BEGIN.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.n += 1

    def since(self, mark: int, per: int) -> float:
        return (self.n - mark) / per


def _answer_session(
    client, token: str, n_blocks: int, statements: StatementCounter
) -> tuple[int, float, float, float, int]:
    """Answer every trial block by block.

    Returns the count of answers, PUT cpu and wall seconds, block GET cpu s,
    and the statements sent for the block GETs.
    """
    n, cpu_s, wall_s, block_s, block_statements = 0, 0.0, 0.0, 0.0, 0
    for block in range(n_blocks):
        cpu, mark = time.process_time(), statements.n
        trials = client.get(f"/api/v1/sessions/{token}/blocks/{block}").json["trials"]
        block_s += time.process_time() - cpu
        block_statements += statements.n - mark
        cpu, wall = time.process_time(), time.perf_counter()
        for trial in trials:
            position = trial["position"]
            answer = client.put(
                f"/api/v1/sessions/{token}/trials/{position}", json=_answer(position)
            )
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.json}")
        cpu_s += time.process_time() - cpu
        wall_s += time.perf_counter() - wall
        n += len(trials)
    return n, cpu_s, wall_s, block_s, block_statements


def measure(kind: str, n_sessions: int, per_session: int) -> dict[str, float]:
    from study_server import create_app
    from study_server.db import db, upgrade_schema
    from study_server.services.studies import load_study

    with tempfile.TemporaryDirectory() as tmp:
        database = Database(kind, Path(tmp) / "instance")
        database.create()
        try:
            os.environ["STUDY_INSTANCE_PATH"] = str(database.instance)
            app = create_app(
                {
                    "SECRET_KEY": secrets.token_hex(16),
                    "SQLALCHEMY_DATABASE_URI": database.uri,
                    "STIMULUS_STORE": str(Path(tmp) / "stimuli"),
                }
            )
            shape = StudyShape(per_session=per_session, break_every=per_session)
            study_file = write_study(Path(tmp) / "study", shape)
            with app.app_context():
                upgrade_schema()
                load_study(study_file, app.config["STIMULUS_STORE"], progress=False)
            client = app.test_client()
            with app.app_context():
                statements = StatementCounter(db.engine)
            _start(client, n_sessions)  # warm-up: first queries, caches
            cpu, mark = time.process_time(), statements.n
            started = [_start(client, i) for i in range(n_sessions)]
            start_cpu = (time.process_time() - cpu) / n_sessions * 1e3
            # Each _start also posts the device check: counted with the start.
            start_statements = statements.since(mark, n_sessions)

            for _ in range(200):
                client.get("/api/v1/openapi.json")
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(2000):
                client.get("/api/v1/openapi.json")
            floor_cpu = (time.process_time() - cpu) / 2000 * 1e3
            floor_wall = (time.perf_counter() - wall) / 2000 * 1e3

            n, cpu_s, wall_s, block_s, n_block, block_statements = 0, 0, 0, 0, 0, 0
            mark = statements.n
            for token, n_blocks in started:
                counts = _answer_session(client, token, n_blocks, statements)
                n, cpu_s, wall_s = n + counts[0], cpu_s + counts[1], wall_s + counts[2]
                block_s, n_block = block_s + counts[3], n_block + n_blocks
                block_statements += counts[4]
            put_cpu, put_wall = cpu_s / n * 1e3, wall_s / n * 1e3
            answer_statements = statements.since(mark + block_statements, n)
            with app.app_context():
                db.engine.dispose()
        finally:
            database.drop()
    return {
        "n": n,
        "floor_cpu": floor_cpu,
        "floor_wall": floor_wall,
        "put_cpu": put_cpu,
        "put_wall": put_wall,
        "start_cpu": start_cpu,
        "block_cpu": block_s / n_block * 1e3,
        "start_statements": start_statements,
        "answer_statements": answer_statements,
        "block_statements": block_statements / n_block,
    }


@click.command()
@click.option(
    "--db",
    "kinds",
    multiple=True,
    type=click.Choice(["sqlite", "postgres"]),
    default=("sqlite", "postgres"),
    show_default=True,
)
@click.option("--sessions", default=20, show_default=True)
@click.option("--per-session", default=50, show_default=True)
def main(kinds: tuple[str, ...], sessions: int, per_session: int) -> None:
    """Print server CPU and wall time per stored response, beside Flask's floor."""
    click.echo(
        f"load average {os.getloadavg()[0]:.1f}; {sessions} sessions x "
        f"{per_session + 6} trials"
    )
    click.echo(
        f"{'db':9} {'responses':>9} {'PUT cpu ms':>10} {'PUT wall ms':>11} "
        f"{'floor cpu ms':>12} {'ratio':>6} {'start cpu ms':>12} {'block cpu ms':>12}"
        f" {'stmts/start':>11} {'stmts/PUT':>9} {'stmts/block':>11}"
    )
    for kind in kinds:
        r = measure(kind, sessions, per_session)
        click.echo(
            f"{kind:9} {r['n']:9d} {r['put_cpu']:10.2f} {r['put_wall']:11.2f} "
            f"{r['floor_cpu']:12.2f} {r['put_cpu'] / r['floor_cpu']:6.1f} "
            f"{r['start_cpu']:12.2f} {r['block_cpu']:12.2f}"
            f" {r['start_statements']:11.1f} {r['answer_statements']:9.2f}"
            f" {r['block_statements']:11.1f}"
        )


if __name__ == "__main__":
    main()
