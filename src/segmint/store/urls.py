"""Registry database URLs: checking one before connecting, and showing one without its password.

The registry takes ``sqlite:///PATH`` or ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE``
(``postgresql://`` and ``postgres://`` mean the latter). Every URL that reaches a message or a
``repr`` goes through ``mask_url`` first.
"""

from __future__ import annotations

import re

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from segmint.exceptions import ConfigError

__all__ = ["mask_url", "parse_database_url"]

_PASSWORD_IN_URL = re.compile(r"(://[^:/?#@\s]*:)[^@/?#\s]*@")


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``; works on URLs that do not parse too."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError, TypeError):
        return _PASSWORD_IN_URL.sub(r"\1***@", str(url))


_DRIVER_ALIASES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_SUPPORTED = ("sqlite:///PATH", "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE")


def parse_database_url(url: str | URL) -> URL:
    """Parse and check a registry URL without connecting.

    ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://`` (the one PostgreSQL
    driver segmint installs). Raises ``ConfigError`` for anything else, with the password masked.
    """
    shown = mask_url(url)
    try:
        parsed = url if isinstance(url, URL) else make_url(str(url).strip())
    except (sa_exc.ArgumentError, ValueError, TypeError):
        raise ConfigError(
            [f"database URL {shown!r} is malformed; expected {' or '.join(_SUPPORTED)}"]
        ) from None
    parsed = parsed.set(drivername=_DRIVER_ALIASES.get(parsed.drivername, parsed.drivername))
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            [
                f"database URL {shown!r} uses {parsed.drivername!r}, which the run registry does "
                f"not support; expected {' or '.join(_SUPPORTED)}"
            ]
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            [f"database URL {shown!r} names no file; the registry needs sqlite:///PATH"]
        )
    if parsed.get_backend_name() == "postgresql" and not parsed.database:
        raise ConfigError([f"database URL {shown!r} names no database; add /DATABASE"])
    return parsed
