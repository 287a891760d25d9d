"""At exit, a script that reports to a server loses nothing it reported, even if the server
failed a moment before: trackers are closed first, then the backends' buffers are sent."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import sys, threading
import httpx
from migratrack import MigrationProgressTracker
from migratrack.sdk.remote import RemoteBackend

refusals = {"batch": 2, "metrics": 2}  # the server is away for the first requests of each kind
out = threading.Lock()  # each backend sends from its own thread

def server(request):
    kind = request.url.path.rsplit("/", 1)[1]
    if refusals.get(kind):
        refusals[kind] -= 1
        return httpx.Response(503)
    with out:
        sys.stdout.write(kind + " " + request.content.decode() + "\\n")
        sys.stdout.flush()
    return httpx.Response(200, json={"control": "running"})

def backend():  # retries after 0.3 s: what the outage refused is still buffered when the script ends
    return RemoteBackend("http://tracker.test", transport=httpx.MockTransport(server), deadline=30,
                         backoff=(0.3, 0.3))

# a tracker never closed: its first report hits the outage, the later ones wait to be coalesced
t = MigrationProgressTracker("exit", backend=backend(), coalesce=3600, actor="script")
for i in range(1, 11):
    t.update_phase_progress("load", done=i, total=10)

# a backend used without a tracker, never closed
backend().update_metrics("exit", {"migration_speed": 5}, actor="script")
"""


def test_a_remote_script_that_never_closes_anything_still_delivers_everything_at_exit() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    delivered = [line.split(" ", 1) for line in proc.stdout.splitlines()]
    batches = [json.loads(body) for kind, body in delivered if kind == "batch"]
    done = [u["done"] for b in batches for u in b["updates"] if u["phase"] == "load"]
    assert done and max(done) == 10, proc.stdout  # the last, coalesced report arrived
    metrics = [json.loads(body) for kind, body in delivered if kind == "metrics"]
    assert metrics == [{"values": {"migration_speed": 5}, "increment": {}}], proc.stdout
