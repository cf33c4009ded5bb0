"""The wheel carries templates, static files and migrations, and the app finds them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(PROJECT_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("realism_study-*.whl")
    return path


@pytest.mark.slow
def test_wheel_contains_pages_assets_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "study_server/templates/base.html" in names
    assert "study_server/templates/error.html" in names
    assert "study_server/static/css/study.css" in names
    assert any(n.startswith("study_server/migrations/versions/") for n in names)
    assert "study_server/migrations/env.py" in names
    assert not any(n.startswith(("templates/", "static/", "tests/")) for n in names)


@pytest.mark.slow
def test_installed_app_finds_templates_and_static(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    script = (
        "import study_server, sys\n"
        "app = study_server.create_app({'TESTING': True})\n"
        "assert study_server.__file__.startswith(sys.argv[1]), study_server.__file__\n"
        "client = app.test_client()\n"
        "print(app.template_folder)\n"
        "print(client.get('/static/css/study.css').status_code)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "STUDY_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    template_folder, static_status = done.stdout.split()
    assert template_folder == str(target / "study_server" / "templates")
    assert static_status == "200"
