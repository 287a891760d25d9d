"""Reads against the size of the migration: the dashboard, the summary and a page of sub-tasks,
against a raw read of the same rows, in the same run.

    python bench/bench_reads.py [--stores sqlite,redis,postgresql] [--redis URL] [--postgres URL]

Per store, on a migration of 100 phases x 100 sub-tasks (10,000 sub-tasks, 1 in 20 failed):
``get_dashboard()`` (MigrationService.dashboard), the raw read of the same rows (sqlite3 / redis-py
HGETALL / psycopg SELECT, rows fetched, nothing decoded), ``summary()`` (phases with sub-task
counts) and one page of 100 failed sub-tasks. Then the summary and the dashboard of a 1,000-phase
migration (no sub-tasks), and that dashboard over HTTP from a real server (uvicorn on 127.0.0.1,
SQLite store). Best of 5 each. Names of its own: a Redis key prefix and a PostgreSQL database
with this process's id, a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from migratrack.core.commands import FailSubTask, StartPhase, StartSubTask
from migratrack.service import MigrationService
from migratrack.web import create_app

REDIS = "redis://127.0.0.1:6379/14"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def best(fn: Callable[[], Any], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000.0


def raw_reader(store: str, url: str, mid: str, prefix: str) -> Callable[[], Any]:
    if store == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        return lambda: (conn.execute("SELECT * FROM mt_phases WHERE migration_id = ?", (mid,)).fetchall(),
                        conn.execute("SELECT * FROM mt_sub_tasks WHERE migration_id = ?", (mid,)).fetchall())
    if store == "redis":
        r = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
        return lambda: (r.hgetall(f"{prefix}:{{{mid}}}:h"), r.hgetall(f"{prefix}:{{{mid}}}:p"),
                        r.hgetall(f"{prefix}:{{{mid}}}:s"))
    pg = psycopg.connect(url, autocommit=True)
    return lambda: (pg.execute("SELECT * FROM mt_phases WHERE migration_id = %s", (mid,)).fetchall(),
                    pg.execute("SELECT * FROM mt_sub_tasks WHERE migration_id = %s", (mid,)).fetchall())


def http_dashboard(url: str, mid: str) -> float:
    app = create_app(url)
    token = app.state.tokens.create("bench", "viewer")[0]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as c:
            c.get(f"/api/migrations/{mid}/dashboard").raise_for_status()
            return best(lambda: c.get(f"/api/migrations/{mid}/dashboard").raise_for_status())
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", default="sqlite,redis,postgresql")
    ap.add_argument("--redis", default=REDIS)
    ap.add_argument("--postgres", default=POSTGRES_SERVER)
    args = ap.parse_args()
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    prefix = f"mtreads{tag}"
    db = f"migratrack_reads_{tag}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/reads.db", "redis": f"{args.redis}?prefix={prefix}",
                "postgresql": args.postgres.rsplit("/", 1)[0] + f"/{db}"}
        stores = args.stores.split(",")
        if "postgresql" in stores:
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{db}"')
        try:
            for store in stores:
                url = urls[store]
                svc = MigrationService(url)
                plan = [{"id": f"p{i}", "sub_tasks": [f"s{j}" for j in range(100)]} for i in range(100)]
                svc.initialize("subs", plan, actor="bench", replace=True)
                for i in range(0, 100, 10):
                    svc.execute("subs", StartPhase(f"p{i}"), actor="b")
                    for j in range(0, 100, 2):
                        svc.execute("subs", StartSubTask(f"p{i}", f"s{j}"), actor="b")
                        if j % 20 == 0:
                            svc.execute("subs", FailSubTask(f"p{i}", f"s{j}", "timeout"), actor="b")
                raw = raw_reader(store, url, "subs", prefix)
                raw_ms = best(raw)
                dash_ms = best(lambda svc=svc: svc.dashboard("subs"))
                rows.append((store, "dashboard, 10,000 sub-tasks", dash_ms,
                             f"{dash_ms / raw_ms:.1f}x raw ({raw_ms:.1f})"))
                rows.append((store, "summary, 100 phases / 10,000 sub-tasks", best(lambda svc=svc: svc.summary("subs")),
                             ""))
                rows.append((store, "page of 100 failed sub-tasks", best(
                    lambda svc=svc: svc.sub_tasks("subs", "p0", status="failed", limit=100)), ""))
                svc.initialize("phases", [{"id": f"q{i}"} for i in range(1000)], actor="bench", replace=True)
                rows.append((store, "summary, 1,000 phases", best(lambda svc=svc: svc.summary("phases")), ""))
                rows.append((store, "dashboard, 1,000 phases", best(lambda svc=svc: svc.dashboard("phases")), ""))
                if store == "sqlite":
                    rows.append((store, "dashboard, 1,000 phases, over HTTP", http_dashboard(url, "phases"),
                                 "target < 100 ms"))
                svc.storage.close()
        finally:
            if "postgresql" in stores:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            if "redis" in stores:
                r = redis.Redis.from_url(args.redis)
                keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
                if keys:
                    r.delete(*keys)
    print("\n| store | read | ms (best of 5) | note |\n|---|---|---|---|")
    for store, what, ms, note in rows:
        print(f"| {store} | {what} | {ms:.1f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
