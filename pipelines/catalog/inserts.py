"""``INSERT … ON CONFLICT`` in the dialect of the session's database: how every catalog write is an upsert."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipelines.catalog.models import Base
from pipelines.errors import CatalogError


def conflict_insert(session: Session, model: type[Base], values: dict[str, Any]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of ``values`` into ``model``'s table that can say ON CONFLICT, in the dialect of the session's
    database. Raises ``CatalogError`` for a database other than PostgreSQL or SQLite."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).values(**values)
    if dialect == "sqlite":
        return sqlite.insert(model).values(**values)
    raise CatalogError(f"the catalog supports PostgreSQL and SQLite, not {dialect}")


def upsert(session: Session, model: type[Base], values: dict[str, Any], *, key: str) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE: the row ends up with ``values`` whether or not it existed."""
    statement = conflict_insert(session, model, values)
    updates = {name: statement.excluded[name] for name in values if name not in (key, "created_at")}
    session.execute(statement.on_conflict_do_update(index_elements=[key], set_=updates))


def insert_ignore(session: Session, model: type[Base], values: dict[str, Any]) -> None:
    """INSERT … ON CONFLICT DO NOTHING: create the row unless it exists."""
    session.execute(conflict_insert(session, model, values).on_conflict_do_nothing())
