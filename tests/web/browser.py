"""Debian's Chromium driven by Playwright: only 127.0.0.1 is reachable, nothing is written to $HOME."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
#: screenshots and other test artefacts (gitignored)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def launch(p: Playwright, home: Path) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it with 'apt-get install -y chromium' "
                           "(make test does it through scripts/services.sh)")
    return p.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
        env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": f"{home}/.config",
             "XDG_CACHE_HOME": f"{home}/.cache"},
    )


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


def cleanup(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
