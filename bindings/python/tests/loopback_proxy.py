"""A proxy on loopback in front of the seller's relay, for the suites that put an attacker
between the app and it (test_signed_facts.py's forger, test_values.py's alterer): every POST
passed on over a connection of its own, its answer handed back as it came unless a subclass's
``on_post`` changes it."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# The headers each hop sets for itself (the proxy's own connection, length and server).
HOP = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive",
       "host", "date", "server"}


def answer(handler: BaseHTTPRequestHandler, status: int, headers: Iterable[tuple[str, str]],
           data: bytes) -> None:
    """Answers the request ``handler`` holds: ``status``, ``headers`` and ``data``."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class LoopbackProxy:
    """The proxy in front of the relay at ``upstream``; ``url`` is where the app is pointed."""

    def __init__(self, upstream: str) -> None:
        proxy, self.target = self, urlsplit(upstream)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy.on_post(self, self.rfile.read(int(self.headers.get("content-length") or 0)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        """One request: passed on, its answer handed back as it came."""
        answer(handler, *self.pass_on(handler, body))

    def pass_on(self, handler: BaseHTTPRequestHandler,
                body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request ``handler`` holds (its ``body`` read) sent to the relay: its answer's
        status, headers (without the hop's own) and body."""
        conn = http.client.HTTPConnection(self.target.hostname or "127.0.0.1", self.target.port,
                                          timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP}
        conn.request("POST", handler.path, body=body, headers=headers)
        got = conn.getresponse()
        data = got.read()
        conn.close()
        return got.status, [(k, v) for k, v in got.getheaders() if k.lower() not in HOP], data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
