"""`migratrack alerts ...` and `migratrack dispatch --once`, and the configuration's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.alerts.config import load_config
from migratrack.cli.main import app
from migratrack.errors import ConfigurationError
from migratrack.service import MigrationService
from migratrack.settings import Settings

from .receiver import Receiver


@pytest.fixture
def setup(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url + "/slack")
    monkeypatch.setenv("MIGRATRACK_ACTOR", "bob@laptop")
    svc = MigrationService(url)
    svc.initialize("m", [{"id": "copy"}], actor="t")
    alert = svc.create_alert("m", "error", "replica lag", "copy", actor="t")
    svc.storage.close()
    return url, alert.id


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_dispatch_once_then_show_lists_the_attempts(setup: tuple[str, str], receiver: Receiver) -> None:
    url, alert = setup
    # a new group waits group_wait (10 s by default): a second round sends it
    config = Path(url.removeprefix("sqlite:///")).with_name("a.yaml")
    config.write_text("group_wait: 0s\n")
    run("dispatch", "--once", "--storage", url, "--config", str(config))
    assert len(receiver.accepted) == 1 and "replica lag" in receiver.accepted[0].json["text"]
    out = run("alerts", "show", "m", alert, "--storage", url)
    assert "-> slack [firing] delivered" in out and "HTTP 200 ok" in out
    out = run("alerts", "list", "m", "--storage", url)
    assert "replica lag" in out


def test_ack_silence_unsilence_and_deadline(setup: tuple[str, str]) -> None:
    url, alert = setup
    assert "acknowledged by bob@laptop" in run("alerts", "ack", "m", alert, "--storage", url)
    out = run("alerts", "silence", "--for", "2h", "--migration", "m", "--comment", "deploy", "--storage", url)
    silence_id = out.split()[1]
    assert silence_id in run("alerts", "silences", "--storage", url)
    run("alerts", "unsilence", silence_id, "--storage", url)
    assert "no silences in force" in run("alerts", "silences", "--storage", url)
    assert "deadline 2026-12-01T06:00:00+00:00" in run("alerts", "deadline", "m", "2026-12-01T06:00:00+00:00",
                                                        "--storage", url)
    bad = CliRunner().invoke(app, ["alerts", "silence", "--storage", url])
    assert bad.exit_code != 0


def test_the_test_command_prints_the_receivers_answer(setup: tuple[str, str], receiver: Receiver) -> None:
    url, _ = setup
    assert "slack: delivered: HTTP 200 ok" in run("alerts", "test", "--channel", "slack", "--storage", url)
    receiver.fail(100, status=403)
    result = CliRunner().invoke(app, ["alerts", "test", "--channel", "slack", "--storage", url])
    assert result.exit_code == 1 and "failed: HTTP 403 oops" in result.output


def test_configuration_errors_say_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels:\n  pager: {type: pagerduty}\n")
    with pytest.raises(ConfigurationError, match=r"channels\.pager.*needs 'routing_key'"):
        load_config(Settings(), bad)
    bad.write_text("channels:\n  x: {type: carrier-pigeon}\n")
    with pytest.raises(ConfigurationError, match=r"channels\.x\.type"):
        load_config(Settings(), bad)
    bad.write_text("stall_after: soon\n")
    with pytest.raises(ConfigurationError, match="stall_after"):
        load_config(Settings(), bad)
    bad.write_text("escalation: [{after: 15m, channel: nowhere}]\n")
    with pytest.raises(ConfigurationError, match="escalation names channel 'nowhere'"):
        load_config(Settings(), bad)
    bad.write_text("[1, 2")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(Settings(), bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(Settings(), tmp_path / "missing.yaml")


def test_the_environment_adds_channels() -> None:
    env = {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/s", "MIGRATION_ALERT_EMAIL": "a@x.org, b@x.org",
           "MIGRATRACK_SMTP_URL": "smtp://u:p@127.0.0.1:2525?starttls=true", "MIGRATRACK_SNS_TOPIC_ARN":
           "arn:aws:sns:eu-west-1:1:t", "MIGRATRACK_PAGERDUTY_ROUTING_KEY": "k", "MIGRATRACK_STALL_AFTER": "90s",
           "MIGRATRACK_PUBLIC_URL": "https://mt.example"}
    c = load_config(Settings.from_env(env))
    assert set(c.channels) == {"slack", "email", "sns", "pagerduty"}
    assert c.channels["email"].to == ["a@x.org", "b@x.org"]
    assert c.stall_after.total_seconds() == 90 and c.public_url == "https://mt.example"
