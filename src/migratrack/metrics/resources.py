"""The resource sampler: a worker's CPU, memory, network and disk I/O, reported on an interval.

``MigrationProgressTracker(..., sample_resources=True)`` starts one. Every ``interval`` seconds it
measures, with psutil:

- ``cpu``: this process's CPU time over the interval, as a percent of the host's CPU capacity
  (all cores: 100 is a host fully busy);
- ``memory``: this process's resident memory, as a percent of the host's memory;
- ``network``: the host's network traffic (sent + received), bytes/s;
- ``storage``: this process's disk reads + writes, bytes/s (the host's where a platform does not
  count per process);

and reports them as this worker's share (``worker_resources``) with a time to live of three
intervals: the store adds up the live workers' shares into the migration's
``resource_utilization`` (core/resources.py), and a dead worker's share expires. A failure to
measure or report is logged; it never reaches the migration.

``migratrack run --sample-resources`` measures the command it runs instead of itself: a
:class:`TreeProbe` adds up the command's process and all its descendants (CPU time, resident
memory, disk reads + writes), read afresh at every sample, so processes the command starts later
count too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from migratrack.core.resources import WORKERS_KEY, worker_key

log = logging.getLogger("migratrack.metrics.resources")

DEFAULT_INTERVAL = 10.0
#: a share lives this many intervals: one late report does not make a worker vanish
TTL_INTERVALS = 3.0


def host_network_bytes() -> int:
    """The host's network traffic so far, sent + received (no platform counts it per process)."""
    c = psutil.net_io_counters()
    return int(c.bytes_sent + c.bytes_recv) if c is not None else 0


class Probe:
    """Reads the counters and turns two readings into rates."""

    def __init__(self, pid: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = psutil.Process(pid)
        self.clock = clock
        self.cores = psutil.cpu_count() or 1
        self.process.cpu_percent(None)  # the first call only primes the counter
        self._last = (clock(), self._net(), self._disk())

    def _net(self) -> int:
        return host_network_bytes()

    def _disk(self) -> int:
        try:
            io = self.process.io_counters()  # absent on macOS: AttributeError
            return int(io.read_bytes + io.write_bytes)
        except (AttributeError, psutil.Error, NotImplementedError):
            d = psutil.disk_io_counters()
            return int(d.read_bytes + d.write_bytes) if d is not None else 0

    def sample(self) -> dict[str, float]:
        now, net, disk = self.clock(), self._net(), self._disk()
        then, net0, disk0 = self._last
        self._last = (now, net, disk)
        span = max(now - then, 1e-6)
        return {
            "cpu": round(min(100.0, self.process.cpu_percent(None) / self.cores), 3),
            "memory": round(min(100.0, self.process.memory_percent()), 3),
            "network": round(max(0, net - net0) / span, 1),
            "storage": round(max(0, disk - disk0) / span, 1),
        }


class TreeProbe:
    """A process and its descendants, added up: what :class:`Probe` measures for one process.

    CPU is the tree's CPU time over the interval, counting the descendants that ended and were
    waited for by a process of the tree (their time is in their parent's ``children_*`` times);
    memory is the resident memory of the live processes; disk the live processes' reads + writes
    (a process that ended takes its counts with it: that interval reads 0 rather than negative)."""

    def __init__(self, pid: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = psutil.Process(pid)
        self.clock = clock
        self.cores = psutil.cpu_count() or 1
        self.memory_total = psutil.virtual_memory().total
        cpu, _, disk = self._read()
        self._last = (clock(), cpu, Probe._net(self), disk)  # type: ignore[arg-type]

    def processes(self) -> list[psutil.Process]:
        """The root and its live descendants (none once the root ended)."""
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def _read(self) -> tuple[float, int, int]:
        """CPU seconds, resident bytes and disk bytes of the tree now."""
        cpu, rss, disk = 0.0, 0, 0
        for p in self.processes():
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                    rss += p.memory_info().rss
                    try:
                        io = p.io_counters()
                        disk += io.read_bytes + io.write_bytes
                    except (AttributeError, NotImplementedError, psutil.AccessDenied):
                        pass
            except psutil.Error:  # ended (or out of reach) between the listing and the read
                continue
        return cpu, rss, disk

    def sample(self) -> dict[str, float]:
        now, (cpu, rss, disk), net = self.clock(), self._read(), host_network_bytes()
        then, cpu0, net0, disk0 = self._last
        self._last = (now, cpu, net, disk)
        span = max(now - then, 1e-6)
        return {
            "cpu": round(min(100.0, max(0.0, cpu - cpu0) / span * 100 / self.cores), 3),
            "memory": round(min(100.0, rss * 100 / self.memory_total), 3),
            "network": round(max(0, net - net0) / span, 1),
            "storage": round(max(0, disk - disk0) / span, 1),
        }


def share(worker: str, sample: dict[str, float], interval: float) -> dict[str, Any]:
    """The metrics update that reports ``sample`` as ``worker``'s share."""
    w = worker_key(worker)
    values: dict[str, float] = {f"{w}.{k}": v for k, v in sample.items()}
    values[f"{w}.ttl"] = TTL_INTERVALS * interval
    return {WORKERS_KEY: values}


class ResourceSampler:
    """A daemon thread that samples every ``interval`` seconds and hands the share to ``report``
    (the tracker's ``update_metrics``, held weakly by the caller: it returns None once the tracker
    is gone, and the thread ends)."""

    def __init__(self, report: Callable[[], Callable[..., None] | None], worker: str,
                 interval: float = DEFAULT_INTERVAL, probe: Probe | TreeProbe | None = None) -> None:
        if not interval > 0:
            raise ValueError("the sampling interval must be a positive number of seconds")
        self.report = report
        self.worker = worker
        self.interval = float(interval)
        self.probe = probe or Probe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="migratrack-resources", daemon=True)

    def start(self) -> ResourceSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def sample_once(self) -> bool:
        """Measure and report now; False once there is nobody left to report to."""
        fn = self.report()
        if fn is None:
            return False
        try:
            fn(share(self.worker, self.probe.sample(), self.interval))
        except Exception:  # the migration goes on without its resource figures
            log.warning("could not sample or report resource usage", exc_info=True)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.sample_once():
                return
