"""`migratrack run`: real child processes as phases — success, failure, progress, pause/resume
(SIGSTOP/SIGCONT), cancel (SIGTERM, then SIGKILL) and Ctrl-C forwarded."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from migratrack.cli.run import progress_pattern, read_match
from migratrack.core.commands import Cancel, Pause, Resume
from migratrack.service import MigrationService

ROOT = Path(__file__).resolve().parents[2]
PLAN = "phases:\n  - {id: copy}\n  - {id: verify}\n"


@pytest.fixture
def url(tmp_path: Path) -> str:
    (tmp_path / "plan.yaml").write_text(PLAN)
    u = f"sqlite:///{tmp_path}/run.db"
    MigrationService(u).initialize("m", [{"id": "copy"}, {"id": "verify"}], actor="t")
    return u


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("MIGRATRACK_URL", "MIGRATRACK_STORAGE_URL", "REDIS_URL")}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), e.get("PYTHONPATH")) if p)
    return e


def start(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "migratrack.cli", "run", "m", *args[:1], "--storage", url,
                             "--poll", "0.1", *args[1:]], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def wait_for(cond: Callable[[], bool], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def state_of(pid: int) -> str:
    # the process state letter in /proc/PID/stat: T when stopped
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_success_completes_the_phase_with_progress_from_the_output(url: str) -> None:
    code, out, _ = finish(start(url, "copy", "--progress-regex", r"(?P<pct>\d+)%", "--",
                                "sh", "-c", "for i in 20 60 90; do echo $i%; sleep 0.3; done"))
    assert code == 0 and out.split() == ["20%", "60%", "90%"]  # the output passes through
    svc = MigrationService(url)
    assert svc.state("m").phases["copy"].status.value == "completed"
    assert [e.payload["progress"] for e in svc.events("m") if e.type == "phase.progress"][:1] == [20.0]


def test_failure_records_the_last_stderr_lines_and_passes_the_exit_code_through(url: str) -> None:
    code, _, err = finish(start(url, "copy", "--tail", "2", "--", "sh", "-c",
                                "echo one >&2; echo two >&2; echo three >&2; exit 7"))
    assert code == 7 and "three" in err
    phase = MigrationService(url).state("m").phases["copy"]
    assert phase.status.value == "failed"
    assert phase.errors[-1] == "`sh -c 'echo one >&2; echo two >&2; echo three >&2; exit 7'` exited with 7; " \
                               "its last stderr lines:\ntwo\nthree"


def test_progress_from_rsync_style_counts_and_from_the_progress_fd(url: str) -> None:
    rsync = r"printf '  1,024  10%%  (xfr#1, to-chk=30/40)\r  2,048  50%%  (xfr#2, to-chk=10/40)\n'; sleep 0.4"
    code, _, _ = finish(start(url, "copy", "--progress-regex", r"to-chk=(?P<left>\d+)/(?P<total>\d+)", "--",
                              "sh", "-c", rsync))
    assert code == 0
    events = [e.payload for e in MigrationService(url).events("m") if e.type == "phase.progress"]
    assert (events[-1]["done"], events[-1]["total"]) == (30, 40)
    code, _, _ = finish(start(url, "verify", "--", sys.executable, "-c",
                              "import os, time; f = os.fdopen(int(os.environ['MIGRATRACK_PROGRESS_FD']), 'w'); "
                              "f.write('120/480\\n'); f.flush(); time.sleep(0.4)"))
    assert code == 0
    events = [e.payload for e in MigrationService(url).events("m") if e.type == "phase.progress"]
    assert (events[-1]["phase"], events[-1]["done"], events[-1]["total"]) == ("verify", 120, 480)


def test_patterns_for_pv_and_psql() -> None:
    pv = progress_pattern(r"(?P<pct>\d+)%")
    m = pv.search("1.50GiB 0:00:12 [ 120MiB/s] [=====>     ] 42%")
    assert m is not None and read_match(m) is not None and read_match(m).pct == 42  # type: ignore[union-attr]
    psql = progress_pattern(r"^COPY (?P<done>\d+)")
    m = psql.search("COPY 1200")
    assert m is not None and read_match(m, 5000) == read_match(m, 5000) and read_match(m, 5000).done == 1200  # type: ignore[union-attr]
    with pytest.raises(Exception, match="name a group"):
        progress_pattern(r"\d+%")


def test_pause_stops_the_command_and_resume_continues_it(url: str, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    proc = start(url, "copy", "--", "sh", "-c",
                 f"echo $$ > {tmp_path}/pid; i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i >> {ticks}; "
                 "sleep 0.1; done")
    wait_for(lambda: ticks.exists() and len(ticks.read_text().split()) >= 2)
    pid = int((tmp_path / "pid").read_text())
    svc = MigrationService(url)
    svc.execute("m", Pause("window"), actor="t")
    wait_for(lambda: state_of(pid) == "T")
    count = len(ticks.read_text().split())
    time.sleep(0.5)
    assert len(ticks.read_text().split()) <= count + 1 and state_of(pid) == "T"  # stopped
    svc.execute("m", Resume(), actor="t")
    wait_for(lambda: state_of(pid) != "T")
    code, _, _ = finish(proc)
    assert code == 0 and len(ticks.read_text().split()) == 40
    assert svc.state("m").phases["copy"].status.value == "completed"


def test_cancel_sends_sigterm_then_sigkill_after_the_grace_period(url: str, tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    proc = start(url, "copy", "--grace", "0.5", "--", "sh", "-c",
                 f"trap 'echo term > {marker}' TERM; echo $$ > {tmp_path}/pid; "
                 "while true; do sleep 0.05; done")  # ignores SIGTERM: only SIGKILL ends it
    wait_for(lambda: (tmp_path / "pid").exists())
    MigrationService(url).execute("m", Cancel("stop"), actor="t")
    code, _, err = finish(proc)
    assert code == 3
    assert marker.read_text().strip() == "term"  # it was asked first
    assert "killed by SIGKILL" in err
    assert MigrationService(url).dashboard("m").phases[0].condition.value == "cancelled"


def test_ctrl_c_is_forwarded_to_the_command(url: str, tmp_path: Path) -> None:
    marker = tmp_path / "got-int"
    proc = start(url, "copy", "--", "sh", "-c",
                 f"trap 'echo int > {marker}; exit 130' INT; echo $$ > {tmp_path}/pid; "
                 "while true; do sleep 0.05; done")
    wait_for(lambda: (tmp_path / "pid").exists())
    proc.send_signal(signal.SIGINT)
    code, _, _ = finish(proc)
    assert code == 130 and marker.read_text().strip() == "int"
    assert re.search(r"exited with 130", MigrationService(url).state("m").phases["copy"].errors[-1])


#: the command: a grandchild holds 400 MB of resident memory while the child burns CPU, both for ~4 s
TREE = """
import subprocess, sys, time
holder = subprocess.Popen([sys.executable, "-c", "import time; b = b'x' * (400 * 2**20); time.sleep(4)"])
end = time.monotonic() + 4
n = 0
while time.monotonic() < end:
    n += sum(range(1000))
