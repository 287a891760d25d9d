"""The summary and paged sub-tasks over HTTP: the API, the remote SDK and the CLI against a server."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app as cli
from migratrack.sdk.remote import RemoteBackend

from .live import LiveServer


@pytest.fixture
def big(admin: httpx.Client) -> str:
    plan = [{"id": "copy", "sub_tasks": [f"s{i:02}" for i in range(30)]}]
    assert admin.post("/api/migrations", json={"id": "big", "phases": plan}).status_code == 201
    admin.post("/api/migrations/big/phases/copy/start")
    for i in (3, 4, 17):
        admin.post(f"/api/migrations/big/phases/copy/subtasks/s{i:02}/start")
        r = admin.post(f"/api/migrations/big/phases/copy/subtasks/s{i:02}/fail", json={"error": "timeout"})
        assert r.status_code == 200, r.text
    return "big"


def test_the_api_pages_and_filters_sub_tasks_and_summarises(big: str, client: Callable[[str | None], httpx.Client]
                                                             ) -> None:
    viewer = client("viewer")
    r = viewer.get("/api/migrations/big/phases/copy/sub-tasks", params={"status": "failed", "limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [s["id"] for s in page["items"]] == ["s03", "s04"] and page["next_after"] == "s04"
    r = viewer.get("/api/migrations/big/phases/copy/sub-tasks",
                   params={"status": "failed", "after": page["next_after"]})
    assert [s["id"] for s in r.json()["items"]] == ["s17"] and r.json()["next_after"] is None
    r = viewer.get("/api/migrations/big/summary")
    assert r.status_code == 200
    [phase] = r.json()["phases"]
    assert phase["sub_tasks"] == 30 and phase["sub_task_counts"]["failed"] == 3
    assert "sub_tasks" not in phase or isinstance(phase["sub_tasks"], int)  # counted, never listed
    assert viewer.get("/api/migrations/big/phases/copy/sub-tasks", params={"status": "nope"}).status_code == 422
    assert viewer.get("/api/migrations/big/phases/copy/sub-tasks", params={"limit": 0}).status_code == 422
    assert viewer.get("/api/migrations/big/phases/nope/sub-tasks").status_code == 404
    assert viewer.get("/api/migrations/big/phases/copy/sub-tasks", params={"after": "nope"}).status_code == 404
    assert client(None).get("/api/migrations/big/summary").status_code == 401


def test_the_remote_sdk_and_the_cli_read_pages_from_the_server(
        big: str, server: LiveServer, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    backend = RemoteBackend(server.url, token=tokens["viewer"], strict=True)
    try:
        page = backend.sub_tasks("big", "copy", status="failed")
        assert [s.id for s in page.items] == ["s03", "s04", "s17"]
        assert backend.summary("big").phases[0].sub_task_counts["pending"] == 27
    finally:
        backend.close()
    monkeypatch.delenv("MIGRATRACK_STORAGE_URL", raising=False)
    monkeypatch.setenv("MIGRATRACK_URL", server.url)
    monkeypatch.setenv("MIGRATRACK_TOKEN", tokens["viewer"])
    result = CliRunner().invoke(cli, ["sub-tasks", "big", "copy", "--status", "failed", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "s03" in result.output and "s04" in result.output and "s17" not in result.output
    assert "--after s04" in result.output
    result = CliRunner().invoke(cli, ["summary", "big"])
    assert result.exit_code == 0 and "copy" in result.output
    result = CliRunner().invoke(cli, ["sub-tasks", "big", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
