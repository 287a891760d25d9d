"""`migratrack run ID PHASE -- COMMAND…`: a command run as a phase.

The phase is started (as a re-run resumes it: a finished phase is not run again, a failed one is
retried), the command runs in its own process group, and its exit code completes or fails the
phase (the last lines of its stderr are the error) and is passed through. Progress comes from the
command's output (``--progress-regex`` with a named group ``pct``, or ``done`` and ``total``, or
``left`` and ``total``) or from lines it writes to the file descriptor named in
``MIGRATRACK_PROGRESS_FD`` (``42.5`` for a percentage, ``1200/50000`` for done/total).

With ``--sample-resources`` the command's process and its descendants are measured every
``--sample-interval`` seconds (CPU, memory, disk I/O; the host's network) and reported as this
run's share of the migration's resource utilisation, as the SDK's ``sample_resources`` reports a
worker's own process.

While it runs, the migration's control state is read every ``--poll`` seconds: pause stops the
command's process group (SIGSTOP), resume continues it (SIGCONT), cancel sends SIGTERM and, after
``--grace`` seconds, SIGKILL. Ctrl-C (SIGINT) and SIGTERM sent to ``migratrack run`` are
forwarded to the command. A store or server that fails meanwhile never stops the command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from migratrack.cli.common import MigrationArg, PhaseArg, StorageOpt, err_console, open_tracker, safe
from migratrack.cli.errors import ExitCode
from migratrack.core.states import Control
from migratrack.errors import MigratrackError

if TYPE_CHECKING:
    from migratrack.metrics.resources import ResourceSampler
    from migratrack.sdk.tracker import MigrationProgressTracker

#: this module's commands; cli.main adds them to `migratrack`
app = typer.Typer()
log = logging.getLogger("migratrack")

PROGRESS_FD_VAR = "MIGRATRACK_PROGRESS_FD"
_FD_LINE = re.compile(r"^\s*(?:(?P<done>\d+)\s*/\s*(?P<total>\d+)|(?P<pct>\d+(?:\.\d+)?)\s*%?)\s*$")


def progress_pattern(text: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise typer.BadParameter(f"not a regular expression: {exc}", param_hint="--progress-regex") from None
    groups = set(pattern.groupindex)
    if not ("pct" in groups or "done" in groups or {"left", "total"} <= groups):
        raise typer.BadParameter("name a group (?P<pct>…), or (?P<done>…) with an optional (?P<total>…), "
                                 "or (?P<left>…) and (?P<total>…)", param_hint="--progress-regex")
    return pattern


@dataclass
class Reading:
    pct: float | None = None
    done: int | None = None
    total: int | None = None


def read_match(m: re.Match[str], total: int | None = None) -> Reading | None:
    """What one match says: a percentage, or counts (``left`` counts down to 0 of ``total``)."""
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    try:
        if "pct" in g:
            return Reading(pct=min(100.0, max(0.0, float(g["pct"].replace(",", ".")))))
        t = int(g["total"].replace(",", "")) if "total" in g else total
        if "left" in g and t is not None:
            return Reading(done=max(0, t - int(g["left"].replace(",", ""))), total=t)
        if "done" in g:
            return Reading(done=int(g["done"].replace(",", "")), total=t)
    except ValueError:
        return None
    return None


@dataclass
class Reporter:
    """Sends readings to the tracker, at most every ``every`` seconds (the last one always)."""

    send: Callable[[Reading], None]
    every: float = 0.25
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last: float = 0.0
    _pending: Reading | None = None
    _warned: bool = False

    def offer(self, r: Reading) -> None:
        with self._lock:
            self._pending = r
            if time.monotonic() - self._last >= self.every:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        r, self._pending = self._pending, None
        if r is None:
            return
        self._last = time.monotonic()
        try:
            self.send(r)
        except (MigratrackError, OSError) as exc:  # the tracker failing must not stop the command
            if not self._warned:
                self._warned = True
                err_console.print(f"[yellow]migratrack run:[/] could not report progress: {escape(safe(exc))}",
                                  highlight=False, soft_wrap=True)


def pump(source: IO[bytes], sink: IO[bytes] | None, on_line: Callable[[str], None]) -> None:
    """Copy ``source`` to ``sink`` as it comes, and hand each line (split at \\n or \\r, as
    progress meters redraw with \\r) to ``on_line``."""
    buffer = b""
    with source:  # closed once the command closed its end
        while True:
            chunk = source.read1(65536) if hasattr(source, "read1") else source.read(65536)
            if not chunk:
                break
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for line in lines:
                if line:
                    on_line(line.decode("utf-8", "replace"))
    if buffer:
        on_line(buffer.decode("utf-8", "replace"))


class Child:
    """The command in its own process group, and the signals sent to it."""

    def __init__(self, command: list[str], progress_fd: int | None) -> None:
        env = dict(os.environ)
        if progress_fd is not None:
            env[PROGRESS_FD_VAR] = str(progress_fd)
        try:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                         pass_fds=() if progress_fd is None else (progress_fd,),
                                         start_new_session=True)
        except OSError as exc:
            raise typer.BadParameter(f"cannot run {command[0]!r}: {exc.strerror}", param_hint="COMMAND") from None
        self.stopped = False

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if not self.stopped:
            self.signal(signal.SIGSTOP)
            self.stopped = True

    def cont(self) -> None:
        if self.stopped:
            self.signal(signal.SIGCONT)
            self.stopped = False

    def terminate(self, grace: float) -> None:
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
        self.stopped = False
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)


def exit_status(returncode: int) -> int:
    """The shell's convention: a command killed by signal N exits 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with {returncode}"


