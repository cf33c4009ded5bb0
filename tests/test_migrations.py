"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from study_server.db import db, upgrade_schema

TABLES = {"study", "stimulus", "participant", "session", "trial", "event", "researcher"}


def _empty_app(app):
    with app.app_context():
        db.drop_all()
    return app


def test_upgrade_creates_every_table_and_matches_models(app):
    _empty_app(app)
    with app.app_context():
        upgrade_schema()
        inspector = sa.inspect(db.engine)
        assert set(inspector.get_table_names()) >= TABLES
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            differences = compare_metadata(context, db.metadata)
        assert differences == []


def test_upgrade_twice_is_a_no_op_and_keeps_rows(app):
    from study_server.models import Participant

    _empty_app(app)
    with app.app_context():
        upgrade_schema()
        db.session.add(Participant(platform="direct", external_id="p1"))
        db.session.commit()
        upgrade_schema()
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(Participant)) == 1
        )


def test_init_db_command(app, runner):
    _empty_app(app)
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Database schema is up to date" in result.output
    with app.app_context():
        assert set(sa.inspect(db.engine).get_table_names()) >= TABLES
