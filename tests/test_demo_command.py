"""``flask demo``: the README's main command sets up a study people can take."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from researcher_helpers import login
from sqlalchemy import func, select

from study_server.db import db
from study_server.models import Researcher, Stimulus, Study

LINK = re.compile(r"Participant link:\s+http://127\.0\.0\.1:5055(/s/[\w-]+)")
LOGIN = re.compile(r"user 'demo', password '([^']+)'")


@pytest.fixture
def demo_output(app, runner) -> str:
    # The demo builds its schema through the migrations, as on a new machine.
    with app.app_context():
        db.drop_all()
    result = runner.invoke(args=["demo", "--port", "5055"])
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_prints_a_working_participant_link_and_login(app, client, demo_output):
    link, password = LINK.search(demo_output), LOGIN.search(demo_output)
    assert link and password, demo_output

    arrival = client.get(
        f"{link.group(1)}?PROLIFIC_PID=demo1&STUDY_ID=s&SESSION_ID=x",
        follow_redirects=True,
    )
    assert arrival.status_code == 200
    assert "consent" in arrival.get_data(as_text=True).lower()

    assert login(client, "demo", password.group(1)).status_code == 302
    assert client.get("/researcher/").status_code == 200

    password_file = Path(app.instance_path) / "demo-researcher.txt"
    assert password_file.read_text().strip() == password.group(1)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600


def test_demo_loads_an_open_study_with_its_images(app, demo_output):
    with app.app_context():
        study = db.session.scalar(select(Study))
        assert study.status == "open"
        roles = dict(
            db.session.execute(
                select(Stimulus.role, func.count())
                .where(Stimulus.study_id == study.id)
                .group_by(Stimulus.role)
            ).all()
        )
    assert set(roles) == {"main", "practice", "check"}
    assert all(n > 0 for n in roles.values())


def test_running_demo_again_keeps_what_is_stored(app, runner, demo_output):
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Stimulus))
    again = runner.invoke(args=["demo", "--port", "5055"])
    assert again.exit_code == 0, again.output
    # The same login is printed again; no second researcher, no new images.
    assert LOGIN.search(again.output).group(1) == LOGIN.search(demo_output).group(1)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Researcher)) == 1
        assert db.session.scalar(select(func.count()).select_from(Stimulus)) == before


def test_demo_sets_a_new_password_when_its_file_is_lost(app, runner, demo_output):
    old = LOGIN.search(demo_output).group(1)
    (Path(app.instance_path) / "demo-researcher.txt").unlink()
    again = runner.invoke(args=["demo", "--port", "5055"])
    assert again.exit_code == 0, again.output
    new = LOGIN.search(again.output).group(1)
    assert new != old
    client = app.test_client()
    assert login(client, "demo", new).status_code == 302


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_make_demo_steps_serve_the_study_on_localhost(tmp_path):
    """The Makefile's demo recipe, step by step, then a participant's first page."""
    env = {**os.environ, "STUDY_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("STUDY_SQLALCHEMY_DATABASE_URI", None)
    flask = [sys.executable, "-m", "flask", "--app", "study_server"]
    port = _free_port()
    subprocess.run([sys.executable, "-m", "study_server.instance"], env=env, check=True)
    setup = subprocess.run(
        [*flask, "demo", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stderr
    link = re.search(
        rf"Participant link:\s+(http://127\.0\.0\.1:{port}/s/[\w-]+)", setup.stdout
    )
    assert link, setup.stdout

    server = subprocess.Popen(
        [*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"{link.group(1)}?PROLIFIC_PID=demo1&STUDY_ID=s&SESSION_ID=x"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    page = answer.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert "consent" in page.lower()
    finally:
        server.terminate()
        server.wait(timeout=10)
