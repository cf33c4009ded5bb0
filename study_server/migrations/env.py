"""Alembic environment: runs migrations on the Flask app's database engine."""

import logging

from alembic import context
from flask import current_app

from study_server.db import UTCDateTime

logger = logging.getLogger("alembic.env")
config = context.config
migrate = current_app.extensions["migrate"]
engine = migrate.db.engine
config.set_main_option(
    "sqlalchemy.url",
    engine.url.render_as_string(hide_password=False).replace("%", "%%"),
)


def render_item(type_, obj, autogen_context):
    # Migrations spell out plain SQLAlchemy types, so they never depend on app code.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def skip_empty_revision(context, revision, directives):
    if (
        getattr(config.cmd_opts, "autogenerate", False)
        and directives[0].upgrade_ops.is_empty()
    ):
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=migrate.db.metadata,
        literal_binds=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    options = dict(migrate.configure_args)
    options.setdefault("process_revision_directives", skip_empty_revision)
    options.setdefault("render_item", render_item)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=migrate.db.metadata, **options
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
