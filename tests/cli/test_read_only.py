"""Readers that only read: status, list and events open a SQLite store read-only.

What was checked on this machine (SQLite 3.40, as root):
* the database file is never written: same bytes, size and mtime after every reader;
* in a writable directory SQLite's ``mode=ro`` reader creates the ``-wal`` and ``-shm`` files of
  a WAL database when they are missing (it needs the shared index to read safely beside a
  writer); the ``-wal`` stays empty: nothing is written to the store;
* in a read-only directory (a read-only bind mount: root ignores file modes) no file at all is
  created or changed, and the readers still work;
* a missing file is an error that says so, and no file is created.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migratrack.cli.main import app
from migratrack.core.commands import StartPhase
from migratrack.errors import ConfigurationError, StorageError
from migratrack.service import MigrationService
from migratrack.storage import open_storage

READERS = [["status", "m1"], ["status", "m1", "--json"], ["list"], ["events", "m1"]]


@pytest.fixture(autouse=True)
def no_server_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "MIGRATRACK_STORAGE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A store with one migration under way, closed (so no -wal or -shm file is left)."""
    path = tmp_path / "data" / "m.db"
    path.parent.mkdir()
    svc = MigrationService(f"sqlite:///{path}")
    svc.initialize("m1", [{"id": "copy"}, {"id": "verify", "dependencies": ["copy"]}], actor="t")
    svc.execute("m1", StartPhase("copy"), actor="t")
    svc.update_phase_progress("m1", "copy", 40, actor="t")
    svc.storage.close()
    assert sorted(os.listdir(path.parent)) == ["m.db"]
    return path


def files(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file of the folder: mtime, size and a digest of its bytes."""
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


def read_all(path: Path) -> None:
    for args in READERS:
        result = CliRunner().invoke(app, [*args, "--storage", f"sqlite:///{path}"])
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert "m1" in result.output or "migration.initialized" in result.output


@pytest.fixture
def read_only_folder(store_file: Path) -> Iterator[Path]:
    """The store's folder bind-mounted read-only onto itself (where the machine allows mounts)."""
    folder = store_file.parent
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow a bind mount (not root, or no mount capability)")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("this machine does not allow a read-only remount")
        with pytest.raises(OSError):
            (folder / "probe").touch()
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_readers_work_in_a_read_only_folder_and_change_nothing(store_file: Path, read_only_folder: Path) -> None:
    before = files(read_only_folder)
    read_all(store_file)
    assert files(read_only_folder) == before  # no -wal, no -shm, the file untouched


def test_readers_never_write_the_database_file(store_file: Path) -> None:
    before = files(store_file.parent)["m.db"]
    read_all(store_file)
    after = files(store_file.parent)
    assert after["m.db"] == before
    # SQLite's shared index for WAL readers, made because the folder allows it; no frame written
    assert set(after) <= {"m.db", "m.db-wal", "m.db-shm"}
    assert after.get("m.db-wal", (0, 0, ""))[1] == 0


def test_readers_see_what_a_writer_is_writing(store_file: Path) -> None:
    writer = MigrationService(f"sqlite:///{store_file}")  # open, its -wal holding new frames
    writer.update_phase_progress("m1", "copy", 75, actor="t")
    result = CliRunner().invoke(app, ["status", "m1", "--json", "--storage", f"sqlite:///{store_file}"])
    assert result.exit_code == 0, result.output
    assert '"progress": 75.0' in result.output
    writer.storage.close()


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_a_missing_file_is_an_error_and_nothing_is_created(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "typo.db"
    result = CliRunner().invoke(app, [*args, "--storage", f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert f"no SQLite store at {str(path)!r}: the file does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_store_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"")  # an empty file: SQLite would happily make it a database
    result = CliRunner().invoke(app, ["list", "--storage", f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert "is not a migratrack store" in result.output
    assert path.read_bytes() == b""


@pytest.mark.parametrize("how", ["argument", "url"])
def test_a_read_only_store_refuses_writes(store_file: Path, how: str) -> None:
    store = (open_storage(f"sqlite:///{store_file}", read_only=True) if how == "argument"
             else open_storage(f"sqlite:///{store_file}?mode=ro"))
    svc = MigrationService(store)
    assert svc.state("m1").phases["copy"].progress == 40
    with pytest.raises(StorageError, match="opened read-only"):
        svc.update_phase_progress("m1", "copy", 90, actor="t")
    with pytest.raises(StorageError, match="opened read-only"):
        svc.execute("m1", StartPhase("verify"), actor="t")
    store.close()
    assert MigrationService(f"sqlite:///{store_file}").state("m1").phases["copy"].progress == 40


def test_a_bad_mode_is_refused(store_file: Path) -> None:
    with pytest.raises(ConfigurationError, match="mode must be ro"):
        open_storage(f"sqlite:///{store_file}?mode=readonly")
