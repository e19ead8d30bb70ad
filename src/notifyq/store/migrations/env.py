"""Alembic environment: runs on the connection notifyq hands it (see notifyq.store.migrate.migrate)."""

from alembic import context
from sqlalchemy import Connection, create_engine

from notifyq.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic` CLI use with a sync URL
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///.notifyq/notifyq.db"
    with create_engine(url).connect() as conn:
        _run(conn)
