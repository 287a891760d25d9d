"""The spool: writes that could not be delivered before the give-up time, kept on local disk.

One JSON-lines file per migration and target (a store, or a server) in the spool directory
(``MIGRATRACK_SPOOL_DIR``). Each line is one write as it would have been sent, with its
operation id::

    {"op_id": "…", "kind": "batch", "actor": "…", "body": {"updates": […], "increments": {…}}}
    {"op_id": "…", "kind": "alert", "actor": "…", "body": {"level": "error", "message": "…"}}
    {"op_id": "…", "kind": "metrics", "actor": "…", "body": {"values": {…}, "increment": {…}}}

(the bodies are those of the server's batch, alert and metrics routes). The next tracker for the
same migration and target claims the file when it starts and replays it; because every line
keeps its operation id, a line that had reached the store after all, or that is replayed twice,
is applied once.

Several processes may spool for one migration (the workers of a pool): appending and claiming
take an exclusive lock on a ``.lock`` file beside the spool file, so no line is lost between a
writer and a claimer. A claim renames the file to one named after the claiming process; it is
removed once every line in it was delivered (or spooled again). A claimed file left by a
process that died is claimed again by the next tracker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("migratrack")

try:
    import fcntl
except ImportError:  # Windows: one process at a time is all the lock below covers there
    fcntl = None  # type: ignore[assignment]

Record = dict[str, Any]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60].strip("._") or "migration"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


class Spool:
    """The spool files of one target (a store URL, or a server URL) in ``directory``."""

    def __init__(self, directory: Path, target: str) -> None:
        self.directory = directory
        self.target = target
        self._local = threading.Lock()  # flock is per process: threads of one process queue here

    def path(self, mid: str) -> Path:
        """The spool file of migration ``mid``."""
        digest = hashlib.sha256(f"{self.target}\0{mid}".encode()).hexdigest()[:12]
        return self.directory / f"{_slug(mid)}-{digest}.jsonl"

    @contextlib.contextmanager
    def _locked(self, mid: str) -> Iterator[Path]:
        path = self.path(mid)
        with self._local:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".lock"), "a") as lock:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield path
                finally:
                    if fcntl is not None:
                        fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, mid: str, records: Sequence[Record]) -> Path:
        """Add ``records`` at the end of the migration's spool file (on disk when this returns);
        the file's path. Raises OSError when the directory is not writable."""
        lines = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records)
        with self._locked(mid) as path, open(path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        return path

    def claim(self, mid: str) -> Claim | None:
        """Take the migration's spooled writes for this process to replay: the spool file, and
        any claimed by a process that has died; None when there is nothing to replay."""
        base = self.path(mid)
        # the common case, a tracker starting with nothing spooled: no lock, no file made
        if not base.exists() and not any(base.parent.glob(base.name + ".*.claimed")):
            return None
        taken: list[Path] = []
        with self._locked(mid):
            candidates = [base] if base.exists() else []
            for old in base.parent.glob(base.name + ".*.claimed"):
                pid = old.name[len(base.name) + 1:].split(".", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    candidates.append(old)
            for src in candidates:
                dst = base.with_name(f"{base.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.claimed")
                try:
                    src.rename(dst)
                except FileNotFoundError:
                    continue
                taken.append(dst)
        if not taken:
            return None
        records: list[Record] = []
        for path in taken:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut short by a crash mid-write: the rest is still good
                    log.warning("migratrack: skipped an unreadable line %d of the spool file %s", n, path)
                    continue
                if isinstance(record, dict) and {"op_id", "kind", "body"} <= record.keys():
                    records.append(record)
        return Claim(records, taken)


class Claim:
    """Spooled writes taken for replay. Each is ``settle()``d once delivered (or spooled again,
    or refused); the claimed files are removed when all are."""

    def __init__(self, records: list[Record], paths: list[Path]) -> None:
        self.records = records
        self.paths = paths
        self._left = len(records)
        self._lock = threading.Lock()
        if not records:
            self._remove()

    def settle(self) -> None:
        with self._lock:
            self._left -= 1
            done = self._left == 0
        if done:
            self._remove()

    def _remove(self) -> None:
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
