"""Alembic environment for the run registry.

Migrations are run only by ``segmint.store.registry.Registry``, which passes an open connection
(already inside a transaction that holds the registry's migration lock) in
``config.attributes["connection"]``. There is no ``alembic.ini``: the registry builds the Alembic
config in code, so the migrations ship inside the package and need no files beside it. Offline
(SQL script) mode is not supported because the registry's lock and dialect setup live on the
connection.

A new migration is a new file in ``versions/`` whose ``down_revision`` is the previous head;
the registry upgrades every database it opens to the newest head.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "segmint's registry migrations run through segmint.store.registry.Registry, which "
        "passes a connection in config.attributes['connection']; the alembic command line "
        "and offline mode are not supported."
    )

context.configure(
    connection=connection,
    version_table=config.attributes["version_table"],
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
