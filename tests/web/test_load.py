"""The load test (bench/load.py), short: 20 workers in 2 processes and 10 viewers, through two
`migratrack serve` processes on one Redis and on one PostgreSQL, for a few seconds each.
Nothing may be lost: counters and per-status counts exact, every sub-task in the status its
worker reported, the event log gap-free, and every viewer saw every event in order. No timing is
asserted (the full run and its figures: ``python bench/load.py``, docs/benchmarks.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load import Config, run, table


@pytest.mark.parametrize("store", ["redis", "postgresql"])
def test_many_workers_and_viewers_through_two_servers_lose_nothing(store: str) -> None:
    cfg = Config(store=store, workers=20, viewers=10, seconds=8, processes=2, phases=20, sub_tasks=100,
                 drain_seconds=30)
    res = run(cfg, log=lambda _msg: None)
    report = table(res)
    # work was done through both servers, and the viewers received it
    assert res.updates > 20, report
    assert res.events > 0 and res.viewer_events == res.events * cfg.viewers, report
    assert res.checks == {
        "counters exact": True,
        "done counts exact": True,
        "sub-task statuses as reported": True,
        "event log gap-free": True,
        "every viewer connected": True,
        "every viewer saw every event in order": True,
        "no call failed": True,
    }, report
