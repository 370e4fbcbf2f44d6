"""The registry's read queries, on a connection inside the caller's transaction: a run's row by
id, the row a reference names (id, tag, name, unique id prefix or ``latest``), the tags of a set
of runs, and the filters of a listing.

Rows come back as SQLAlchemy rows of ``schema.runs_table``; ``Registry`` turns them into
``RunRecord`` values. A reference that names no run raises ``RunNotFoundError``, an id prefix
shared by several runs ``AmbiguousRunError``, and an unknown kind or status ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from segmint.exceptions import AmbiguousRunError, RunNotFoundError
from segmint.store.runids import MIN_PREFIX, is_id_prefix, is_run_id, normalise_id
from segmint.store.schema import KINDS, NEWEST_FIRST, STATUSES, runs_table, tags_table

__all__ = ["filters", "resolve_row", "row_by_id", "tags_by_run"]


def row_by_id(conn: Connection, run_id: str) -> sa.Row[Any] | None:
    """The row with exactly this (normalised) id, or None."""
    return conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).first()


def tags_by_run(conn: Connection, ids: Iterable[str]) -> dict[str, list[str]]:
    """Each run's tags in alphabetical order (an empty list for a run without tags)."""
    ids = list(ids)
    tags: dict[str, list[str]] = {run_id: [] for run_id in ids}
    query = sa.select(tags_table.c.tag, tags_table.c.run_id).where(tags_table.c.run_id.in_(ids))
    for tag, run_id in conn.execute(query.order_by(tags_table.c.tag)):
        tags[run_id].append(tag)
    return tags


def resolve_row(conn: Connection, ref: str, kind: str | None) -> sa.Row[Any]:
    """The row a reference names; see ``Registry.resolve`` for the order references are tried
    in."""
    text = ref.strip() if isinstance(ref, str) else ""
    of_kind = f" of kind {kind!r}" if kind else ""
    if not text:
        raise RunNotFoundError("An empty run reference matches no run.", ref=ref)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    kind_filter = [runs_table.c.kind == kind] if kind else []

    if text == "latest":
        query = sa.select(runs_table).where(runs_table.c.status == "succeeded", *kind_filter)
        row = conn.execute(query.order_by(*NEWEST_FIRST).limit(1)).first()
        if row is None:
            raise RunNotFoundError(f"No run{of_kind} has succeeded yet.", ref=ref)
        return row

    def check_kind(row: sa.Row[Any]) -> sa.Row[Any]:
        if kind and row.kind != kind:
            raise RunNotFoundError(
                f"Run {row.id} ({text!r}) is a {row.kind!r}, not a {kind!r}.", ref=ref
            )
        return row

    as_id = normalise_id(text)
    if is_run_id(as_id) and (row := row_by_id(conn, as_id)) is not None:
        return check_kind(row)

    tagged = conn.execute(sa.select(tags_table.c.run_id).where(tags_table.c.tag == text)).scalar()
    if tagged is not None and (row := row_by_id(conn, tagged)) is not None:
        return check_kind(row)

    query = sa.select(runs_table).where(runs_table.c.name == text, *kind_filter)
    row = conn.execute(query.order_by(*NEWEST_FIRST).limit(1)).first()
    if row is not None:
        return row

    if is_id_prefix(as_id):
        query = sa.select(runs_table.c.id, runs_table.c.kind, runs_table.c.created).where(
            runs_table.c.id.startswith(as_id, autoescape=True), *kind_filter
        )
        found = conn.execute(query.order_by(*NEWEST_FIRST).limit(11)).all()
        if len(found) == 1:
            row = row_by_id(conn, found[0].id)
            assert row is not None
            return check_kind(row)
        if found:
            shown = ", ".join(
                f"{r.id} ({r.kind}, {r.created:%Y-%m-%d %H:%M:%S}Z)" for r in found[:10]
            )
            more = " and more" if len(found) > 10 else ""
            raise AmbiguousRunError(
                f"{text!r} is the start of {len(found) if not more else 'over 10'} run "
                f"ids{of_kind}: {shown}{more}; give more characters of the id.",
                ref=ref,
                candidates=[r.id for r in found[:10]],
            )
    raise RunNotFoundError(
        f"No run{of_kind} matches {text!r} (looked for an id, a unique id prefix of at "
        f"least {MIN_PREFIX} characters, a tag, a name, or 'latest').",
        ref=ref,
    )


def filters(kind: str | None, status: str | None, tag: str | None) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses for runs of this stored kind and status holding this tag (None: any)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    where: list[sa.ColumnElement[bool]] = []
    if kind is not None:
        where.append(runs_table.c.kind == kind)
    if status is not None:
        where.append(runs_table.c.status == status)
    if tag is not None:
        tagged = sa.select(tags_table.c.run_id).where(tags_table.c.tag == tag)
        where.append(runs_table.c.id.in_(tagged))
    return where
