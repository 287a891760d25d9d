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
    assert "mtenc:2:" in raw  # the store did write encrypted values, bound to their place
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


def copy_value(kind: str, url: str, request: pytest.FixtureRequest, tmp_path: Path, what: str,
               src: tuple[str, str], dst: tuple[str, str]) -> None:
    """As someone with write access to the store would: copy one encrypted value over another.
    ``what`` is "header" (src/dst: migration, "") or "phase" (src/dst: migration, phase)."""
    if kind == "redis":
        from migratrack.storage.redis import _keys

        prefix = request.getfixturevalue("redis_prefix")
        client = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
        if what == "header":
            value = client.hget(_keys(prefix, src[0])["h"], "hdr")
            client.hset(_keys(prefix, dst[0])["h"], "hdr", value)
        else:
            value = client.hget(_keys(prefix, src[0])["p"], f"{src[1]}/x")
            client.hset(_keys(prefix, dst[0])["p"], f"{dst[1]}/x", value)
        client.close()
        return
    if what == "header":
        sql = "UPDATE mt_migrations SET header = (SELECT header FROM mt_migrations WHERE id = ?) WHERE id = ?"
        args: tuple[str, ...] = (src[0], dst[0])
    else:
        sql = ("UPDATE mt_phases SET data = (SELECT data FROM mt_phases WHERE migration_id = ? AND id = ?) "
               "WHERE migration_id = ? AND id = ?")
        args = (*src, *dst)
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "store.db") as conn:
            conn.execute(sql, args)
    else:
        with psycopg.connect(url) as pg:
            pg.execute(sql.replace("?", "%s"), args)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgresql"])
@pytest.mark.parametrize("what", ["header", "phase"])
def test_a_value_moved_to_another_place_is_refused(kind: str, what: str, request: pytest.FixtureRequest,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each value is bound to its migration, field and row: whoever can write to the store cannot
    make one migration's name read as another's, or one phase's record as another phase's."""
    from .conftest import url_for

    url = url_for(kind, request, tmp_path)
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", generate_key())
    svc = MigrationService(url)
    for mid, name in (("m-a", "Alpha"), ("m-b", "Bravo")):
        svc.initialize(mid, [{"id": "p1", "name": f"{name} one"}, {"id": "p2", "name": f"{name} two"}],
                       name=name, actor="a")
    svc.storage.close()
    if what == "header":
        copy_value(kind, url, request, tmp_path, what, ("m-b", ""), ("m-a", ""))
    else:
        copy_value(kind, url, request, tmp_path, what, ("m-a", "p2"), ("m-a", "p1"))

    store = open_storage(url)
    with pytest.raises(ConfigurationError, match=r"moved from another place \(migration m-a, "):
        store.load("m-a")
    assert store.load("m-b").name == "Bravo"  # the rest still reads
    store.close()


def test_values_encrypted_without_their_place_are_converted_by_encrypt_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store encrypted by an older migratrack (format 1: no associated data) is refused with the
    command that converts it; after `encrypt-store`, everything reads back, bound to its place."""
    import base64
    import json
    import os
    from typing import Any

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from typer.testing import CliRunner

    from migratrack.cli.main import app
    from migratrack.storage.crypto import EncryptingCodec, key_id, parse_keys

    key = generate_key()
    raw_key = parse_keys(key)[0]

    class FormatOne(EncryptingCodec):  # what migratrack wrote before values were bound to their place
        def dumps(self, value: Any, where: str = "") -> str:
            nonce = os.urandom(12)
            plain = json.dumps(value, separators=(",", ":"), default=str).encode()
            sealed = AESGCM(raw_key).encrypt(nonce, plain, None)
            return f"mtenc:1:{key_id(raw_key)}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    url = f"sqlite:///{tmp_path}/store.db"
    monkeypatch.delenv("MIGRATRACK_ENCRYPTION_KEY", raising=False)
    svc = MigrationService(open_storage(url, codec=FormatOne([raw_key], allow_plaintext=True)))
    svc.initialize("old", [{"id": "p1", "name": "Legacy phase"}], name="Legacy", actor="a")
    svc.create_alert("old", "warning", "kept across the upgrade", actor="a")
    svc.storage.close()

    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", key)
    store = open_storage(url)
    with pytest.raises(ConfigurationError, match=r"not bound to their place.*migratrack encrypt-store"):
        store.load("old")
    store.close()

    result = CliRunner().invoke(app, ["encrypt-store", "--storage", url])
    assert result.exit_code == 0, result.output
    store = open_storage(url)
    assert store.load("old").phases["p1"].name == "Legacy phase"
    assert [a.message for a in store.alerts("old")] == ["kept across the upgrade"]
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("latin-1")
    with sqlite3.connect(tmp_path / "store.db") as conn:
        headers = [r[0] for r in conn.execute("SELECT header FROM mt_migrations")]
    assert headers and all(h.startswith("mtenc:2:") for h in headers), raw[:200]


def test_an_event_forged_as_hot_path_plain_text_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's hot path writes its progress events as plain JSON (ids and numbers only); an event
    slipped in with that mark but any other content is refused, not shown as if migratrack wrote it."""
    url = f"sqlite:///{tmp_path}/store.db"
    monkeypatch.setenv("MIGRATRACK_ENCRYPTION_KEY", generate_key())
    svc = MigrationService(url)
    svc.initialize("m", [{"id": "p1"}], actor="a")
    svc.execute("m", StartPhase("p1"), actor="a")
    svc.update_phase_progress("m", "p1", 40.0, actor="a")
    assert [e.payload["progress"] for e in svc.events("m") if e.type == "phase.progress"] == [40.0]
    svc.storage.close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute("INSERT INTO mt_events (migration_id, seq, ts, actor, type, payload, plain) VALUES "
                     "('m', 99, '2030-01-01T00:00:00+00:00', 'a', 'alert.created', '{\"message\": \"wire money\"}', 1)")
    store = open_storage(url)
    with pytest.raises(ConfigurationError, match="does not look like one"):
        store.events("m")
    store.close()