@app.command()
def run(
    ctx: typer.Context,
    migration: MigrationArg,
    phase: PhaseArg,
    command: Annotated[list[str], typer.Argument(metavar="-- COMMAND", help="the command and its arguments")],
    storage: StorageOpt = None,
    progress_regex: Annotated[str | None, typer.Option(
        "--progress-regex", help="a regular expression over the command's output lines with a named group "
                                 "pct, or done (and total), or left and total")] = None,
    total: Annotated[int | None, typer.Option(min=0, help="the total when the regex gives done alone")] = None,
    grace: Annotated[float, typer.Option(min=0, help="seconds between SIGTERM and SIGKILL on cancel")] = 10.0,
    poll: Annotated[float, typer.Option(min=0.05, help="seconds between looks at pause and cancel")] = 1.0,
    tail: Annotated[int, typer.Option(min=1, help="stderr lines kept as the phase's error")] = 20,
    sample_resources: Annotated[bool, typer.Option(
        "--sample-resources", help="report the command's CPU, memory and disk I/O (its process and every "
                                   "descendant) and the host's network as the migration's resource utilisation; "
                                   "needs psutil")] = False,
    sample_interval: Annotated[float, typer.Option(min=0.1, help="seconds between resource samples")] = 10.0,
) -> None:
    """Run a command as a phase: start it, complete or fail it by the exit code, report progress
    from the output, and stop, continue or end the command on pause, resume and cancel.

    Example: migratrack run orders-2026 copy --progress-regex '(?P<pct>\\d+)%' -- rsync -a --info=progress2 a/ b/"""
    pattern = progress_pattern(progress_regex) if progress_regex else None
    if sample_resources:
        try:
            import psutil  # noqa: F401
        except ImportError:
            raise typer.BadParameter("needs psutil: pip install 'migratrack[resources]'",
                                     param_hint="--sample-resources") from None
    tracker = open_tracker(ctx, migration, storage, block_on_pause=False)
    try:
        if tracker.resume_phase(phase):
            err_console.print(escape(safe(f"{migration}: phase {phase} already finished; not run again")),
                              highlight=False, soft_wrap=True)
            return

        def send(r: Reading) -> None:
            tracker.update_phase_progress(phase, r.pct, done=r.done, total=r.total)

        reporter = Reporter(send)
        errors: deque[str] = deque(maxlen=tail)

        def scan(line: str) -> None:
            if pattern is not None and (m := pattern.search(line)) and (r := read_match(m, total)):
                reporter.offer(r)

        def scan_err(line: str) -> None:
            errors.append(line)
            scan(line)

        def scan_fd(line: str) -> None:
            m = _FD_LINE.match(line)
            if m and (r := read_match(m, total)):
                reporter.offer(r)

        read_fd, write_fd = os.pipe()
        with Forwarder() as forwarder:
            try:
                child = Child(command, write_fd)
            except typer.BadParameter as exc:
                os.close(read_fd)
                tracker.fail_phase(phase, str(exc.message))  # started above: not left running
                raise
            finally:
                os.close(write_fd)  # the child holds its own copy; EOF comes when it exits
            forwarder.attach(child)
            sampler = start_sampler(tracker, child.proc.pid, sample_interval) if sample_resources else None
            assert child.proc.stdout is not None and child.proc.stderr is not None
            threads = [threading.Thread(target=pump, args=args, daemon=True) for args in (
                (child.proc.stdout, sys.stdout.buffer, scan),
                (child.proc.stderr, sys.stderr.buffer, scan_err),
                (os.fdopen(read_fd, "rb"), None, scan_fd),
            )]
            for th in threads:
                th.start()
            try:
                cancelled = _supervise(child, lambda: tracker.backend.control(migration), poll, grace,
                                       forwarder.received)
            finally:
                if sampler is not None:
                    sampler.stop()
        for th in threads:
            th.join(5)
        reporter.flush()
        code = child.proc.returncode
        if cancelled:
            err_console.print(escape(safe(f"{migration}: cancelled; the command was stopped ({describe(code)})")),
                              highlight=False, soft_wrap=True)
            raise typer.Exit(int(ExitCode.CANCELLED))
        if code == 0:
            tracker.complete_phase(phase)
            return
        detail = "\n".join(errors).strip()
        tracker.fail_phase(phase, f"`{shlex.join(command)[:200]}` {describe(code)}"
                           + (f"; its last stderr lines:\n{detail}" if detail else ""))
        raise typer.Exit(exit_status(code))
    finally:
        tracker.close()


