"""Encryption at rest: with MIGRATRACK_ENCRYPTION_KEY set, no free text reaches the store in clear."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
import redis

from migratrack.core.commands import FailSubTask, Pause, SkipPhase, StartPhase, StartSubTask
from migratrack.errors import ConfigurationError
from migratrack.service import MigrationService
from migratrack.storage import open_storage
from migratrack.storage.crypto import generate_key

SECRETS = ["Payroll-Migration-Name", "Quarterly ledger description", "disk full on replica-7",
           "customer ACME escalated", "owner=finance-team-lead", "operator said stop-now",
           "skip-because-legacy", "sub-task-label-zeta", "ack-by-night-shift"]


def write_secrets(url: str) -> str:
    svc = MigrationService(url)
    mid = "enc-test"
    svc.initialize(mid, [
        {"id": "p1", "name": SECRETS[0], "description": SECRETS[1],
         "sub_tasks": [{"id": "s1", "name": SECRETS[7]}], "metadata": {"owner": SECRETS[4]}},
        {"id": "p2"}, {"id": "p3"},
    ], name=SECRETS[0], actor="a", metadata={"note": SECRETS[4]})
    svc.execute(mid, StartPhase("p1"), actor="a")
    svc.execute(mid, StartSubTask("p1", "s1"), actor="a")
    svc.update_sub_task_progress(mid, "p1", "s1", 50.0, actor="a")
    svc.update_phase_progress(mid, "p1", 10.0, {"comment": SECRETS[3]}, actor="a")
    svc.execute(mid, FailSubTask("p1", "s1", SECRETS[2]), actor="a")
    svc.execute(mid, SkipPhase("p2", SECRETS[6]), actor="a")
    alert = svc.create_alert(mid, "critical", SECRETS[3], actor="a")
    svc.acknowledge_alert(mid, alert.id, SECRETS[8], actor="a")
    svc.execute(mid, Pause(SECRETS[5]), actor="a")
    svc.update_metrics(mid, None, {"successful_operations": 3}, actor="a")
    svc.storage.close()
    return mid


def raw_redis_text(url: str, prefix: str) -> str:
    client = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
    out = []
    for key in client.scan_iter(match=f"{prefix}:*"):
        kind = client.type(key)
        if kind == "hash":
            out.append(repr(client.hgetall(key)))
        elif kind == "stream":
            out.append(repr(client.xrange(key)))
        elif kind == "zset":
            out.append(repr(client.zrange(key, 0, -1)))
        elif kind == "set":
            out.append(repr(client.smembers(key)))
        else:
            out.append(repr(client.get(key)))
    client.close()
    return "\n".join(out)


def raw_postgres_text(url: str) -> str:
    with psycopg.connect(url) as conn:
        return "\n".join(
            str(row) for table in ("mt_migrations", "mt_phases", "mt_sub_tasks", "mt_events", "mt_alerts")
            for row in conn.execute(f"SELECT t::text FROM {table} t"))


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgresql"])
def test_no_plaintext_at_rest_and_data_reads_back(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import url_for

    url = url_for(kind, request, tmp_path)
    key = generate_key()
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", key)
    mid = write_secrets(url)

    if kind == "sqlite":
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("latin-1")
    elif kind == "redis":
        raw = raw_redis_text(url, request.getfixturevalue("redis_prefix"))
    else:
        raw = raw_postgres_text(url)
    assert "mtenc:1:" in raw  # the store did write encrypted values
    leaked = [s for s in SECRETS if s in raw]
    assert leaked == []

    # the same key reads everything back
    svc = MigrationService(url)
    state = svc.state(mid)
    assert state.name == SECRETS[0] and state.phases["p1"].description == SECRETS[1]
    assert state.phases["p1"].sub_tasks["s1"].error == SECRETS[2]
    assert {a.message for a in svc.alerts(mid)} >= {SECRETS[3]}
    assert any(e.payload.get("reason") == SECRETS[6] for e in svc.events(mid))
    svc.storage.close()

    # a wrong key, or none, gives a clear error instead of garbage
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", generate_key())
    other = open_storage(url)
    with pytest.raises(ConfigurationError, match=r"encrypted with key id .* set the key it was written with"):
        other.load(mid)
    other.close()
    monkeypatch.delenv("MIGRATRACK_ENCRYPTION_KEY")
    plain = open_storage(url)
    with pytest.raises(ConfigurationError, match="set MIGRATRACK_ENCRYPTION_KEY"):
        plain.load(mid)
    plain.close()

    # rotation: the new key first, the old one after it, reads old data and writes with the new key
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", f"{generate_key()},{key}")
    rotated = MigrationService(url)
    rotated.create_alert(mid, "info", "after rotation", actor="a")
    assert [a.message for a in rotated.alerts(mid, limit=1)] == ["after rotation"]
    assert rotated.state(mid).name == SECRETS[0]
    rotated.storage.close()


def test_a_malformed_key_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", "hunter2")
    with pytest.raises(ConfigurationError, match="migratrack keygen"):
        open_storage(f"sqlite:///{tmp_path}/x.db")


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgresql"])
def test_rekey_finishes_a_rotation(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from migratrack.cli.main import app

    from .conftest import url_for

    url = url_for(kind, request, tmp_path)
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", old)
    mid = write_secrets(url)
    before = open_storage(url)
    events = [(e.seq, e.type, e.payload) for e in before.events(mid)]
    alerts = [(a.id, a.message, a.acknowledged_by) for a in before.alerts(mid)]
    state = before.load(mid)
    before.close()

    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", f"{new},{old}")
    result = CliRunner().invoke(app, ["rekey", "--storage", url])
    assert result.exit_code == 0, result.output
    assert f"{mid}: rewritten ({len(events)} events)" in result.output

    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", new)  # the old key is gone: everything still reads
    after = open_storage(url)
    assert [(e.seq, e.type, e.payload) for e in after.events(mid)] == events
    assert [(a.id, a.message, a.acknowledged_by) for a in after.alerts(mid)] == alerts
    reloaded = after.load(mid)
    assert reloaded.header_dict() == state.header_dict()
    assert {p: ph.to_dict() for p, ph in reloaded.phases.items()} == {p: ph.to_dict() for p, ph in state.phases.items()}
    assert (reloaded.alert_counts, reloaded.unacknowledged_alerts, reloaded.seq) == (
        state.alert_counts, state.unacknowledged_alerts, state.seq)
    after.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgresql"])
def test_plaintext_is_refused_once_a_key_is_set_until_encrypt_store_converts_it(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from migratrack.cli.main import app

    from .conftest import url_for

    url = url_for(kind, request, tmp_path)
    monkeypatch.delenv("MIGRATRACK_ENCRYPTION_KEY", raising=False)
    mid = write_secrets(url)  # written in the clear
    plain = open_storage(url)
    expected = (plain.load(mid).header_dict(), [(e.seq, e.payload) for e in plain.events(mid)])
    plain.close()

    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", generate_key())
    keyed = open_storage(url)
    with pytest.raises(ConfigurationError, match=r"not encrypted.*migratrack encrypt-store"):
        keyed.load(mid)
    keyed.close()

    result = CliRunner().invoke(app, ["encrypt-store", "--storage", url])
    assert result.exit_code == 0, result.output
    assert f"{mid}: encrypted" in result.output
    after = open_storage(url)
    assert (after.load(mid).header_dict(), [(e.seq, e.payload) for e in after.events(mid)]) == expected
    after.close()
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "store.db") as conn:
            conn.execute("VACUUM")  # the old plain pages are gone from the file, not only unreferenced
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("latin-1")
    elif kind == "redis":
        raw = raw_redis_text(url, request.getfixturevalue("redis_prefix"))
    else:
        raw = raw_postgres_text(url)
    assert [s for s in SECRETS if s in raw] == []
