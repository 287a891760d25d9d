"""A realistic simulated migration, driven through the public SDK only."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live

from migratrack import MigrationProgressTracker, Phase
from migratrack.cli.demo_alerts import show_alert_delivery
from migratrack.cli.display import render_dashboard
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage

DEMO_ID = "aws-conversion-2024"

TABLES = {"users": 120_000, "orders": 480_000, "payments": 260_000, "products": 40_000, "sessions": 900_000}
FILES = 2_400


def demo_plan() -> list[Phase]:
    return [
        Phase("infrastructure-setup", "Infrastructure setup", "VPC, security groups, RDS and S3 in the new account",
              estimated_duration=0.15, sub_tasks=["vpc-creation", "security-groups", "rds-instance", "s3-buckets"]),
        Phase("database-migration", "Database migration", "Copy every table to RDS",
              dependencies=["infrastructure-setup"], estimated_duration=0.4,
              sub_tasks=[{"id": t, "name": t, "estimated_duration": rows / 1_000_000} for t, rows in TABLES.items()]),
        Phase("file-migration", "File migration", "Copy the media bucket to S3",
              dependencies=["infrastructure-setup"], estimated_duration=0.35),
        Phase("cutover", "Cutover", "Switch DNS and application config to the new stack",
              dependencies=["database-migration", "file-migration"], estimated_duration=0.08,
              requires_approval=True),
        Phase("validation", "Validation", "Row counts, checksums and smoke tests",
              dependencies=["cutover"], estimated_duration=0.12),
    ]


class _Sim:
    def __init__(self, storage: Storage, speed: float, seed: int) -> None:
        self.storage = storage
        self.speed = speed
        self.rng = random.Random(seed)
        self.errors: list[BaseException] = []

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * 3.0 / self.speed)  # about a minute at speed 1

    def tracker(self, worker: str) -> MigrationProgressTracker:
        return MigrationProgressTracker(DEMO_ID, storage=self.storage, actor=f"demo:{worker}")

    def infrastructure(self) -> None:
        t = self.tracker("infra")
        with t.phase("infrastructure-setup"):
            for i, sub in enumerate(["vpc-creation", "security-groups", "rds-instance", "s3-buckets"]):
                with t.sub_task("infrastructure-setup", sub):
                    for pct in (25, 50, 75):
                        self.sleep(0.4)
                        t.update_sub_task_progress("infrastructure-setup", sub, pct)
                t.update_phase_progress("infrastructure-setup", metadata={"resourcesCreated": (i + 1) * 3})
                t.update_metrics(resource_utilization={"cpu": 20 + 5 * i, "memory": 30.0},
                                 cost_metrics={"estimated_cost": 1200.0, "actual_cost": 35.0 * (i + 1)})
        t.create_alert("info", "infrastructure is ready", "infrastructure-setup")
        t.close()

    def database(self) -> None:
        t = self.tracker("db")
        failed_once = False
        with t.phase("database-migration"):
            for table, rows in TABLES.items():
                t.start_sub_task("database-migration", table)
                copied = 0
                batch = rows // 20
                while copied < rows:
                    self.sleep(0.12 * rows / 500_000)
                    copied = min(rows, copied + batch)
                    t.update_sub_task_progress("database-migration", table, copied * 100 / rows)
                    failures = self.rng.randint(0, 3)
                    t.record(succeeded=batch - failures, failed=failures, bytes=batch * 512)
                    if table == "payments" and copied >= rows // 2 and not failed_once:
                        failed_once = True
                        t.fail_sub_task("database-migration", table, "connection reset by peer after 30s")
                        t.create_alert("warning", f"retrying table {table} after a connection reset",
                                       "database-migration")
                        self.sleep(0.5)
                        t.start_sub_task("database-migration", table)
                t.complete_sub_task("database-migration", table)
                t.update_metrics(resource_utilization={"cpu": self.rng.uniform(45, 80),
                                                       "memory": self.rng.uniform(50, 70)})
        t.close()

    def files(self) -> None:
        t = self.tracker("files")
        t.start_phase("file-migration")
        t.update_phase_progress("file-migration", done=0, total=FILES)
        done = 0
        throttled = False
        while done < FILES:
            self.sleep(0.16)
            done = min(FILES, done + 80)
            t.update_phase_progress("file-migration", done=done)
            t.record(succeeded=80, bytes=80 * 2_500_000)
            if done >= FILES * 0.4 and not throttled:
                throttled = True
                t.fail_phase("file-migration", "S3 returned SlowDown (503) for 5 minutes")
                self.sleep(1.0)
                t.create_alert("warning", "S3 throttling: retrying file migration with fewer workers",
                               "file-migration")
                t.retry_phase("file-migration")
        t.update_metrics(migration_speed=25 * 1024 * 1024)
        t.complete_phase("file-migration")
        t.close()

    def cutover_and_validation(self) -> None:
        t = self.tracker("cutover")
        t.create_alert("warning", "cutover is waiting for approval", "cutover")
        self.sleep(1.0)
        t.approve_phase("cutover", by="demo-operator")
        with t.phase("cutover"):
            for pct in (20, 60, 100):
                self.sleep(0.4)
                t.update_phase_progress("cutover", pct, {"currentTask": "switching DNS"})
        for _ in t.track(range(200), phase="validation"):
            self.sleep(0.01)
        t.update_metrics(cost_metrics={"actual_cost": 412.5, "cost_per_gb": 0.021})
        t.close()

    def run_thread(self, fn: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                fn()
            except BaseException as exc:
                self.errors.append(exc)

        th = threading.Thread(target=guarded, daemon=True)
        th.start()
        return th


def run_demo(storage: str, *, speed: float = 1.0, seed: int = 7, console: Console | None = None,
             live: bool = True, on_ready: Callable[[Storage], None] | None = None) -> MigrationService:
    """``on_ready(store)`` runs once the migration exists, before its workers start (the
    dashboard is served from there)."""
    console = console or Console()
    store = open_storage(storage)  # one store for every worker (memory:// lives in one object)
    sim = _Sim(store, speed, seed)
    setup = sim.tracker("setup")
    setup.initialize_migration(demo_plan(), name="AWS conversion 2024", replace=True)
    setup.update_metrics(cost_metrics={"estimated_cost": 1200.0})
    setup.close()
    if on_ready is not None:
        on_ready(store)
    viewer = MigrationService(store)

    def script() -> None:
        sim.infrastructure()
        workers = [sim.run_thread(sim.database), sim.run_thread(sim.files)]
        for w in workers:
            w.join()
        if sim.errors:
            raise sim.errors[0]
        sim.cutover_and_validation()

    main = sim.run_thread(script)
    if live and console.is_terminal:
        with Live(console=console, refresh_per_second=8, transient=False) as view:
            while main.is_alive():
                view.update(render_dashboard(viewer.dashboard(DEMO_ID), datetime.now(UTC)))
                main.join(0.125)
            view.update(render_dashboard(viewer.dashboard(DEMO_ID), datetime.now(UTC)))
    else:
        last = -1.0
        while main.is_alive():
            main.join(1.0)
            o = viewer.overview(DEMO_ID)
            if o.overall_progress != last:
                last = o.overall_progress
                current = ", ".join(f"{p.id} {p.progress:.0f}%" for p in o.current_phases) or "-"
                console.print(f"{o.overall_progress:5.1f}%  {o.status.value:<9} {current}")
        console.print(render_dashboard(viewer.dashboard(DEMO_ID), datetime.now(UTC)))
    if sim.errors:
        raise sim.errors[0]
    show_alert_delivery(store, console)
    return viewer


def run_quick(storage: str, console: Console | None = None) -> dict[str, Any]:
    """The original design's test script: initialise, progress, alerts, metrics, and the dashboard
    data (printed while it runs); then the migration is finished."""
    console = console or Console()
    t = MigrationProgressTracker("test-migration", storage=storage, actor="demo:quick", coalesce=0)
    t.initialize_migration([
        {"id": "infrastructure-setup", "name": "Infrastructure Setup", "description": "Set up AWS infrastructure",
         "dependencies": [], "estimatedDuration": 30, "subTasks": ["vpc-creation"]},
        {"id": "database-migration", "name": "Database Migration", "description": "Migrate the database",
         "dependencies": ["infrastructure-setup"], "estimatedDuration": 120},
    ], replace=True)
    console.print("[green]✓[/] migration initialised")
    t.start_phase("infrastructure-setup")
    t.update_phase_progress("infrastructure-setup", 50, {"currentTask": "Creating VPC", "resourcesCreated": 10})
    t.start_sub_task("infrastructure-setup", "vpc-creation")
    t.update_sub_task_progress("infrastructure-setup", "vpc-creation", 75)
    console.print("[green]✓[/] phase and sub-task progress updated")
    t.create_alert("info", "Migration phase started")
    t.create_alert("warning", "High resource usage detected", "infrastructure-setup")
    t.create_alert("error", "Phase failed due to timeout", "database-migration")
    console.print("[green]✓[/] alerts created")
    t.update_metrics({
        "totalDataMigrated": 1024 * 1024 * 500, "migrationSpeed": 1024 * 1024 * 25, "errorRate": 1.2,
        "successfulOperations": 150, "failedOperations": 3,
    })
    console.print("[green]✓[/] metrics updated")
    dashboard = t.get_dashboard()
    # finish what the script started, so that the store is not left with a migration running forever
    t.complete_sub_task("infrastructure-setup", "vpc-creation")
    t.complete_phase("infrastructure-setup")
    t.skip_phase("database-migration", "demo: nothing to migrate")
    t.close()
    data: dict[str, Any] = json.loads(dashboard.model_dump_json())
    console.print_json(data=data)
    console.print("[green]✓[/] demo finished: test-migration is completed")
    return data
