"""Retention: finished migrations expire after a configurable time; active ones never."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import Cancel, CompletePhase, StartPhase
from migratrack.service import MigrationService
from migratrack.storage import open_storage

from .conftest import REDIS_URL


def finished_and_active(svc: MigrationService) -> None:
    svc.initialize("finished", [{"id": "only"}], actor="a")
    svc.execute("finished", StartPhase("only"), actor="a")
    svc.execute("finished", CompletePhase("only"), actor="a")
    svc.initialize("cancelled", [{"id": "only"}], actor="a")
    svc.execute("cancelled", Cancel(), actor="a")
    svc.initialize("active", [{"id": "only"}, {"id": "two"}], actor="a")
    svc.execute("active", StartPhase("only"), actor="a")


def test_redis_expires_finished_migrations_and_keeps_active_ones(redis_url: str, redis_prefix: str) -> None:
    svc = MigrationService(f"{redis_url}&retention=2s")
    finished_and_active(svc)
    raw = redis.Redis.from_url(REDIS_URL)
    ttls = {mid: raw.ttl(f"{redis_prefix}:{{{mid}}}:h") for mid in ("finished", "cancelled", "active")}
    assert 0 < ttls["finished"] <= 2 and 0 < ttls["cancelled"] <= 2
    assert ttls["active"] == -1  # no expiry
    assert all(raw.ttl(k) > 0 for k in raw.scan_iter(match=f"{redis_prefix}:{{finished}}:*"))
    svc.create_alert("finished", "info", "a note after the end", actor="a")  # creates the alert keys
    assert all(0 < raw.ttl(k) <= 2 for k in raw.scan_iter(match=f"{redis_prefix}:{{finished}}:*"))
    time.sleep(2.5)
    assert svc.storage.list_ids() == ["active"]
    assert not svc.storage.exists("finished")
    assert list(raw.scan_iter(match=f"{redis_prefix}:{{finished}}:*")) == []
    # transitions on a migration that is still running never give it an expiry
    svc.execute("active", CompletePhase("only"), actor="a")
    assert raw.ttl(f"{redis_prefix}:{{active}}:h") == -1
    raw.close()
    svc.storage.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sql_stores_purge_on_open_with_retention(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                 clock: object) -> None:
    from .conftest import url_for

    url = url_for(kind, request, tmp_path)
    svc = MigrationService(url, clock)  # type: ignore[arg-type]  # the fixed clock: these ended long ago
    finished_and_active(svc)
    svc.storage.close()
    sep = "&" if "?" in url else "?"
    reopened = open_storage(f"{url}{sep}retention=30d")
    assert reopened.list_ids() == ["active"]
    reopened.close()


def test_purge_command(shared_url: str, clock: object) -> None:
    svc = MigrationService(shared_url, clock)  # type: ignore[arg-type]
    finished_and_active(svc)
    svc.storage.close()
    runner = CliRunner()
    dry = runner.invoke(app, ["purge", "--older-than", "30d", "--dry-run", "--storage", shared_url])
    assert dry.exit_code == 0, dry.output
    assert "would drop 2" in dry.output
    result = runner.invoke(app, ["purge", "--older-than", "30d", "--storage", shared_url])
    assert result.exit_code == 0, result.output
    assert "dropped 2" in result.output and "finished" in result.output and "cancelled" in result.output
    store = open_storage(shared_url)
    assert store.list_ids() == ["active"]
    store.close()
    recent = runner.invoke(app, ["purge", "--older-than", "400w", "--storage", shared_url])
    assert "dropped 0" in recent.output


def test_purge_keeps_recently_finished(shared_url: str) -> None:
    svc = MigrationService(shared_url)  # real clock: finished just now
    finished_and_active(svc)
    assert svc.storage.purge_finished(datetime.now(UTC) - timedelta(days=30)) == []
    assert sorted(svc.storage.list_ids()) == ["active", "cancelled", "finished"]
    svc.storage.close()


def test_bad_duration_says_what_is_expected(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["purge", "--older-than", "soon", "--storage", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code != 0
    assert "30d" in result.output


def test_retention_from_the_environment(tmp_path: Path, clock: object, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/env.db"
    svc = MigrationService(url, clock)  # type: ignore[arg-type]
    finished_and_active(svc)
    svc.storage.close()
    monkeypatch.setenv("MIGRATRACK_RETENTION", "30d")
    store = open_storage(url)
    assert store.list_ids() == ["active"]
    store.close()
