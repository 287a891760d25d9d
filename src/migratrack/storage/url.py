"""Store URLs, parsed once: ``parse_store_url(text) -> StoreURL``.

Every part of migratrack that needs to know what a store URL says (which store, which file or
server, which options) reads a :class:`StoreURL` instead of taking the text apart itself, and
anything that prints a URL prints ``str(store_url)``, which hides passwords.

Accepted forms (docs/storage.md)::

    memory://                              process memory
    sqlite:///relative.db                  SQLite file, relative to the working directory
    sqlite:////absolute/path.db            SQLite file, absolute
    redis://[:password@]host[:port][/db]   Redis; rediss:// for TLS
    redis+cluster://host:port              Redis Cluster (or ?cluster=true)
    postgresql://user[:password]@host[:port][/database]    PostgreSQL; postgres:// too

Query parameters that migratrack reads itself are its *options* (``?retention=30d`` and
``?dedupe_window=24h`` on every store, ``?prefix=`` on Redis, ...); on Redis and PostgreSQL the
other parameters go to the driver (redis-py, libpq), which is why they are kept rather than
refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode, urlsplit

from migratrack.errors import ConfigurationError

__all__ = ["OPTIONS", "SCHEMES", "StoreKind", "StoreURL", "parse_store_url", "store_url_for"]

StoreKind = Literal["memory", "sqlite", "redis", "postgresql"]

#: URL scheme -> the store that serves it
SCHEMES: dict[str, StoreKind] = {
    "memory": "memory",
    "sqlite": "sqlite",
    "redis": "redis",
    "rediss": "redis",
    "redis+cluster": "redis",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}

#: the query parameters each store reads itself (never passed on to a driver)
OPTIONS: dict[StoreKind, frozenset[str]] = {
    "memory": frozenset({"retention", "dedupe_window"}),
    "sqlite": frozenset({"retention", "dedupe_window", "synchronous", "mode"}),
    "redis": frozenset({"retention", "dedupe_window", "prefix", "cluster", "lock_timeout"}),
    "postgresql": frozenset({"retention", "dedupe_window", "pool_size"}),
}

#: the scheme the driver expects for an alias migratrack accepts
_DRIVER_SCHEME = {"redis+cluster": "redis", "postgres": "postgresql"}

_MASK = "***"

_EXAMPLES = "sqlite:///migratrack.db, memory://, redis://host:6379/0 or postgresql://user@host/db"


def _secret(name: str) -> bool:
    # libpq takes password= and sslpassword= as parameters, redis-py password=
    return name.lower().endswith("password")


@dataclass(frozen=True, slots=True, repr=False)
class StoreURL:
    """A parsed store URL. ``str()`` and ``repr()`` show it with its passwords masked."""

    #: the store that serves it
    kind: StoreKind
    #: the scheme as written, lower case (``redis+cluster``, ``postgres``, ...)
    scheme: str
    #: SQLite: the database file as given (relative to the working directory unless absolute)
    path: str | None = None
    #: Redis, PostgreSQL: the server (for a PostgreSQL multi-host URL, the hosts as written)
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    #: Redis: the database number; PostgreSQL: the database name
    database: str | None = None
    #: every query parameter, in order (options and driver parameters)
    query: tuple[tuple[str, str], ...] = ()
    #: the authority, path and query exactly as written, to hand the driver (and show) what the user wrote
    netloc: str = ""
    url_path: str = ""
    raw_query: str = ""

    @property
    def options(self) -> dict[str, str]:
        """migratrack's own query options for this store (the first value of each)."""
        out: dict[str, str] = {}
        for name, value in self.query:
            if name in OPTIONS[self.kind]:
                out.setdefault(name, value)
        return out

    @property
    def driver_params(self) -> list[tuple[str, str]]:
        """The query parameters that are not migratrack's options: the driver's."""
        return [(name, value) for name, value in self.query if name not in OPTIONS[self.kind]]

    def driver_url(self) -> str:
        """The URL for redis-py or libpq: the scheme they know, without migratrack's options."""
        scheme = _DRIVER_SCHEME.get(self.scheme, self.scheme)
        params = urlencode(self.driver_params)
        return f"{scheme}://{self.netloc}{self.url_path}" + (f"?{params}" if params else "")

    def redacted(self) -> str:
        """The URL with every password replaced by ``***``: safe for banners, logs and errors."""
        return _redact(self.scheme, self.netloc, self.url_path, self.raw_query)

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"StoreURL({self.redacted()!r})"


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; a URL no store accepts raises ConfigurationError saying what to write."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"storage must be a URL such as {_EXAMPLES}; got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        raise ConfigurationError(f"cannot read the storage URL: {exc}") from None
    # a parameter given without a value is dropped, as redis-py and libpq would ignore it
    query = tuple(parse_qsl(parts.query))
    kind = SCHEMES.get(parts.scheme)
    if kind is None:
        shown = _redact(parts.scheme, parts.netloc, parts.path, parts.query)
        raise ConfigurationError(
            f"unknown storage scheme {parts.scheme!r} in {shown!r}; supported: {', '.join(sorted(SCHEMES))}"
        )
    path: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    database: str | None = None
    if kind == "sqlite":
        path = _sqlite_path(url, parts.netloc + parts.path)
    elif kind in ("redis", "postgresql"):
        hostport = parts.netloc.rpartition("@")[2]
        if "," in hostport:  # libpq's host1:port1,host2:port2: libpq reads it, we only show it
            host = hostport
        else:
            host = parts.hostname or None
            try:
                port = parts.port
            except ValueError:
                shown = _redact(parts.scheme, parts.netloc, parts.path, parts.query)
                raise ConfigurationError(f"the port in {shown!r} must be a number from 0 to 65535") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        # as the drivers read it: redis-py drops every slash of the path, libpq the leading one
        text = unquote(parts.path)
        database = (text.replace("/", "") if kind == "redis" else text[1:]) or None
    return StoreURL(kind=kind, scheme=parts.scheme, path=path, host=host, port=port, username=username,
                    password=password, database=database, query=query, netloc=parts.netloc, url_path=parts.path,
                    raw_query=parts.query)


def _sqlite_path(url: str, raw: str) -> str:
    # sqlite:///rel.db -> rel.db; sqlite:////abs/x.db -> /abs/x.db (the first slash ends the authority)
    text = unquote(raw)
    path = text[1:] if text.startswith("/") else text
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"{url!r} names no file; use sqlite:///migratrack.db (relative) or "
            "sqlite:////abs/path.db, or memory:// for a throw-away store"
        )
    return path


def _redact(scheme: str, netloc: str, path: str, query: str) -> str:
    """The URL as written, but for the values of its passwords (after ``user:`` and in the query)."""
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{_MASK}@{hostport}"
    pieces = []
    for piece in query.split("&"):
        name, eq, _ = piece.partition("=")
        pieces.append(f"{name}={_MASK}" if eq and _secret(unquote_plus(name)) else piece)
    text = "&".join(pieces)
    return f"{scheme}://{netloc}{path}" + (f"?{text}" if text else "")


def store_url_for(kind: StoreKind, url: str | StoreURL) -> StoreURL:
    """``url`` parsed (once: a StoreURL is taken as it is), refused unless ``kind`` serves it."""
    parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
    if parsed.kind != kind:
        raise ConfigurationError(f"not a {kind} URL: {str(parsed)!r}")
    return parsed
