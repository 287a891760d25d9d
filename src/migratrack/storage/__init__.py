"""Stores, chosen by URL scheme and imported lazily."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from migratrack.errors import ConfigurationError
from migratrack.storage.base import Codec, MergeResult, Storage

__all__ = ["BACKENDS", "Codec", "MergeResult", "Storage", "open_storage"]

#: scheme -> (module, class, extra that provides its driver)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("migratrack.storage.memory", "MemoryStorage", None),
    "sqlite": ("migratrack.storage.sqlite", "SQLiteStorage", None),
    "redis": ("migratrack.storage.redis", "RedisStorage", "redis"),
    "rediss": ("migratrack.storage.redis", "RedisStorage", "redis"),
    "redis+cluster": ("migratrack.storage.redis", "RedisStorage", "redis"),
    "postgresql": ("migratrack.storage.postgres", "PostgresStorage", "postgres"),
    "postgres": ("migratrack.storage.postgres", "PostgresStorage", "postgres"),
}


def encryption_codec(setting: str) -> Codec:
    """The AES-GCM codec for a MIGRATRACK_ENCRYPTION_KEY value (needs the ``crypto`` extra)."""
    try:
        from migratrack.storage.crypto import EncryptingCodec
    except ImportError as exc:
        raise ConfigurationError(
            f"MIGRATRACK_ENCRYPTION_KEY is set but encryption needs the cryptography package ({exc.name}): "
            "pip install 'migratrack[crypto]'"
        ) from exc
    return EncryptingCodec.from_setting(setting)


def open_storage(url: str | Storage, **options: Any) -> Storage:
    """A store for ``url`` (or ``url`` itself when it already is one).

    Free text is encrypted at rest when ``MIGRATRACK_ENCRYPTION_KEY`` is set (or an
    ``encryption_key=`` option is given); a ``codec=`` option overrides both. Finished
    migrations expire after ``MIGRATRACK_RETENTION`` unless the URL or options say otherwise."""
    if isinstance(url, Storage):
        return url
    from migratrack.settings import Settings

    settings = Settings.from_env()
    key = options.pop("encryption_key", None) or settings.encryption_key
    if "codec" not in options and key:
        options["codec"] = encryption_codec(key)
    if settings.retention and "retention" not in options and "retention=" not in url:
        options["retention"] = settings.retention
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"storage must be a URL such as sqlite:///migratrack.db, memory://, redis://host:6379/0 "
            f"or postgresql://user@host/db; got {url!r}"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in BACKENDS:
        raise ConfigurationError(
            f"unknown storage scheme {scheme!r} in {url!r}; supported: {', '.join(sorted(BACKENDS))}"
        )
    module_name, class_name, extra = BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise ConfigurationError(
            f"the {scheme}:// store needs an optional driver ({exc.name}): pip install 'migratrack[{extra}]'"
        ) from exc
    cls: Any = getattr(module, class_name)
    store: Storage = cls(url, **options)
    return store
