"""Every command, given bad input, says what is wrong and exits with a code — never a traceback.

The generic checks (an unknown option; the required arguments missing) run over every command
the CLI has, found from the app itself, so a command added later is checked too. The table
below gives each command a bad value a user could type, and the exit code and words expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.service import MigrationService


def commands() -> Iterator[tuple[list[str], object]]:
    """(path, click command) of every leaf command, sub-groups included."""
    def walk(prefix: list[str], group: object) -> Iterator[tuple[list[str], object]]:
        for name, cmd in sorted(getattr(group, "commands", {}).items()):
            if getattr(cmd, "commands", None) is not None:
                yield from walk([*prefix, name], cmd)
            else:
                yield [*prefix, name], cmd
    yield from walk([], get_command(app))


ALL = list(commands())


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # the default store, if any command falls back to it, lands here


def clean(result: object, code: int, words: str) -> None:
    output = getattr(result, "output", "")
    exc = getattr(result, "exception", None)
    assert isinstance(exc, SystemExit | None), (output, exc)  # not an exception escaping as a traceback
    assert "Traceback" not in output, output
    assert getattr(result, "exit_code", None) == code, output
    assert words.lower() in output.lower(), output


def test_the_commands_were_found() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"status", "list", "progress", "start", "approve", "token create", "init", "check-plan"} <= names


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) for p, _ in ALL])
def test_an_unknown_option_is_a_usage_error(path: list[str]) -> None:
    clean(CliRunner().invoke(app, [*path, "--no-such-option"]), 2, "no such option: --no-such-option")


WITH_REQUIRED = [(p, c) for p, c in ALL if any(getattr(x, "required", False) for x in getattr(c, "params", []))]


@pytest.mark.parametrize("path", [p for p, _ in WITH_REQUIRED], ids=[" ".join(p) for p, _ in WITH_REQUIRED])
def test_missing_arguments_are_a_usage_error(path: list[str]) -> None:
    clean(CliRunner().invoke(app, path), 2, "missing")


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/bad.db"
    svc = MigrationService(url)
    svc.initialize("m", [{"id": "copy-orders"}, {"id": "gate", "requires_approval": True}], actor="t")
    svc.storage.close()
    return url


#: (arguments, exit code, words the message must contain); {s} is the store
BAD = [
    (["progress", "m", "copy-orders", "60", "--metadata", "{bad"], 2, "--metadata: not valid JSON"),
    (["progress", "m", "copy-orders", "60", "--metadata", "[1]"], 2, "must be a JSON object"),
    (["progress", "m", "copy-orders", "150"], 2, ""),
    (["progress", "m", "copy-orders", "50"], 1, "migratrack start m copy-orders"),
    (["progress", "nope", "copy-orders", "50"], 2, "does not exist"),
    (["status", "nope"], 2, "migratrack list"),
    (["status", "mm"], 2, "did you mean 'm'"),
    (["watch", "nope"], 2, "does not exist"),
    (["events", "nope"], 2, "does not exist"),
    (["events", "m", "--limit", "many"], 2, "valid integer"),
    (["start", "m", "copy-order"], 2, "did you mean 'copy-orders'"),
    (["start", "m", "gate"], 1, "migratrack approve m gate"),
    (["complete", "m", "copy-orders"], 1, "start it first: migratrack start m copy-orders"),
    (["fail", "m", "copy-orders", "--error", ""], 2, ""),
    (["skip", "m", "copy-orders", "--reason", " "], 2, "reason must not be empty"),
    (["retry", "m", "copy-orders"], 1, "only a failed phase can be retried"),
    (["approve", "m", "copy-orders"], 1, "does not require approval"),
    (["estimate", "m", "copy-orders", "-5"], 2, ""),
    (["estimate", "m", "copy-orders", "soon"], 2, "valid number"),
    (["pause", "nope"], 2, "does not exist"),
    (["resume", "nope"], 2, "does not exist"),
    (["cancel", "nope"], 2, "does not exist"),
    (["init", "m2", "missing.yaml"], 2, "cannot read plan file"),
    (["check-plan", "missing.yaml"], 2, "cannot read plan file"),
    (["alert", "m", "loud", "hello"], 2, "alert level must be one of"),
    (["alert", "m", "info", "hello", "--phase", "nope"], 2, "has no phase"),
    (["checkpoint", "nope"], 2, "does not exist"),
    (["purge", "--older-than", "a while"], 2, ""),
    (["list", "--storage", "bogus://x"], 2, ""),
    (["rekey", "--storage", "bogus://x"], 2, ""),
    (["upgrade-store", "--storage", "bogus://x"], 2, "bogus"),
    (["serve", "--port", "0"], 2, "greater than or equal to 1"),
    (["token", "create", "--role", "king", "--name", "x"], 2, ""),
    (["token", "revoke", "nope"], 2, ""),
    (["demo", "--speed", "0"], 2, ""),
    (["run", "m", "copy-orders", "--progress-regex", "(", "--", "true"], 2, "not a regular expression"),
    (["run", "m", "copy-orders", "--progress-regex", r"\d+%", "--", "true"], 2, "name a group"),
    (["run", "m", "copy-orders", "--", "/no/such/command"], 2, "cannot run '/no/such/command'"),
    (["run", "nope", "copy-orders", "--", "true"], 2, "does not exist"),
]


@pytest.mark.parametrize("args,code,words", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_values_say_what_is_wrong(store: str, args: list[str], code: int, words: str) -> None:
    if "--storage" not in args and args[0] not in ("check-plan", "demo", "serve"):
        cut = args.index("--") if "--" in args else len(args)
        args = [*args[:cut], "--storage", store, *args[cut:]]
    result = CliRunner().invoke(app, args)
    clean(result, code, words)
    assert ("error" in result.output.lower()), result.output


def test_check_plan_reads_no_store_and_a_bad_plan_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("phases: [{id: a, dependencies: [b]}")
    clean(CliRunner().invoke(app, ["check-plan", str(bad)]), 2, "is not valid YAML")
