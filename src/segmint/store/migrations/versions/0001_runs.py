"""Create the run registry: one row per run, compare, track, clv or effect, plus its tags.

Tags live in their own table keyed by the tag, so "a tag names at most one run" is a primary-key
constraint the database enforces, and deleting a run frees its tags by ``ON DELETE CASCADE``.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segmint_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(128), nullable=True),
        sa.Column("k", sa.Integer(), nullable=True),
        sa.Column("customers", sa.BigInteger(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("proc_start", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "kind IN ('run', 'compare', 'track', 'clv', 'effect')", name="ck_segmint_runs_kind"
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name="ck_segmint_runs_status"
        ),
    )
    op.create_index("ix_segmint_runs_created", "segmint_runs", ["created"])
    op.create_index("ix_segmint_runs_status_kind", "segmint_runs", ["status", "kind", "created"])
    op.create_index("ix_segmint_runs_name", "segmint_runs", ["name"])
    op.create_table(
        "segmint_run_tags",
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("segmint_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_segmint_run_tags_run_id", "segmint_run_tags", ["run_id"])


def downgrade() -> None:
    op.drop_table("segmint_run_tags")
    op.drop_table("segmint_runs")
