"""A webhook receiver for Alertmanager that keeps what it receives, for tests and developers.

  POST /alerts      Alertmanager's webhook payload: kept (the last 1,000), and each alert printed
                    on stdout as one JSON line (the container's logs)
  GET  /alerts      every payload kept, oldest first, with the time it arrived (JSON)
  GET  /healthz     200

Standard library only. In production Alertmanager sends to e-mail, Slack or PagerDuty instead
(deploy/monitoring/alertmanager/alertmanager.yml says how).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEPT = 1000
MAX_BODY = 1024 * 1024
received: deque[dict] = deque(maxlen=KEPT)
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/healthz":
            self._answer(200, {"status": "ok"})
        elif self.path == "/alerts":
            with lock:
                self._answer(200, list(received))
        else:
            self._answer(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/alerts" or not 0 < length <= MAX_BODY:
            self._answer(400, {"error": "POST a webhook payload (JSON, at most 1 MiB) to /alerts"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return
        with lock:
            received.append({"received_at": time.time(), **payload})
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            print(json.dumps({"receiver": payload.get("receiver"), "status": alert.get("status"),
                              "alertname": labels.get("alertname"), "severity": labels.get("severity"),
                              "labels": labels, "summary": alert.get("annotations", {}).get("summary")}))
        self._answer(200, {"status": "received"})

    def log_message(self, *args: object) -> None:
        """No access log: the alerts themselves are printed."""


def main() -> None:
    # PID 1 of its container: SIGTERM (docker stop) has no default action there.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", 9099), Handler)  # noqa: S104 - inside a container
    print(json.dumps({"msg": "alert sink listening on :9099"}), file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
