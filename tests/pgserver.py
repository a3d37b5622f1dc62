"""A throwaway PostgreSQL database on a real server, for the test session and for ``bench/workers_bench.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextlib.contextmanager
def throwaway_database(admin_url: str, name: str, *, before_drop: Callable[[str], None] | None = None
                       ) -> Iterator[str]:
    """A new, empty database ``name`` on the server that ``admin_url`` reaches; yields its URL and drops it
    afterwards, even if a worker still holds a connection to it. ``before_drop`` sees the URL last."""
    admin_address = make_url(admin_url)
    admin = create_engine(admin_address, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_address.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        try:
            if before_drop is not None:
                before_drop(url)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
