"""Bringing a registry database's schema to the newest Alembic revision.

The migrations ship inside the package (``store/migrations``) and run programmatically on a
connection the registry opened (``migrations/env.py`` takes it from ``config.attributes``), so
no ``alembic.ini`` is needed. The upgrade runs in a write transaction that first takes the
store's migration lock, so concurrent first uses are serialised; a database already at a
revision this segmint does not know is refused, not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection, Engine

from segmint.exceptions import RegistryError
from segmint.store.backends import Backend

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "Transact", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "segmint_alembic_version"

_T = TypeVar("_T")


class Transact(Protocol):
    """Runs ``work`` in one transaction on ``engine`` (retried while the failure is transient)."""

    def __call__(self, engine: Engine, work: Callable[[Connection], _T], write: bool) -> _T: ...


def upgrade_to_head(engine: Engine, transact: Transact, backend: Backend, shown_url: str) -> bool:
    """Bring the schema to the newest revision; True when anything ran. ``shown_url`` (the URL
    with its password masked) names the database in the error for a too-new schema."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["version_table"] = VERSION_TABLE
    script = ScriptDirectory.from_config(config)
    heads = set(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}

    def current(conn: Connection) -> set[str]:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return set(context.get_current_heads())

    if transact(engine, current, write=False) == heads:
        return False

    def upgrade(conn: Connection) -> bool:
        backend.lock_for_migration(conn)
        have = current(conn)  # again, now that this process holds the lock
        if have - known:
            raise RegistryError(
                f"The run registry at {shown_url} has schema revision "
                f"{', '.join(sorted(have - known))}, newer than this segmint knows "
                f"({', '.join(sorted(heads))}); upgrade segmint to use it."
            )
        if have == heads:
            return False
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return True

    return transact(engine, upgrade, write=True)
