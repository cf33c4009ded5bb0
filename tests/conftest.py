"""Shared fixtures. Server fixtures (app, client, runner, participant) live here too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("REALISM_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


def pytest_collection_modifyitems(config, items):
    # Tests that touch the database are marked `db`, so the PostgreSQL pass
    # (`pytest -m db`) runs exactly those.
    for item in items:
        if "database_uri" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the project (``../shared/data``); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# The suite runs on SQLite unless this names a PostgreSQL database, e.g.
# postgresql+psycopg://postgres@127.0.0.1:5432/test (CI runs both).
TEST_DATABASE_URI = os.environ.get("STUDY_TEST_DATABASE_URI", "")


def on_postgres() -> bool:
    return TEST_DATABASE_URI.startswith("postgresql")


@pytest.fixture
def database_uri(tmp_path: Path):
    """A fresh, empty database for one test: a SQLite file or a PostgreSQL schema."""
    if not on_postgres():
        yield f"sqlite:///{tmp_path / 'study.sqlite3'}"
        return
    import secrets

    import sqlalchemy as sa

    schema = f"test_{secrets.token_hex(6)}"
    admin = sa.create_engine(TEST_DATABASE_URI)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in TEST_DATABASE_URI else "?"
    yield f"{TEST_DATABASE_URI}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def app_config(tmp_path: Path, database_uri: str) -> dict:
    """The test mapping given to create_app; tests may change it before ``app``."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "STIMULUS_STORE": str(tmp_path / "stimuli"),
    }


@pytest.fixture
def app(tmp_path: Path, app_config: dict, monkeypatch: pytest.MonkeyPatch):
    """The app on a fresh database, with its instance folder in tmp_path."""
    from study_server import create_app
    from study_server.db import db

    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(app_config)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def _write_images(folder: Path, n: int, seed: int, size: int = 48) -> None:
    """Write ``n`` distinct random RGB PNGs into ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img_{i:04d}.png")


def study_toml(slug: str = "pilot", **sections: dict) -> str:
    """Render a study file; ``sections`` override tables such as trials=..."""
    import json

    def value(v):
        return "true" if v is True else "false" if v is False else json.dumps(v)

    top = sections.pop("top", {})
    lines = [f'slug = "{slug}"', 'title = "Pilot study"', 'dataset = "testset"']
    lines += [f"{k} = {value(v)}" for k, v in top.items()]
    images = {
        "real": "images/real",
        "generated": "images/generated",
        "practice": "images/practice",
        "checks": "images/checks",
    }
    images.update(sections.pop("images", {}))
    for name, table in {**sections, "images": images}.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_study(app, tmp_path: Path):
    """Build image folders and a study file, load it, and return the Study.

    ``make_study(models=("m1", "m2"), n_real=30, n_per_model=20, trials={...})``
    writes random PNGs (distinct images), writes ``study.toml`` and loads it
    through ``flask study load``'s service, so tests use the real import path.
    """
    from study_server.db import db
    from study_server.models import Study
    from study_server.services.studies import load_study

    counter = iter(range(1_000_000))

    def make(
        slug: str = "pilot",
        models: tuple[str, ...] = ("m1", "m2", "m3"),
        n_real: int = 20,
        n_per_model: int = 12,
        n_practice: int = 4,
        n_checks: int = 4,
        **sections: dict,
    ) -> Study:
        folder = tmp_path / f"study-{slug}-{next(counter)}"
        seed = 1000 * next(counter)
        _write_images(folder / "images/real", n_real, seed + 1)
        for i, model in enumerate(models):
            _write_images(
                folder / "images/generated" / model, n_per_model, seed + 10 + i
            )
        _write_images(folder / "images/practice/real", n_practice // 2, seed + 2)
        _write_images(
            folder / "images/practice/generated", n_practice - n_practice // 2, seed + 3
        )
        _write_images(folder / "images/checks/generated", n_checks, seed + 4)
        sections.setdefault(
            "trials",
            {
                "per_session": 10,
                "real_fraction": 0.5,
                "practice": 2,
                "checks": 2,
                "max_failed_checks": 1,
                "break_every": 5,
            },
        )
        sections.setdefault("display", {"size": 32})
        (folder / "study.toml").write_text(
            study_toml(slug, **sections), encoding="utf-8"
        )
        with app.app_context():
            report = load_study(
                folder / "study.toml", app.config["STIMULUS_STORE"], progress=False
            )
            study_id = report.study.id
        with app.app_context():
            study = db.session.get(Study, study_id)
            db.session.expunge(study)
        return study

    return make


@pytest.fixture
def started(app, client, make_study):
    """A participant with a started session, device check done, block 0 served."""
    from api_helpers import Participant, small_study

    p = Participant(client, small_study(make_study), "PID1")
    assert p.start().status_code == 201
    assert p.device().status_code == 200
    assert p.block(0).status_code == 200
    return p
