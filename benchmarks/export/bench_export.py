"""Benchmark: streaming per-trial export against pandas.read_sql + to_csv.

Fills a study database directly with bulk inserts (N trials: N/200 sessions
of 200 trials), then exports the per-trial table in a fresh subprocess per
method and reports wall time and peak memory (the subprocess's peak resident
set size, and its growth over the size after imports):

``export``
    The study server's export (:mod:`study_server.services.exports`:
    ``trial_rows`` + ``write_csv``, as ``flask export`` and the dashboard
    download run it), with pseudonyms.
``export-parquet``
    The same rows written as Parquet record batches (needs pyarrow).
``baseline``
    ``pandas.read_sql`` of the same joined query, then ``DataFrame.to_csv``:
    the obvious way, which holds the whole table in memory.

Run from the repository root::

    python benchmarks/export/bench_export.py                      # SQLite
    python benchmarks/export/bench_export.py --trials 100000,1000000 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

Timings on a shared machine are noisy; compare the ratios printed in one run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TRIALS_PER_SESSION = 200
MODELS = ("ddpm", "stylegan2", "ldm", "vq-gan", "biggan")
IMAGES_PER_SOURCE = 400
INSERT_CHUNK = 50_000
METHODS = ("export", "export-parquet", "baseline")


def _rss_mb() -> float:
    """Current resident set size of this process, MiB (Linux)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB (Linux).

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over a fork and
    exec, so a worker started by the (large) filling process would report the
    parent's size.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def make_app(uri: str):
    os.environ.setdefault("STUDY_INSTANCE_PATH", tempfile.mkdtemp(prefix="bench-"))
    from study_server import create_app

    return create_app(
        {"SQLALCHEMY_DATABASE_URI": uri, "SECRET_KEY": secrets.token_hex(16)}
    )


# --- filling -----------------------------------------------------------------


