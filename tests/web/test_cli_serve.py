"""`migratrack serve` and `migratrack token …` as an operator runs them."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from migratrack.cli.main import app

from .live import serve_process as serve

runner = CliRunner()


def test_the_first_start_creates_an_admin_token_and_shows_it_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/s.db"
    with serve("--storage", db) as (url, lines):
        text = "\n".join(lines)
        assert "admin token was created" in text
        assert f"{url}/docs" in text
        token = next(line.strip() for line in lines if line.strip().startswith("mt_"))
        assert httpx.get(f"{url}/api/migrations").status_code == 401
        r = httpx.get(f"{url}/api/migrations", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert httpx.get(f"{url}/docs").status_code == 200
    with serve("--storage", db) as (url, lines):
        assert not any(line.strip().startswith("mt_") for line in lines)
        assert httpx.get(f"{url}/api/migrations", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_no_auth_only_on_loopback_behind_a_flag_with_a_warning(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--insecure-no-auth", "--storage", "memory://"])
    assert result.exit_code == 2
    assert "only on a loopback address" in result.output
    with serve("--storage", f"sqlite:///{tmp_path}/n.db", "--insecure-no-auth") as (url, lines):
        assert any("WITHOUT authentication" in line for line in lines)
        assert httpx.get(f"{url}/api/migrations").status_code == 200


def test_token_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    created = runner.invoke(app, ["token", "create", "--role", "operator", "--name", "ci", "--storage", db])
    assert created.exit_code == 0, created.output
    token = next(line for line in created.output.splitlines() if line.startswith("mt_"))
    listed = runner.invoke(app, ["token", "list", "--storage", db])
    assert "ci" in listed.output and "operator" in listed.output and "active" in listed.output
    assert token not in listed.output
    bad = runner.invoke(app, ["token", "create", "--role", "root", "--name", "x", "--storage", db])
    assert bad.exit_code != 0
    revoked = runner.invoke(app, ["token", "revoke", "ci", "--storage", db])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in runner.invoke(app, ["token", "list", "--storage", db]).output
