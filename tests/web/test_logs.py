"""Structured logs: JSON on request, the migration and phase on each record, a request id on the server."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from migratrack import MigrationProgressTracker
from migratrack.core.commands import StartPhase
from migratrack.errors import ConfigurationError
from migratrack.logs import configure_logging, log_context
from migratrack.service import MigrationService
from migratrack.settings import Settings
from migratrack.storage import open_storage
from migratrack.web import create_app

from .live import LiveServer


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("migratrack")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_debug_json_carries_the_migration_and_phase() -> None:
    out = io.StringIO()
    configure_logging(Settings.from_env({"MIGRATRACK_LOG_LEVEL": "debug", "MIGRATRACK_LOG_JSON": "1"}), stream=out)
    svc = MigrationService(open_storage("memory://"))
    svc.initialize("m1", [{"id": "copy"}], actor="t")
    svc.execute("m1", StartPhase("copy"), actor="alice")
    with log_context(migration="m2", phase="load"):
        logging.getLogger("migratrack.sdk").warning("slow")
    records = lines(out)
    started = next(r for r in records if r["message"].startswith("start by alice"))
    assert (started["level"], started["migration"], started["phase"]) == ("debug", "m1", "copy")
    assert records[-1] == {**records[-1], "message": "slow", "migration": "m2", "phase": "load", "level": "warning"}


def test_info_hides_debug_and_text_is_the_default() -> None:
    out = io.StringIO()
    configure_logging(Settings.from_env({}), stream=out)
    svc = MigrationService(open_storage("memory://"))
    svc.initialize("m1", [{"id": "copy"}], actor="t")
    svc.execute("m1", StartPhase("copy"), actor="alice")
    with log_context(migration="m1"):
        logging.getLogger("migratrack").info("hello")
    assert out.getvalue().strip().endswith("INFO    migratrack: hello [migration=m1]")
    assert "start by alice" not in out.getvalue()
    with pytest.raises(ConfigurationError, match="MIGRATRACK_LOG_LEVEL must be one of debug"):
        configure_logging(Settings.from_env({"MIGRATRACK_LOG_LEVEL": "loud"}))


def test_the_seeds_debug_habit_works_in_a_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MIGRATRACK_LOG_LEVEL", "debug")
    logging.getLogger("migratrack").handlers.clear()
    url = f"sqlite:///{tmp_path}/l.db"
    MigrationService(url).initialize("m", [{"id": "copy"}], actor="t")
    with MigrationProgressTracker("m", storage=url) as t:
        t.start_phase("copy")
    assert "start by" in capsys.readouterr().err


def test_the_server_gives_each_request_an_id(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(Settings.from_env({"MIGRATRACK_LOG_LEVEL": "debug", "MIGRATRACK_LOG_JSON": "1"}), stream=out)
    app = create_app(f"sqlite:///{tmp_path}/w.db", auth=False)
    app.state.service.initialize("m1", [{"id": "copy"}], actor="t")
    live = LiveServer(app).start()
    try:
        r = httpx.post(f"{live.url}/api/migrations/m1/phases/copy/start", headers={"X-Request-ID": "req-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        other = httpx.get(f"{live.url}/healthz", headers={"X-Request-ID": "bad id;<script>"})
        fresh = other.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", fresh)  # a new one, not the client's
        again = httpx.get(f"{live.url}/healthz").headers["x-request-id"]
        assert again != fresh and again.split("-")[0] == fresh.split("-")[0]
    finally:
        live.stop()
    started = next(r for r in lines(out) if r["message"].startswith("start by"))
    assert (started["request_id"], started["migration"], started["phase"]) == ("req-42", "m1", "copy")
