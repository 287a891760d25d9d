"""A small migration script: copies rows (simulated) and reports to migratrack.

Run it again to resume: phases that finished are not started again (the audit trail says so).
"""

import time
from pathlib import Path

from migratrack import MigrationProgressTracker

tracker = MigrationProgressTracker("orders-2026")
# the plan beside this file, wherever the script is run from; resumes if it exists with the same plan
tracker.initialize_migration(Path(__file__).with_name("plan.yaml"))

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
