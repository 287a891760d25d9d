"""Store URLs: every accepted form parses to the store, place and options it names; a URL no store
accepts says what would be; a printed URL never shows a password."""

from __future__ import annotations

from datetime import timedelta

import pytest

from migratrack.errors import ConfigurationError, StorageUnavailable
from migratrack.storage import open_storage
from migratrack.storage.url import SCHEMES, parse_store_url


@pytest.mark.parametrize("url,path,options", [
    ("sqlite:///migratrack.db", "migratrack.db", {}),
    ("sqlite:////srv/migratrack/track.db", "/srv/migratrack/track.db", {}),
    ("sqlite:///runs/my%20run.db", "runs/my run.db", {}),
    ("SQLite:///m.db?synchronous=full&retention=30d", "m.db", {"synchronous": "full", "retention": "30d"}),
])
def test_sqlite_urls_name_a_file(url: str, path: str, options: dict[str, str]) -> None:
    parsed = parse_store_url(url)
    assert (parsed.kind, parsed.path, parsed.options) == ("sqlite", path, options)


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://:memory:", "sqlite://"])
def test_a_sqlite_url_without_a_file_points_to_memory(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"names no file.*memory://"):
        parse_store_url(url)


def test_memory_urls() -> None:
    assert parse_store_url("memory://").kind == "memory"
    assert parse_store_url("memory://?retention=1h").options == {"retention": "1h"}
    assert open_storage("memory://?retention=1h").retention == timedelta(hours=1)


def test_redis_options_stay_with_migratrack_and_the_rest_goes_to_the_driver() -> None:
    parsed = parse_store_url("redis://127.0.0.1:6391/13?prefix=blue&socket_timeout=5&lock_timeout=9&retention=2d")
    assert (parsed.kind, parsed.host, parsed.port, parsed.database) == ("redis", "127.0.0.1", 6391, "13")
    assert parsed.options == {"prefix": "blue", "lock_timeout": "9", "retention": "2d"}
    assert parsed.driver_url() == "redis://127.0.0.1:6391/13?socket_timeout=5"


def test_rediss_keeps_tls_and_credentials_for_the_driver() -> None:
    parsed = parse_store_url("rediss://app:s3cret@cache.example.com:6380/0")
    assert (parsed.kind, parsed.username, parsed.password) == ("redis", "app", "s3cret")
    assert parsed.driver_url() == "rediss://app:s3cret@cache.example.com:6380/0"


@pytest.mark.parametrize("url", ["redis+cluster://10.0.0.1:7000", "redis://10.0.0.1:7000?cluster=true"])
def test_redis_cluster_either_way(url: str) -> None:
    parsed = parse_store_url(url)
    assert parsed.kind == "redis"
    assert parsed.scheme == "redis+cluster" or parsed.options["cluster"] == "true"
    assert parsed.driver_url() == "redis://10.0.0.1:7000"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRES"])
def test_postgres_urls(scheme: str) -> None:
    parsed = parse_store_url(f"{scheme}://app:p%40ss@db.example.com:5433/prod?pool_size=4&sslmode=require")
    assert (parsed.kind, parsed.host, parsed.port, parsed.database) == ("postgresql", "db.example.com", 5433, "prod")
    assert (parsed.username, parsed.password, parsed.options) == ("app", "p@ss", {"pool_size": "4"})
    assert parsed.driver_url() == "postgresql://app:p%40ss@db.example.com:5433/prod?sslmode=require"


def test_a_postgres_multi_host_url_goes_to_libpq_unchanged() -> None:
    url = "postgresql://h1:5432,h2:5433/prod?target_session_attrs=read-write"
    parsed = parse_store_url(url)
    assert (parsed.host, parsed.port, parsed.database) == ("h1:5432,h2:5433", None, "prod")
    assert parsed.driver_url() == url


def test_the_postgres_alias_opens_the_store(postgres_url: str) -> None:
    store = open_storage(postgres_url.replace("postgresql://", "postgres://", 1))
    try:
        assert store.list_ids() == []
    finally:
        store.close()


def test_an_unknown_scheme_lists_the_supported_ones_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="unknown storage scheme 'mysql'") as caught:
        parse_store_url("mysql://root:hunter2@db.example.com/prod")
    message = str(caught.value)
    assert all(scheme in message for scheme in SCHEMES)
    assert "hunter2" not in message and "root:***@db.example.com" in message


@pytest.mark.parametrize("url,message", [
    ("migratrack.db", "must be a URL such as sqlite:///migratrack.db"),
    ("redis://127.0.0.1:63 79/0", "port"),
    ("redis://:hunter2@127.0.0.1:port/0", "port in 'redis://:\\*\\*\\*@127.0.0.1:port/0'"),
])
def test_a_malformed_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_store_url(url)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("url,shown", [
    ("redis://:hunter2@127.0.0.1:6391/0", "redis://:***@127.0.0.1:6391/0"),
    ("rediss://app:hunter2@cache.example.com/0?prefix=mt", "rediss://app:***@cache.example.com/0?prefix=mt"),
    ("postgresql://app:hunter2@db/prod?sslmode=require&sslpassword=hunter2",
     "postgresql://app:***@db/prod?sslmode=require&sslpassword=***"),
    ("postgres://app@db/prod?password=hunter2", "postgres://app@db/prod?password=***"),
])
def test_the_printed_form_hides_passwords(url: str, shown: str) -> None:
    parsed = parse_store_url(url)
    assert parsed.redacted() == str(parsed) == shown
    assert "hunter2" not in repr(parsed)


@pytest.mark.parametrize("url", [
    "sqlite:////srv/migratrack/track.db?synchronous=FULL",
    "redis://127.0.0.1:6379/13?prefix=mt",
    "postgresql://app@db.example.com/prod?host=/run/postgresql",
])
def test_the_printed_form_of_a_url_without_secrets_is_the_url(url: str) -> None:
    assert str(parse_store_url(url)) == url


def test_a_connection_error_names_the_server_but_not_the_password() -> None:
    with pytest.raises(StorageUnavailable) as caught:
        open_storage("postgresql://app:hunter2@127.0.0.1:1/prod", connect_timeout=1)
    assert "hunter2" not in str(caught.value) and "app:***@127.0.0.1:1" in str(caught.value)
