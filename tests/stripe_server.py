"""The Stripe double served over HTTP, so several processes share one Stripe (STRIPE_API_BASE)."""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from webapp.stripe_double import StripeDouble


class DoubleServer:
    """Serves `double` on 127.0.0.1; can kill a client process after Stripe acted on a request
    and before the answer reaches it (a worker dying between the charge and recording it)."""

    def __init__(self, double: StripeDouble):
        self.double = double
        self.kill: tuple[str, str, int] | None = None  # (method, path, pid)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length).decode() if length else None
                method = self.command.lower()
                body, status, headers = server.double.request(
                    method, server.base_url + self.path, dict(self.headers), data
                )
                rule = server.kill
                if rule and rule[0] == method and self.path.split("?")[0] == rule[1]:
                    server.kill = None
                    os.kill(rule[2], signal.SIGKILL)
                    self.close_connection = True
                    return
                payload = body.encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