def start_sampler(tracker: MigrationProgressTracker, pid: int, interval: float) -> ResourceSampler | None:
    """Sample the command's process tree every ``interval`` seconds into the tracker, as this
    run's worker share; None (and a warning) if the command cannot be measured."""
    import psutil

    from migratrack.metrics.resources import ResourceSampler, TreeProbe

    try:
        probe = TreeProbe(pid)
    except psutil.Error as exc:
        err_console.print(f"[yellow]migratrack run:[/] cannot measure the command's resources: {escape(safe(exc))}",
                          highlight=False, soft_wrap=True)
        return None
    return ResourceSampler(lambda: tracker.update_metrics, tracker.actor, interval, probe=probe).start()


class Forwarder:
    """SIGINT and SIGTERM sent to `migratrack run`, passed on to the command. Installed before
    the command starts, so that a signal arriving while it starts is delivered once it runs."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.child: Child | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Forwarder:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.forward) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def forward(self, sig: int, _frame: FrameType | None = None) -> None:
        self.received.append(sig)
        if self.child is not None:
            self.child.cont()
            self.child.signal(sig)

    def attach(self, child: Child) -> None:
        self.child = child
        for sig in self.received:  # arrived before the command started
            child.signal(sig)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _supervise(child: Child, control: Callable[[], Control], poll: float, grace: float,
               forwarded: list[int]) -> bool:
    """Wait for the child, following pause/resume/cancel (not once a signal was forwarded to it).
    True if the migration was cancelled (and the child ended for it)."""
    next_look = 0.0
    warned = False
    while child.proc.poll() is None:
        if time.monotonic() >= next_look and not forwarded:
            next_look = time.monotonic() + poll
            try:
                state = control()
            except (MigratrackError, OSError) as exc:  # keep the command running through an outage
                if not warned:
                    warned = True
                    err_console.print(f"[yellow]migratrack run:[/] cannot read pause/cancel: "
                                      f"{escape(safe(exc))}", highlight=False, soft_wrap=True)
                state = None
            if state is Control.CANCELLED:
                child.terminate(grace)
                child.proc.wait()
                return True
            if state is Control.PAUSED:
                child.stop()
            elif state is Control.RUNNING:
                child.cont()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(min(0.1, poll))
    return False