holder.wait()
"""


def test_sample_resources_measures_the_command_and_its_descendants(url: str) -> None:
    import psutil

    proc = start(url, "copy", "--sample-resources", "--sample-interval", "0.25", "--", sys.executable, "-c", TREE)
    svc = MigrationService(url)
    seen: dict[str, float] = {}

    def measured() -> bool:
        r = svc.dashboard("m").metrics.resource_utilization
        for k, v in r.items():
            seen[k] = max(seen.get(k, 0.0), v)
        return seen.get("memory", 0) * psutil.virtual_memory().total / 100 > 350 * 2**20 and seen.get("cpu", 0) > 5

    try:
        wait_for(measured, timeout=30)
        run_rss = psutil.Process(proc.pid).memory_info().rss  # `migratrack run` itself, for comparison
    finally:
        code, _, err = finish(proc)
    assert code == 0, err
    # the 400 MB are the grandchild's: far above what `migratrack run` holds itself
    assert seen["memory"] * psutil.virtual_memory().total / 100 > 4 * run_rss
    assert seen["workers"] == 1 and {"network", "storage"} <= set(seen)
    assert svc.state("m").phases["copy"].status.value == "completed"
    shares = svc.state("m").metrics.gauges["worker_resources"]
    assert len(shares) == 1 and next(iter(shares.values()))["cpu"] >= 0


def test_without_sample_resources_nothing_is_measured(url: str) -> None:
    code, _, err = finish(start(url, "copy", "--", sys.executable, "-c", "pass"))
    assert code == 0, err
    assert MigrationService(url).dashboard("m").metrics.resource_utilization == {}


def test_a_bad_sample_interval_is_a_usage_error(url: str) -> None:
    code, _, err = finish(start(url, "copy", "--sample-resources", "--sample-interval", "0", "--", "true"))
    assert code == 2 and "--sample-interval" in err
    assert MigrationService(url).state("m").phases["copy"].status.value == "pending"  # nothing started
