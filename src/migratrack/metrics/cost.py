"""Cost from configured prices: actual, per GB and projected at completion. Pure (no I/O, no clock).

Prices come from the plan's metadata (``pricing: {per_gb, per_worker_hour, fixed, workers}``),
else from the settings (``MIGRATRACK_PRICE_PER_GB``, ``..._PER_WORKER_HOUR``, ``..._FIXED``):

- actual = fixed + per_gb x GB transferred + per_worker_hour x worker-hours so far;
- worker-hours = active hours (paused time left out) x workers, where workers is the plan's
  ``pricing.workers``, else the number of live resource samplers, else 1;
- cost per GB = actual / GB transferred (GB = 10^9 bytes);
- projected at completion = fixed + per_gb x projected GB + per_worker_hour x projected
  worker-hours, with projected GB = GB so far / overall progress, and projected worker-hours from
  the active time so far plus the estimate's remaining seconds. A finished migration's
  projection is its actual cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from migratrack.core.models import MigrationState
from migratrack.core.progress import overall_progress
from migratrack.core.resources import live_shares
from migratrack.core.rules import active_seconds

GB = 1e9
#: where a plan keeps its prices
PRICING_KEY = "pricing"


@dataclass(frozen=True, slots=True)
class Prices:
    per_gb: float = 0.0
    per_worker_hour: float = 0.0
    fixed: float = 0.0
    #: workers billed per active hour; None: the live samplers, else 1
    workers: float | None = None

    @property
    def any(self) -> bool:
        return bool(self.per_gb or self.per_worker_hour or self.fixed)

    @classmethod
    def of(cls, metadata: Mapping[str, Any], default: Prices | None = None) -> Prices | None:
        """The plan's ``pricing``, its missing parts from ``default``; None when neither prices anything."""
        raw = metadata.get(PRICING_KEY)
        base = default or cls()
        if isinstance(raw, Mapping):
            def num(key: str, fallback: float | None) -> float | None:
                v = raw.get(key)
                return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 else fallback

            base = cls(per_gb=num("per_gb", base.per_gb) or 0.0,
                       per_worker_hour=num("per_worker_hour", base.per_worker_hour) or 0.0,
                       fixed=num("fixed", base.fixed) or 0.0, workers=num("workers", base.workers))
        return base if base.any else None


@dataclass(frozen=True, slots=True)
class Cost:
    actual: float
    per_gb: float | None
    projected: float | None
    worker_hours: float


def compute(prices: Prices, *, data_bytes: int, active_seconds: float, progress: float, finished: bool,
            remaining_seconds: float | None, live_workers: int = 0) -> Cost:
    """The cost of a migration that moved ``data_bytes`` in ``active_seconds``, ``progress`` percent
    done, with ``remaining_seconds`` left by the estimate (None: unknown)."""
    workers = prices.workers if prices.workers is not None else float(live_workers or 1)
    gb = data_bytes / GB
    hours = active_seconds / 3600 * workers
    actual = prices.fixed + prices.per_gb * gb + prices.per_worker_hour * hours
    projected: float | None
    if finished:
        projected = actual
    elif remaining_seconds is None or (prices.per_gb and progress <= 0):
        projected = None  # the data to come, or the time to come, is unknown
    else:
        projected_gb = gb / (progress / 100) if progress > 0 else 0.0
        projected_hours = (active_seconds + remaining_seconds) / 3600 * workers
        projected = prices.fixed + prices.per_gb * projected_gb + prices.per_worker_hour * projected_hours
    return Cost(actual=round(actual, 6), per_gb=round(actual / gb, 6) if gb > 0 else None,
                projected=None if projected is None else round(projected, 6), worker_hours=hours)


def cost_metrics(reported: Mapping[str, float], cost: Cost | None) -> dict[str, float]:
    """The dashboard's ``cost_metrics``: computed figures over what a script reported; the
    seed's ``estimated_cost`` is the projection where the script set none."""
    out = {k: float(v) for k, v in reported.items()}
    if cost is None:
        return out
    out["actual_cost"] = cost.actual
    if cost.per_gb is not None:
        out["cost_per_gb"] = cost.per_gb
    if cost.projected is not None:
        out["projected_cost"] = cost.projected
        out.setdefault("estimated_cost", cost.projected)
    out["worker_hours"] = round(cost.worker_hours, 6)
    return out


def migration_cost(state: MigrationState, now: datetime, remaining_seconds: float | None,
                   default: Prices | None = None) -> Cost | None:
    """:func:`compute` for a stored migration; None when no price is configured for it."""
    prices = Prices.of(state.metadata, default)
    if prices is None:
        return None
    end = state.finished_at or state.cancelled_at or now
    active = active_seconds(state, state.started_at, end) if state.started_at else 0.0
    finished = state.finished_at is not None or state.cancelled_at is not None
    return compute(prices, data_bytes=state.metrics.total_data_migrated, active_seconds=active,
                   progress=overall_progress(state), finished=finished,
                   remaining_seconds=remaining_seconds, live_workers=len(live_shares(state.metrics.gauges, now)))
