"""Store passwords never reach the terminal: banners and messages print the URL masked."""

from __future__ import annotations

import uuid

import redis
from typer.testing import CliRunner

from migratrack.cli.common import shown
from migratrack.cli.main import app


def test_a_store_password_is_masked_wherever_a_url_is_printed() -> None:
    assert shown("redis://:s3cretPW@127.0.0.1:6379/13") == "redis://:***@127.0.0.1:6379/13"
    assert "s3cretPW" not in shown("postgresql://u:s3cretPW@127.0.0.1/db")
    assert shown("nope://x") == "<an invalid store URL>"


def test_list_on_an_empty_store_names_it_without_its_password() -> None:
    prefix = f"mt-secret-{uuid.uuid4().hex[:8]}"
    url = f"redis://:s3cretPW@127.0.0.1:6379/13?prefix={prefix}"
    try:
        result = CliRunner().invoke(app, ["list", "--storage", url])
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
    assert result.exit_code == 0, result.output
    assert "s3cretPW" not in result.output
    assert "no migrations in redis://:***@127.0.0.1:6379/13" in result.output
