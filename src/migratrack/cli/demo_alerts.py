"""The demo's last act: its alerts delivered, through the real dispatcher and the real Slack
channel, to a receiver on 127.0.0.1 standing in for Slack; and how to point it at Slack."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rich.console import Console
from rich.markup import escape

from migratrack.storage import Storage


def show_alert_delivery(storage: Storage, console: Console) -> None:
    from migratrack.alerts.config import AlertsConfig
    from migratrack.alerts.dispatcher import Dispatcher

    received: list[dict[str, Any]] = []

    class Slack(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slack)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/services/demo"
        config = AlertsConfig.model_validate({
            "channels": {"slack": {"type": "slack", "url": url, "min_level": "warning"}},
            "group_wait": "0s", "catch_up": "1d"})
        d = Dispatcher(storage, config)
        for _ in range(3):
            d.tick()
        d.release()
    finally:
        server.shutdown()
        server.server_close()
    console.print(f"\n[bold]Alerts[/]: {len(received)} Slack message(s) delivered to a local receiver ({url}):")
    for m in received:
        console.print(f"  [yellow]•[/] {escape(m['text'])}", highlight=False)
        for line in m["attachments"][0]["text"].splitlines()[:6]:
            console.print(f"      {escape(line)}", highlight=False, soft_wrap=True)
    console.print("To send them to Slack: [cyan]export SLACK_WEBHOOK_URL=https://hooks.slack.com/services/…[/] "
                  "and run [cyan]migratrack dispatch[/] (or [cyan]migratrack serve[/]); "
                  "[cyan]migratrack alerts test --channel slack[/] checks it. See docs/alerts.md.")
