"""The demo's dashboard: the server in a thread beside the terminal view, on the demo's store."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time

from rich.console import Console

from migratrack.storage import Storage


class DashboardServer:
    """uvicorn on 127.0.0.1 in a daemon thread, serving ``store`` (the demo's own object, so a
    ``memory://`` demo is seen too). Stop it with :meth:`stop`."""

    def __init__(self, store: Storage, port: int = 8000) -> None:
        import uvicorn

        from migratrack.web import create_app

        self.app = create_app(store)
        self.sock = _bind(port)
        self.port = int(self.sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="migratrack-demo-dashboard")

    def start(self, timeout: float = 10.0) -> DashboardServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo's dashboard server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        from sse_starlette.sse import AppStatus

        AppStatus.should_exit = True  # a server in a thread has no signal handlers: end the streams
        self.server.should_exit = True
        self.thread.join(10)
        AppStatus.should_exit = False
        with contextlib.suppress(OSError):
            self.sock.close()


def _bind(port: int) -> socket.socket:
    """127.0.0.1:``port``, or any free port when that one is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        sock.bind(("127.0.0.1", 0))
    return sock


def start_dashboard(store: Storage, console: Console, port: int = 8000) -> DashboardServer | None:
    """Serve the dashboard and print its login link; None (and a note) when the server extra is missing."""
    try:
        server = DashboardServer(store, port).start()
    except ImportError as exc:
        console.print(f"[yellow]note:[/] no dashboard: the server extra is missing ({exc.name}); "
                      "pip install 'migratrack[server]'", highlight=False)
        return None
    from migratrack.cli.dashboard_link import login_link

    link = login_link(server.app, server.base)
    console.print(f"[bold]dashboard:[/] {link}", highlight=False, soft_wrap=True)
    console.print("  (a one-time login link; open it in a browser while the demo runs)", highlight=False)
    return server
