"""SIGTERM (kill, systemd, Kubernetes, Pool.terminate) does not lose what a tracker buffered: the
process leaves through its exit hooks, unless the program handles SIGTERM itself or turns it off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from migratrack.service import MigrationService

SCRIPT = """
import signal, sys, time
from migratrack import MigrationProgressTracker
if sys.argv[2] == "own-handler":
    def mine(signum, frame):
        print("the program's own handler ran", flush=True)
        sys.exit(7)
    signal.signal(signal.SIGTERM, mine)
t = MigrationProgressTracker("term", storage=sys.argv[1], coalesce=3600, actor="worker")
t.initialize_migration([{"id": "copy"}])
t.start_phase("copy")
for _ in range(500):
    t.add_progress("copy", 1)  # coalesced for an hour: all of it still in the buffer
print("ready", flush=True)
time.sleep(120)
"""


def run_and_terminate(url: str, mode: str, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, url, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


def done(url: str) -> int:
    svc = MigrationService(url)
    try:
        return svc.state("term").phases["copy"].done
    finally:
        svc.storage.close()


def test_sigterm_flushes_the_buffer_and_exits_143(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, _ = run_and_terminate(url, "plain", {"MIGRATRACK_SPOOL_DIR": str(tmp_path / "spool")})
    assert code == 143
    assert done(url) == 500


def test_the_programs_own_sigterm_handler_is_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, output = run_and_terminate(url, "own-handler", {"MIGRATRACK_SPOOL_DIR": str(tmp_path / "spool")})
    assert code == 7 and "the program's own handler ran" in output
    assert done(url) == 500  # its sys.exit ran the exit hooks


@pytest.mark.parametrize("setting", ["0", "false"])
def test_turned_off_sigterm_kills_as_before(tmp_path: Path, setting: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    code, _ = run_and_terminate(url, "plain", {"MIGRATRACK_FLUSH_ON_SIGTERM": setting,
                                               "MIGRATRACK_SPOOL_DIR": str(tmp_path / "spool")})
    assert code == -signal.SIGTERM
    assert done(url) < 500  # what this setting gives up


POOL = """
import multiprocessing as mp, sys, time
from migratrack import MigrationProgressTracker

def work(args):
    url, worker = args
    t = MigrationProgressTracker("term", storage=url, coalesce=3600, actor=f"w{worker}")
    for _ in range(100):
        t.add_progress("copy", 1)
    ready.put(worker)
    time.sleep(120)  # never returns: Pool.terminate() ends it with SIGTERM

def init(q):
    global ready
    ready = q

if __name__ == "__main__":
    url = sys.argv[1]
    t = MigrationProgressTracker("term", storage=url)
    t.initialize_migration([{"id": "copy"}])
    t.start_phase("copy")
    t.close()
    q = mp.get_context("fork").Queue()
    pool = mp.get_context("fork").Pool(3, initializer=init, initargs=(q,))
    pool.map_async(work, [(url, w) for w in range(3)])
    for _ in range(3):
        q.get(timeout=60)
    pool.terminate()
    pool.join()
    print("terminated", flush=True)
"""


def test_pool_terminate_flushes_each_workers_buffer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    proc = subprocess.run([sys.executable, "-c", POOL, url], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MIGRATRACK_SPOOL_DIR": str(tmp_path / "spool")})
    assert proc.returncode == 0 and "terminated" in proc.stdout, proc.stderr
    assert done(url) == 300
