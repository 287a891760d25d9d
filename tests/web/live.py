"""A real uvicorn server on 127.0.0.1 in a thread, stoppable and restartable on the same port."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp

import migratrack

#: the source tree this test process imports migratrack from: the server process must run it too
SRC = str(Path(migratrack.__file__).resolve().parents[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(self.app, log_level="error", lifespan="on", timeout_graceful_shutdown=2,
                                access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        AppStatus.should_exit = True  # ends open event streams (no signal handlers in a thread)
        self._server.should_exit = True
        self._thread.join(15)
        AppStatus.should_exit = False
        self._server = self._thread = None


@contextmanager
def serve_process(*args: str) -> Iterator[tuple[str, list[str]]]:
    """`migratrack serve` in a subprocess; yields its URL and what it printed before serving."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "migratrack.cli", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": SRC})
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "migratrack serving" in line:
                break
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("migratrack serve did not start:\n" + "\n".join(lines))
            time.sleep(0.05)
        yield url, lines
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
