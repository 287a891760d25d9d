"""What importing migratrack pulls in: a worker installs the parts it uses, nothing more."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import migratrack

SRC = Path(migratrack.__file__).resolve().parents[1]


def test_the_sdk_and_its_http_client_import_no_server_package() -> None:
    # A worker installs migratrack[client] (httpx alone): the SDK must not need FastAPI & co.
    # A fresh interpreter, since this one has imported the server for other tests.
    code = ("import migratrack, migratrack.sdk.tracker, migratrack.sdk.remote, sys; "
            "bad=[m for m in ('fastapi','starlette','uvicorn','sse_starlette') if m in sys.modules]; "
            "assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_reporting_to_a_server_without_httpx_names_the_client_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "migratrack.sdk.remote", raising=False)
    with pytest.raises(migratrack.ConfigurationError, match=r"pip install 'migratrack\[client\]'"):
        migratrack.MigrationProgressTracker("x", url="http://127.0.0.1:9")
