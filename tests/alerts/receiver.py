"""A local HTTP receiver standing in for Slack, a webhook and PagerDuty: it records what it is
sent and can be told to answer 500 (or be slow) for a while."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    #: requests answered 2xx, in order
    accepted: list[Received] = field(default_factory=list)
    #: every request, whatever it was answered
    seen: list[Received] = field(default_factory=list)
    failures_left: int = 0
    fail_status: int = 500
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, times: int, status: int = 500) -> None:
        with self.lock:
            self.failures_left, self.fail_status = times, status

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.accepted) >= n:
                    return list(self.accepted)
            time.sleep(0.02)
        raise AssertionError(f"the receiver got {len(self.accepted)} of {n} messages in {timeout}s")


def start_receiver() -> Receiver:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            r = holder[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if r.delay:
                time.sleep(r.delay)
            with r.lock:
                r.seen.append(got)
                failing = r.failures_left > 0
                if failing:
                    r.failures_left -= 1
                else:
                    r.accepted.append(got)
            status = r.fail_status if failing else 200
            payload = b"oops" if failing else b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(Receiver(server))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="test-receiver").start()
    return holder[0]
