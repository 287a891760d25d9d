"""A small migration script: copies rows (simulated) and reports to migratrack."""

import time

from migratrack import MigrationProgressTracker

tracker = MigrationProgressTracker("orders-2026")
tracker.initialize_migration("plan.yaml")  # resumes if it already exists with the same plan

with tracker.phase("schema"):
    time.sleep(0.2)

rows = range(50_000)
for row in tracker.track(rows, phase="copy-orders"):
    tracker.record(succeeded=1, bytes=512)  # counters add up across workers

with tracker.phase("copy-customers"):
    for pct in (25, 50, 75, 100):
        tracker.update_phase_progress("copy-customers", pct, {"table": "customers"})
        time.sleep(0.1)

tracker.create_alert("warning", "switch-over needs a go/no-go", phase="switch-over")
print(f"{tracker.get_overview().overall_progress:.1f}% done, waiting for approval of switch-over")
tracker.close()
