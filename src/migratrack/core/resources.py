"""Resource usage reported by several workers: each worker's share, added up while it lives.

A worker's sampler reports its own share under ``worker_resources`` (``{"<worker>.cpu": 12.5,
"<worker>.ttl": 30, ...}``); the rule stamps each share with an expiry from the store's clock
(``expires_at``, epoch seconds) and drops the shares that expired. A read adds up the live shares
into the migration's ``resource_utilization``: a worker that died stops counting once its share
expires. Pure: ``now`` is an argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from migratrack.core.models import RESOURCE_FIELDS

#: the metrics key workers report their shares under
WORKERS_KEY = "worker_resources"
#: what a share holds: the resource fields and its time to live, seconds
WORKER_FIELDS = (*RESOURCE_FIELDS, "ttl")
_WORKER = re.compile(r"^[A-Za-z0-9_:@\-]{1,100}$")


def worker_key(name: str) -> str:
    """A worker's name as a share's key: dots (the path separator) and anything unusual become ``_``."""
    return re.sub(r"[^A-Za-z0-9_:@\-]", "_", name)[:100] or "worker"


def valid_worker(name: str) -> bool:
    return bool(_WORKER.match(name))


def live_shares(gauges: Mapping[str, Any], now: datetime) -> dict[str, dict[str, float]]:
    """The shares of the workers whose report has not expired at ``now``."""
    shares = gauges.get(WORKERS_KEY) or {}
    at = now.timestamp()
    return {w: dict(s) for w, s in shares.items()
            if isinstance(s, Mapping) and float(s.get("expires_at", 0)) > at}


def utilization(gauges: Mapping[str, Any], now: datetime) -> dict[str, float]:
    """``resource_utilization`` as shown: what a script set, with the live workers' shares added
    up over it (and ``workers``, how many there are) when any worker samples."""
    out = {k: float(v) for k, v in (gauges.get("resource_utilization") or {}).items()}
    live = live_shares(gauges, now)
    if live:
        for field in RESOURCE_FIELDS:
            values = [s[field] for s in live.values() if field in s]
            if values:
                out[field] = round(sum(values), 4)
        out["workers"] = float(len(live))
    return out


def stamp(gauges: dict[str, Any], sets: dict[str, float | int], now: datetime) -> dict[str, float | int]:
    """The rule's part: a share's ``ttl`` becomes its ``expires_at``, and expired shares go."""
    out: dict[str, float | int] = {}
    for key, value in sets.items():
        if key.startswith(WORKERS_KEY + ".") and key.endswith(".ttl"):
            out[key[: -len("ttl")] + "expires_at"] = now.timestamp() + float(value)
        else:
            out[key] = value
    shares = gauges.get(WORKERS_KEY)
    if isinstance(shares, dict):
        at = now.timestamp()
        for worker in [w for w, s in shares.items() if not isinstance(s, Mapping) or s.get("expires_at", 0) <= at]:
            del shares[worker]
    return out
