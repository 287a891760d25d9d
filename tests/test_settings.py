"""Settings: which variable sets what, which one wins, and what a bad value says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from migratrack import ConfigurationError, MigrationProgressTracker
from migratrack.settings import DEFAULT_STORAGE_URL, Settings

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


def test_defaults_when_nothing_is_set() -> None:
    s = Settings.from_env({})
    assert s.storage_url == DEFAULT_STORAGE_URL == "sqlite:///migratrack.db"
    assert s.coalesce_ms == 100 and s.retry_deadline == 300
    assert (s.server_url, s.token, s.encryption_key, s.retention) == (None, None, None, None)
    assert (s.aws_region, s.alert_email, s.slack_webhook_url) == (None, None, None)
    assert re.fullmatch(r".+@.+:\d+", s.actor)  # user@host:pid


@pytest.mark.parametrize(("variable", "value", "field", "expected"), [
    ("MIGRATRACK_STORAGE_URL", "memory://", "storage_url", "memory://"),
    ("REDIS_URL", "redis://cache:6379/0", "storage_url", "redis://cache:6379/0"),
    ("MIGRATRACK_URL", "http://tracker:8000", "server_url", "http://tracker:8000"),
    ("MIGRATRACK_TOKEN", "mt_abc", "token", "mt_abc"),
    ("MIGRATRACK_ACTOR", "ci@build-7", "actor", "ci@build-7"),
    ("MIGRATRACK_COALESCE_MS", "0", "coalesce_ms", 0.0),
    ("MIGRATRACK_COALESCE_MS", "2.5", "coalesce_ms", 2.5),
    ("MIGRATRACK_RETRY_DEADLINE", "30", "retry_deadline", 30.0),
    ("MIGRATRACK_ENCRYPTION_KEY", "k1,k2", "encryption_key", "k1,k2"),
    ("MIGRATRACK_RETENTION", "30d", "retention", "30d"),
    ("AWS_REGION", "eu-west-1", "aws_region", "eu-west-1"),
    ("MIGRATION_ALERT_EMAIL", "ops@example.com", "alert_email", "ops@example.com"),
    ("SLACK_WEBHOOK_URL", "https://hooks.example.com/x", "slack_webhook_url", "https://hooks.example.com/x"),
])
def test_each_variable_sets_its_field(variable: str, value: str, field: str, expected: object) -> None:
    assert getattr(Settings.from_env({variable: value}), field) == expected


def test_the_prefixed_storage_url_wins_over_the_seeds_redis_url() -> None:
    both = {"MIGRATRACK_STORAGE_URL": "postgresql://db/m", "REDIS_URL": "redis://cache/0"}
    assert Settings.from_env(both).storage_url == "postgresql://db/m"
    assert Settings.from_env({**both, "MIGRATRACK_STORAGE_URL": ""}).storage_url == "redis://cache/0"


def test_an_empty_variable_counts_as_unset() -> None:
    s = Settings.from_env({"MIGRATRACK_URL": "", "MIGRATRACK_ACTOR": "", "MIGRATRACK_COALESCE_MS": "",
                           "REDIS_URL": ""})
    assert s.server_url is None and s.storage_url == DEFAULT_STORAGE_URL and s.coalesce_ms == 100
    assert s.actor  # the user@host:pid default, not ""


def test_only_the_documented_names_are_read() -> None:
    # the seed's names are not also read with the prefix, nor the server URL by its field name
    s = Settings.from_env({"MIGRATRACK_REDIS_URL": "redis://x", "MIGRATRACK_SERVER_URL": "http://x",
                           "MIGRATRACK_AWS_REGION": "eu", "TOKEN": "t"})
    assert (s.storage_url, s.server_url, s.aws_region, s.token) == (DEFAULT_STORAGE_URL, None, None, None)


def test_a_given_mapping_is_read_instead_of_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATRACK_TOKEN", "from-process")
    monkeypatch.setenv("MIGRATRACK_COALESCE_MS", "7")
    assert Settings.from_env().token == "from-process" and Settings.from_env().coalesce_ms == 7
    assert Settings.from_env({}).token is None and Settings.from_env({}).coalesce_ms == 100


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATRACK_STORAGE_URL", "sqlite:///env.db")
    monkeypatch.setenv("REDIS_URL", "redis://cache/0")
    monkeypatch.setenv("MIGRATRACK_TOKEN", "from-env")
    s = Settings(storage_url="memory://", aws_region="us-east-2")
    assert (s.storage_url, s.aws_region) == ("memory://", "us-east-2")
    assert s.token == "from-env"  # a field not given still comes from the environment


def test_settings_are_immutable() -> None:
    s = Settings.from_env({})
    with pytest.raises(ValueError, match="frozen"):
        s.token = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("variable", "value", "default"), [
    ("MIGRATRACK_COALESCE_MS", "abc", "100"),
    ("MIGRATRACK_COALESCE_MS", "-5", "100"),
    ("MIGRATRACK_RETRY_DEADLINE", "soon", "300"),
    ("MIGRATRACK_RETRY_DEADLINE", "-1", "300"),
])
def test_a_bad_value_names_the_variable_and_the_fix(variable: str, value: str, default: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable} must be a number of ")
    assert f"got {value!r}" in message and f"unset it for the default {default}" in message
    assert "pydantic" not in message and "validation error" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_bad_value_in_the_environment_stops_the_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATRACK_RETRY_DEADLINE", "five minutes")
    with pytest.raises(ConfigurationError, match="MIGRATRACK_RETRY_DEADLINE"):
        MigrationProgressTracker("x", url="http://127.0.0.1:9")


def test_a_misspelt_argument_is_an_error_not_ignored() -> None:
    with pytest.raises(ConfigurationError, match=r"no field 'storage'.*storage_url"):
        Settings(storage="memory://")


def test_the_remote_sdk_takes_its_deadline_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from migratrack.sdk.remote import RemoteBackend

    monkeypatch.setenv("MIGRATRACK_RETRY_DEADLINE", "12")
    assert RemoteBackend("http://127.0.0.1:9").deadline == 12
    assert RemoteBackend("http://127.0.0.1:9", deadline=3).deadline == 3
    settings = Settings(retry_deadline=45)
    with MigrationProgressTracker("x", url="http://127.0.0.1:9", settings=settings) as t:
        assert getattr(t.backend, "deadline", None) == 45


def _variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= {str(c) for c in alias.choices} if isinstance(alias, AliasChoices) else {f"MIGRATRACK_{name.upper()}"}
    return names


def test_the_guides_configuration_table_lists_every_variable_and_no_other() -> None:
    section = GUIDE.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([A-Z_]+)`", line.split("|")[1]))
    assert documented == _variables()
