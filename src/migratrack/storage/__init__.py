"""Stores, chosen by URL scheme and imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

from migratrack.errors import ConfigurationError
from migratrack.storage.base import Codec, MergeResult, Storage
from migratrack.storage.url import SCHEMES, StoreKind, StoreURL, parse_store_url

__all__ = ["BACKENDS", "Codec", "MergeResult", "Storage", "StoreURL", "open_storage", "parse_store_url"]

#: store -> (module, class, extra that provides its driver)
_STORES: dict[StoreKind, tuple[str, str, str | None]] = {
    "memory": ("migratrack.storage.memory", "MemoryStorage", None),
    "sqlite": ("migratrack.storage.sqlite", "SQLiteStorage", None),
    "redis": ("migratrack.storage.redis", "RedisStorage", "redis"),
    "postgresql": ("migratrack.storage.postgres", "PostgresStorage", "postgres"),
}

#: scheme -> (module, class, extra that provides its driver)
BACKENDS: dict[str, tuple[str, str, str | None]] = {scheme: _STORES[kind] for scheme, kind in SCHEMES.items()}


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


def open_storage(url: str | StoreURL | Storage, **options: Any) -> Storage:
    """A store for ``url``, a URL as text or parsed (or ``url`` itself when it already is a store).

    Free text is encrypted at rest when ``MIGRATRACK_ENCRYPTION_KEY`` is set (or an
    ``encryption_key=`` option is given); a ``codec=`` option overrides both. Finished
    migrations expire after ``MIGRATRACK_RETENTION`` unless the URL or options say otherwise."""
    if isinstance(url, Storage):
        return url
    from migratrack.settings import Settings

    parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
    settings = Settings.from_env()
    key = options.pop("encryption_key", None) or settings.encryption_key
    if "codec" not in options and key:
        options["codec"] = encryption_codec(key)
    if settings.retention and "retention" not in options and "retention" not in parsed.options:
        options["retention"] = settings.retention
    module_name, class_name, extra = _STORES[parsed.kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise ConfigurationError(
            f"the {parsed.scheme}:// store needs an optional driver ({exc.name}): pip install 'migratrack[{extra}]'"
        ) from exc
    cls: Any = getattr(module, class_name)
    store: Storage = cls(parsed, **options)
    return store
