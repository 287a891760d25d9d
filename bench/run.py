"""Run every benchmark in bench/ (each compares against its baseline in the same run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


#: the load test (issue 10), full size, once on each shared store
LOAD_RUNS = [["--store", "redis"], ["--store", "postgresql"]]


def main() -> int:
    runs = [(p.stem, p, []) for p in sorted(HERE.glob("bench_*.py"))]
    runs += [("load", HERE / "load.py", args) for args in LOAD_RUNS]
    only = set(sys.argv[1:])
    failed = 0
    for stem, script, args in runs:
        if only and stem not in only:
            continue
        print(f"\n=== {' '.join([script.name, *args])} ===", flush=True)
        failed += subprocess.call([sys.executable, str(script), *args]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
