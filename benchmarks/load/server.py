"""The server under load: a fresh database, a generated study, gunicorn on loopback.

:class:`Database` makes a fresh SQLite file in a temporary instance folder or
a fresh PostgreSQL database on the local server, and drops it afterwards.
:func:`load_study` writes a study of random images and loads it through the
real ``flask study load`` command. :class:`Gunicorn` runs the app in a
gunicorn subprocess bound to 127.0.0.1 and a free port, and can kill one of
its workers or restart it on the same port and database.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image

HOST = "127.0.0.1"
POSTGRES_ADMIN_URI = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Database:
    """A fresh database for one run: ``sqlite`` or ``postgres``."""

    kind: str
    instance: Path
    name: str = field(default_factory=lambda: f"load_{secrets.token_hex(4)}")

    @property
    def uri(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.instance / 'study.sqlite3'}"
        return POSTGRES_ADMIN_URI.rsplit("/", 1)[0] + f"/{self.name}"

    def create(self) -> None:
        if self.kind != "postgres":
            return
        admin = sa.create_engine(POSTGRES_ADMIN_URI, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        admin.dispose()

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        admin = sa.create_engine(POSTGRES_ADMIN_URI, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            )
        admin.dispose()


def postgres_backend_cpu_s(name: str) -> float:
    """CPU seconds used so far by the live server processes serving database ``name``.

    Backends that already exited (a terminated connection) are not counted.
    """
    engine = sa.create_engine(POSTGRES_ADMIN_URI)
    with engine.connect() as connection:
        pids = connection.scalars(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        ).all()
    engine.dispose()
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime are fields 14 and 15 of /proc/<pid>/stat.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def app_environment(database: Database, secret_key: str) -> dict[str, str]:
    """The environment that configures the app for this run (see config.py)."""
    env = dict(os.environ)
    env.update(
        {
            "STUDY_INSTANCE_PATH": str(database.instance),
            "STUDY_SQLALCHEMY_DATABASE_URI": database.uri,
            "STUDY_SECRET_KEY": secret_key,
            "FLASK_APP": "study_server",
        }
    )
    env.pop("FLASK_DEBUG", None)
    return env


@dataclass(frozen=True)
class StudyShape:
    """The generated study: images per source and the trial design."""

    slug: str = "load"
    models: tuple[str, ...] = ("m1", "m2")
    per_session: int = 100
    practice: int = 4
    checks: int = 2
    break_every: int = 25
    image_size: int = 64

    @property
    def trials_per_session(self) -> int:
        return self.per_session + self.practice + self.checks


def _write_images(folder: Path, n: int, rng: np.random.Generator, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img_{i:04d}.png")


def write_study(folder: Path, shape: StudyShape, seed: int = 8) -> Path:
    """Write random images and a study file; return the study file's path.

    Each session needs ``per_session / 2`` distinct real images and as many
    of its model's, so there are 20% more than that to choose from. Failed
    attention checks never screen a simulated participant out
    (``max_failed_checks = checks``): it answers at random and must finish.
    """
    rng = np.random.default_rng(seed)
    half = shape.per_session // 2
    n_images = half + half // 5 + 1
    _write_images(folder / "images/real", n_images, rng, shape.image_size)
    for model in shape.models:
        _write_images(
            folder / "images/generated" / model, n_images, rng, shape.image_size
        )
    _write_images(
        folder / "images/practice/real", shape.practice, rng, shape.image_size
    )
    _write_images(
        folder / "images/practice/generated", shape.practice, rng, shape.image_size
    )
    _write_images(
        folder / "images/checks/generated", shape.checks, rng, shape.image_size
    )
    study_file = folder / "study.toml"
    study_file.write_text(
        f'slug = "{shape.slug}"\n'
        'title = "Load test"\n'
        'dataset = "loadset"\n'
        "[trials]\n"
        f"per_session = {shape.per_session}\n"
        "real_fraction = 0.5\n"
        f"practice = {shape.practice}\n"
        f"checks = {shape.checks}\n"
        f"max_failed_checks = {shape.checks}\n"
        f"break_every = {shape.break_every}\n"
        "[recruitment]\n"
        'platform = "prolific"\n'
        "target_per_model = 100000\n"
        'completion_code = "LOADDONE"\n'
        "[display]\n"
        f"size = {shape.image_size}\n"
        "[images]\n"
        'real = "images/real"\n'
        'generated = "images/generated"\n'
        'practice = "images/practice"\n'
        'checks = "images/checks"\n',
        encoding="utf-8",
    )
    return study_file


def flask_command(env: dict[str, str], *args: str) -> str:
    """Run ``flask <args>`` for the app; return its output, or raise with it."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"flask {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def load_study(env: dict[str, str], study_file: Path) -> str:
    """Create the schema and load the study through the real commands."""
    flask_command(env, "init-db")
    return flask_command(env, "study", "load", str(study_file), "--quiet")


@dataclass
class ServerOptions:
    """How gunicorn runs the app."""

    workers: int = 2
    threads: int = 8
    worker_class: str = "gthread"
    graceful_timeout_s: int = 10


class Gunicorn:
    """The app under gunicorn on 127.0.0.1:``port``, as a child process."""

    def __init__(
        self, env: dict[str, str], options: ServerOptions, port: int, log_path: Path
    ):
        self.env = env
        self.options = options
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        options = self.options
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(options.workers),
            "--worker-class",
            options.worker_class,
            "--graceful-timeout",
            str(options.graceful_timeout_s),
            "--timeout",
            "60",
            # Long enough that a participant thinking between trials keeps
            # its connection; gthread parks idle keep-alive connections.
            "--keep-alive",
            "5",
            "--backlog",
            "2048",
            "--error-logfile",
            str(self.log_path),
            # Import the app once in the master: a worker killed mid-load is
            # replaced by a fork in milliseconds instead of a fresh import.
            "--preload",
        ]
        if options.worker_class == "gthread":
            command += ["--threads", str(options.threads)]
        return [*command, "study_server:create_app()"]

    def start(self, timeout_s: float = 60.0) -> None:
        """Start gunicorn and wait until the app answers."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        url = f"{self.base_url}/api/v1/openapi.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"gunicorn exited with {code}; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (graceful: in-flight requests finish), then SIGKILL if stuck."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> float:
        """Stop gracefully and start again on the same port; return the downtime."""
        began = time.monotonic()
        self.stop()
        self.start()
        self.restarts += 1
        return time.monotonic() - began

    def worker_pids(self) -> list[int]:
        """The current worker processes (children of the master)."""
        if self.process is None:
            return []
        master = self.process.pid
        try:
            text = Path(f"/proc/{master}/task/{master}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def cpu_s(self) -> float:
        """CPU seconds the master and its workers have used so far.

        Read from ``/proc``: the master's own time and that of workers it
        has reaped, plus the live workers' time. Taken when the load begins,
        it is the cost of starting the server (imports, app creation), which
        the run's figure per request leaves out.
        """
        if self.process is None:
            return 0.0
        master = self.process.pid
        total_ticks = 0
        for pid, with_children in [(master, True)] + [
            (worker, False) for worker in self.worker_pids()
        ]:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            # Fields after the command name in parentheses; utime is the 14th.
            fields = stat.rsplit(")", 1)[1].split()
            total_ticks += int(fields[11]) + int(fields[12])
            if with_children:
                total_ticks += int(fields[13]) + int(fields[14])
        return total_ticks / os.sysconf("SC_CLK_TCK")

    def kill_worker(self) -> int | None:
        """SIGKILL one worker (the master starts a new one); return its pid."""
        pids = self.worker_pids()
        if not pids:
            return None
        pid = random.choice(pids)
        os.kill(pid, signal.SIGKILL)
        return pid
