"""The registry's tables as queries see them, and the values their ``kind`` and ``status`` hold.

The migrations in ``store/migrations`` create the tables (and check ``kind`` and ``status`` with
the same values as ``KINDS`` and ``STATUSES``); this is the query-side description. Times are
stored through ``UTCDateTime``: aware datetimes in, aware UTC datetimes out, on both stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

import sqlalchemy as sa

__all__ = [
    "KINDS",
    "NEWEST_FIRST",
    "STATUSES",
    "Kind",
    "Status",
    "UTCDateTime",
    "metadata",
    "runs_table",
    "tags_table",
]

Kind = Literal["run", "compare", "track", "clv", "effect"]
Status = Literal["running", "succeeded", "failed"]
KINDS: tuple[str, ...] = get_args(Kind)
STATUSES: tuple[str, ...] = get_args(Status)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out. SQLite keeps naive UTC text (which sorts
    correctly); PostgreSQL keeps ``timestamptz``."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
runs_table = sa.Table(
    "segmint_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.Column("finished", UTCDateTime()),
    sa.Column("name", sa.String(200)),
    sa.Column("inputs", sa.JSON(), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("config_hash", sa.String(128)),
    sa.Column("k", sa.Integer()),
    sa.Column("customers", sa.BigInteger()),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("folder", sa.Text(), nullable=False),
    sa.Column("pid", sa.Integer()),
    sa.Column("host", sa.String(255)),
    sa.Column("proc_start", sa.String(64)),
)
tags_table = sa.Table(
    "segmint_run_tags",
    metadata,
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey(runs_table.c.id, ondelete="CASCADE")),
)
NEWEST_FIRST = (runs_table.c.created.desc(), runs_table.c.id.desc())
