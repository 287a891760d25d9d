"""The root options (--url, --token) reach the command that follows them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.storage import open_storage


@pytest.fixture(autouse=True)
def no_server_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL"):
        monkeypatch.delenv(var, raising=False)


def test_list_asks_the_server_given_before_it() -> None:
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "list"])
    assert result.exit_code == 4
    assert "migratrack server http://127.0.0.1:9 unavailable" in result.output


def test_a_storage_named_on_the_command_wins_over_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    open_storage(url).close()  # an empty store: list reads, it does not create one
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "list", "--storage", url])
    assert result.exit_code == 0, result.output
    assert result.output.replace("\n", "") == f"no migrations in {url}"  # the console wraps long lines


def test_a_shell_command_reports_to_the_server_given_before_it() -> None:
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "--token", "t", "start", "m", "load"])
    assert result.exit_code == 4
    assert "migratrack server http://127.0.0.1:9 unavailable" in result.output