def fill(uri: str, n_trials: int) -> None:
    """Create the schema and insert one study with ``n_trials`` answered trials."""
    from sqlalchemy import insert

    from study_server.db import db
    from study_server.models import Participant, Session, Stimulus, Study, Trial

    app = make_app(uri)
    rng = random.Random(0)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with app.app_context():
        db.create_all()
        engine = db.engine
    with engine.begin() as connection:
        study_id = connection.execute(
            insert(Study.__table__).returning(Study.__table__.c.id),
            {
                "slug": "bench",
                "title": "Benchmark",
                "dataset": "bench",
                "design": "between",
                "status": "open",
                "settings": {"recruitment": {"target_per_model": 10**6}},
                "settings_digest": "0" * 64,
                "assignment_seq": 0,
                "created_at": t0,
                "updated_at": t0,
            },
        ).scalar_one()
        stimuli = []
        for source in ("real", *MODELS):
            for i in range(IMAGES_PER_SOURCE):
                stimuli.append(
                    {
                        "study_id": study_id,
                        "digest": secrets.token_hex(32),
                        "source": source,
                        "is_real": source == "real",
                        "role": "main",
                        "width": 256,
                        "height": 256,
                        "original_path": f"{source}/{i}.png",
                        "shown_count": 0,
                        "active": True,
                        "created_at": t0,
                    }
                )
        connection.execute(insert(Stimulus.__table__), stimuli)
    with engine.connect() as connection:
        from sqlalchemy import select

        rows = connection.execute(
            select(Stimulus.__table__.c.id, Stimulus.__table__.c.source)
        ).all()
    ids: dict[str, list[int]] = {}
    for stimulus_id, source in rows:
        ids.setdefault(source, []).append(stimulus_id)

    n_sessions = max(1, n_trials // TRIALS_PER_SESSION)
    with engine.begin() as connection:
        connection.execute(
            insert(Participant.__table__),
            [
                {
                    "platform": "prolific",
                    "external_id": f"{i:024x}",
                    "created_at": t0,
                }
                for i in range(n_sessions)
            ],
        )
        connection.execute(
            insert(Session.__table__),
            [
                {
                    "public_id": f"{i:016x}",
                    "token": secrets.token_urlsafe(32),
                    "study_id": study_id,
                    "participant_id": i + 1,
                    "status": "completed",
                    "model": MODELS[i % len(MODELS)],
                    "platform_data": {},
                    "key_mapping": "f=real",
                    "exposure_ms": 500.0,
                    "frame_interval_ms": 16.68,
                    "exposure_frames": 30,
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131",
                    "answers": {"comments": "fine"},
                    "n_trials": TRIALS_PER_SESSION,
                    "n_answered": TRIALS_PER_SESSION,
                    "checks_failed": 0,
                    "started_at": t0 + timedelta(minutes=i),
                    "last_seen_at": t0 + timedelta(minutes=i + 12),
                    "completed_at": t0 + timedelta(minutes=i + 12),
                }
                for i in range(n_sessions)
            ],
        )

    chunk: list[dict] = []
    for session in range(n_sessions):
        model = MODELS[session % len(MODELS)]
        start = t0 + timedelta(minutes=session)
        for position in range(TRIALS_PER_SESSION):
            is_real = position % 2 == 0
            source = "real" if is_real else model
            response = rng.choice(("real", "generated"))
            served = start + timedelta(seconds=position * 3)
            chunk.append(
                {
                    "session_id": session + 1,
                    "stimulus_id": rng.choice(ids[source]),
                    "position": position,
                    "block": position // 50,
                    "kind": "main",
                    "source": source,
                    "is_real": is_real,
                    "served_at": served,
                    "response": response,
                    "correct": (response == "real") == is_real,
                    "rt_ms": round(rng.lognormvariate(6.6, 0.4), 1),
                    "exposure_ms": 500.4,
                    "intended_frames": 30,
                    "achieved_frames": 30 if rng.random() > 0.02 else 31,
                    "frame_interval_ms": 16.68,
                    "onset_ms": 1000.0 + position * 3000,
                    "offset_ms": 1500.4 + position * 3000,
                    "visibility_lost": False,
                    "focus_lost": False,
                    "timing_invalid": False,
                    "payload_digest": None,
                    "responded_at": served + timedelta(seconds=1.2),
                }
            )
            if len(chunk) == INSERT_CHUNK:
                with engine.begin() as connection:
                    connection.execute(insert(Trial.__table__), chunk)
                chunk.clear()
    if chunk:
        with engine.begin() as connection:
            connection.execute(insert(Trial.__table__), chunk)
    engine.dispose()


# --- workers (one fresh process per measurement) ------------------------------


def worker(method: str, uri: str, out: Path) -> dict:
    """Export the trials of study 'bench' with ``method``; return figures."""
    app = make_app(uri)
    from study_server.db import db
    from study_server.services import exports
    from study_server.services.pseudonyms import Pseudonymizer
    from study_server.studyfile import StudySettings  # noqa: F401 - warm imports

    # Import what each method needs before measuring where memory starts.
    if method == "baseline":
        import pandas as pd
    if method == "export-parquet":
        import pyarrow.parquet  # noqa: F401

    base = _rss_mb()
    started = time.perf_counter()
    with app.app_context():
        engine = db.engine
        with exports.read_connection(engine) as connection:
            study = exports.study_info(connection, "bench")
            if method == "baseline":
                statement = _baseline_statement(study.id)
                frame = pd.read_sql(statement, connection)
                frame.to_csv(out, index=False)
                rows = len(frame)
            else:
                names = Pseudonymizer(b"benchmark")
                trial_rows = exports.trial_rows(connection, study, names)
                columns = exports.TRIAL_COLUMNS
                if method == "export":
                    with open(out, "w", encoding="utf-8", newline="") as handle:
                        rows = _last(exports.write_csv(handle, columns, trial_rows))
                else:
                    with open(out, "wb") as handle:
                        steps = exports.write_parquet(handle, columns, trial_rows)
                        rows = _last(steps)
    seconds = time.perf_counter() - started
    peak = _peak_rss_mb()
    return {
        "method": method,
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "growth_mb": peak - base,
        "file_mb": out.stat().st_size / 2**20,
    }


def _last(steps) -> int:
    """Run a writer to the end; return the last row count it reported."""
    last = collections.deque(steps, maxlen=1)
    return last[0] if last else 0


# Trial columns read by the baseline, as stored.
BASELINE_TRIAL_FIELDS = (
    "is_real",
    "kind",
    "position",
    "block",
    "response",
    "correct",
    "rt_ms",
    "exposure_ms",
    "intended_frames",
    "achieved_frames",
    "frame_interval_ms",
    "onset_ms",
    "offset_ms",
    "visibility_lost",
    "focus_lost",
    "timing_invalid",
    "served_at",
    "responded_at",
)


def _baseline_statement(study_id: int):
    from sqlalchemy import select

    from study_server.models import Participant, Session, Stimulus, Trial

    trial = Trial.__table__
    session = Session.__table__
    participant = Participant.__table__
    stimulus = Stimulus.__table__
    return (
        select(
            session.c.public_id.label("session"),
            participant.c.external_id.label("participant"),
            participant.c.platform,
            session.c.status.label("session_status"),
            session.c.model,
            trial.c.source,
            stimulus.c.digest.label("stimulus"),
            *[trial.c[name] for name in BASELINE_TRIAL_FIELDS],
        )
        .select_from(
            trial.join(session, trial.c.session_id == session.c.id)
            .join(participant, session.c.participant_id == participant.c.id)
            .join(stimulus, trial.c.stimulus_id == stimulus.c.id)
        )
        .where(session.c.study_id == study_id)
        .order_by(trial.c.session_id, trial.c.position)
    )


def measure(method: str, uri: str, folder: Path) -> dict:
    out = folder / f"{method}.out"
    command = [sys.executable, __file__, "--worker", method, "--db", uri]
    command += ["--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{done.stderr}")
    out.unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- databases ----------------------------------------------------------------


class PostgresSchema:
    """A fresh schema in a PostgreSQL database, dropped afterwards."""

    def __init__(self, uri: str):
        import sqlalchemy as sa

        self.admin = sa.create_engine(uri)
        self.name = f"bench_{secrets.token_hex(4)}"
        with self.admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{self.name}"'))
        separator = "&" if "?" in uri else "?"
        self.uri = f"{uri}{separator}options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        import sqlalchemy as sa

        with self.admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self.admin.dispose()


def run(backend: str, sizes: list[int], postgres_uri: str | None) -> list[dict]:
    results = []
    methods = [m for m in METHODS if m != "export-parquet" or _has_pyarrow()]
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
            folder = Path(tmp)
            schema = None
            if backend == "sqlite":
                uri = f"sqlite:///{folder / 'bench.sqlite3'}"
            else:
                schema = PostgresSchema(postgres_uri or "")
                uri = schema.uri
            try:
                started = time.perf_counter()
                fill(uri, n)
                print(
                    f"[{backend}] filled {n:,} trials in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                for method in methods:
                    figures = measure(method, uri, folder)
                    figures.update(backend=backend, n=n)
                    results.append(figures)
                    print(
                        f"[{backend}] {n:>9,} {method:15} {figures['seconds']:7.1f} s  "
                        f"peak {figures['peak_rss_mb']:7.1f} MiB  "
                        f"growth {figures['growth_mb']:7.1f} MiB",
                        flush=True,
                    )
            finally:
                if schema is not None:
                    schema.drop()
    return results


def _has_pyarrow() -> bool:
    from study_server.services.exports import pyarrow_available

    return pyarrow_available()


def report(results: list[dict]) -> None:
    print()
    print(
        f"{'backend':8} {'trials':>10} {'method':15} {'time s':>8} {'x base':>7} "
        f"{'peak MiB':>9} {'growth MiB':>10} {'x base':>7} {'file MiB':>9}"
    )
    for r in results:
        base = next(
            b
            for b in results
            if b["backend"] == r["backend"]
            and b["n"] == r["n"]
            and b["method"] == "baseline"
        )
        print(
            f"{r['backend']:8} {r['n']:>10,} {r['method']:15} {r['seconds']:8.1f} "
            f"{r['seconds'] / base['seconds']:7.2f} {r['peak_rss_mb']:9.1f} "
            f"{r['growth_mb']:10.1f} {r['peak_rss_mb'] / base['peak_rss_mb']:7.2f} "
            f"{r['file_mb']:9.1f}"
        )
    print()
    print("x base: ratio to pandas.read_sql + to_csv on the same data in this run.")
    print("growth: peak resident memory minus the resident memory after imports.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", default="100000,1000000", help="comma-separated")
    parser.add_argument("--postgres", help="also run on this PostgreSQL database URI")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.db, args.out)))
        return
    sizes = [int(x) for x in args.trials.split(",")]
    results = run("sqlite", sizes, None)
    if args.postgres:
        results += run("postgres", sizes, args.postgres)
    report(results)


if __name__ == "__main__":
    main()
